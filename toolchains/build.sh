#!/usr/bin/env bash
# Builds the release bundle for one or more boards:
#
#   toolchains/build.sh pi4 pi3-32 jetson-nano     # -> target/bundles/prunus-<version>-<board>.tar.gz
#   toolchains/build.sh --list                     # the boards (toolchains/boards/*.env)
#
# Each bundle holds bin/prunus (the CLI, for `prunus bench` on the board), run-bench.sh,
# the board profile and, once the C ABI is in the workspace (crate prunus-ffi), lib/
# (libprunus.so + .a), include/prunus.h, lib/pkgconfig/prunus.pc and the C example.
#
# One build per architecture: boards of one arch (pi3, pi4, pi5, zero2, jetson-* are all
# aarch64) share the same binaries, since kernels are picked at run time; only the
# packaging differs. Binaries are linked by cargo-zigbuild against glibc 2.17 (target
# suffix .2.17) and checked with toolchains/check-glibc.sh. If qemu-user is installed, the
# bundled CLI is smoke-tested under it (`prunus bench` on a small zoo model).
#
# Environment: PRUNUS_GLIBC (default 2.17), SKIP_QEMU_SMOKE=1, CARGO (default cargo).
# Needs toolchains/setup-host.sh first (rustup targets, toolchains/.venv with zig).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

glibc="${PRUNUS_GLIBC:-2.17}"
venv="$here/.venv"
out_dir="$root/target/bundles"

usage() {
    echo "usage: $0 BOARD... | --list" >&2
    echo "boards: $(cd "$here/boards" && ls ./*.env | sed 's|./||; s|\.env||' | tr '\n' ' ')" >&2
    exit 2
}
[ $# -gt 0 ] || usage
if [ "$1" = "--list" ]; then
    for f in "$here"/boards/*.env; do
        # shellcheck disable=SC1090
        (. "$f"; printf '%-12s %-8s %-38s %s\n' "$(basename "$f" .env)" "$BOARD_ARCH" \
            "$BOARD_TRIPLE" "$BOARD_NAME")
    done
    exit 0
fi

if [ ! -x "$venv/bin/cargo-zigbuild" ]; then
    echo "build.sh: $venv/bin/cargo-zigbuild missing: run toolchains/setup-host.sh" >&2
    exit 1
fi
# cargo-zigbuild finds zig through `python -m ziglang` of the venv.
export PATH="$venv/bin:$PATH"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

# prunus-ffi is bundled once it is a workspace member (the C ABI issue adds it).
has_ffi() {
    ${CARGO:-cargo} metadata --no-deps --format-version 1 --offline 2>/dev/null \
        | grep -q '"name":"prunus-ffi"'
}

# Builds the binaries of one triple (cached by cargo: a second board of the same arch
# only re-packages). Prints nothing on stdout.
built_triples=""
build_triple() {
    local triple="$1"
    case " $built_triples " in *" $triple "*) return 0 ;; esac
    echo "== cargo zigbuild --release --target $triple.$glibc" >&2
    local packages=(-p prunus-tool --bin prunus)
    if has_ffi; then packages+=(-p prunus-ffi --lib); fi
    ${CARGO:-cargo} zigbuild --release --locked "${packages[@]}" --target "$triple.$glibc" >&2
    built_triples="$built_triples $triple"
}

# Adds the C library, headers, pkg-config file and C example to the bundle directory $1,
# in the layout of `ffi/build.sh --prefix` (which builds with plain cargo, so it cannot give
# the glibc floor; the zig-linked libraries are installed here instead).
bundle_ffi() {
    local dir="$1" triple="$2" arch="$3"
    if ! has_ffi; then
        echo "build.sh: prunus-ffi is not a workspace member: bundle has the CLI only" >&2
        return 0
    fi
    local rel="target/$triple/release" major="${version%%.*}"
    mkdir -p "$dir/lib/pkgconfig" "$dir/include" "$dir/examples/c"
    install -m 755 "$rel/libprunus_ffi.so" "$dir/lib/libprunus.so.$version"
    ln -sf "libprunus.so.$version" "$dir/lib/libprunus.so.$major"
    ln -sf "libprunus.so.$major" "$dir/lib/libprunus.so"
    install -m 644 "$rel/libprunus_ffi.a" "$dir/lib/libprunus.a"
    # The Rust standard library inside the archive carries its debug info (~25 MB).
    local strip
    case "$arch" in aarch64) strip=aarch64-linux-gnu-strip ;; *) strip=arm-linux-gnueabihf-strip ;; esac
    if command -v "$strip" >/dev/null; then "$strip" --strip-debug "$dir/lib/libprunus.a"; fi
    install -m 644 include/prunus.h "$dir/include/"
    [ -f examples/cpp/prunus.hpp ] && install -m 644 examples/cpp/prunus.hpp "$dir/include/"
    ffi/pkgconfig.sh "$dir" "$version" "$triple"
    local private
    private=$(sed -n 's/^Libs.private: //p' "$dir/lib/pkgconfig/prunus.pc")
    [ -f examples/c/classify.c ] || return 0
    cp examples/c/classify.c "$dir/examples/c/"
    [ -f examples/c/Makefile ] && cp examples/c/Makefile "$dir/examples/c/"
    local zig_target
    case "$arch" in
        aarch64) zig_target="aarch64-linux-gnu.$glibc" ;;
        *) zig_target="arm-linux-gnueabihf.$glibc" ;;
    esac
    # zig cc links the example against the same glibc floor as the library; shared (rpath
    # to the bundle's lib/) and static, as examples/c/Makefile does on the board.
    local cc=(python -m ziglang cc -target "$zig_target" -std=c11 -O2 -g0 -s -I"$dir/include")
    [ "$arch" = aarch64 ] || cc+=(-mcpu=cortex_a7)
    "${cc[@]}" -o "$dir/examples/c/classify" examples/c/classify.c \
        -L"$dir/lib" -lprunus -Wl,-rpath,'$ORIGIN/../../lib'
    # shellcheck disable=SC2086
    "${cc[@]}" -o "$dir/examples/c/classify-static" examples/c/classify.c \
        "$dir/lib/libprunus.a" $private
}

smoke_test() {
    local dir="$1" arch="$2" qemu_cpu="$3"
    [ "${SKIP_QEMU_SMOKE:-0}" = 1 ] && return 0
    local qemu sysroot
    case "$arch" in
        aarch64) qemu=qemu-aarch64 sysroot=/usr/aarch64-linux-gnu ;;
        *) qemu=qemu-arm sysroot=/usr/arm-linux-gnueabihf ;;
    esac
    if ! command -v "$qemu" >/dev/null || [ ! -d "$sysroot" ]; then
        echo "build.sh: $qemu or $sysroot missing: bundle not smoke-tested" >&2
        return 0
    fi
    echo "== smoke test: QEMU_CPU=$qemu_cpu $qemu bin/prunus bench (instruction emulation, not a timing)" >&2
    QEMU_CPU="$qemu_cpu" "$qemu" -L "$sysroot" "$dir/bin/prunus" bench --zoo squeezenet1_1 \
        --input-hw 64 --runs 1 --warmup 0 --threads 1 >"$dir.smoke.log" 2>&1 \
        || { cat "$dir.smoke.log" >&2; echo "build.sh: smoke test failed" >&2; return 1; }
    grep -q '^| squeezenet1_1 | 64x64 |' "$dir.smoke.log" \
        || { cat "$dir.smoke.log" >&2; echo "build.sh: no result row" >&2; return 1; }
    rm -f "$dir.smoke.log"
}

mkdir -p "$out_dir"
for board in "$@"; do
    profile="$here/boards/$board.env"
    [ -f "$profile" ] || { echo "build.sh: unknown board '$board'" >&2; usage; }
    unset "${!BOARD_@}"
    # shellcheck disable=SC1090
    . "$profile"
    {
        build_triple "$BOARD_TRIPLE"
        name="prunus-$version-$board"
        dir="$out_dir/$name"
        rm -rf "$dir"
        mkdir -p "$dir/bin"
        cp "target/$BOARD_TRIPLE/release/prunus" "$dir/bin/prunus"
        bundle_ffi "$dir" "$BOARD_TRIPLE" "$BOARD_ARCH"
        cp "$profile" "$dir/board.env"
        sed -e "s/@BOARD@/$board/g" "$here/bundle/run-bench.sh" > "$dir/run-bench.sh"
        chmod +x "$dir/run-bench.sh"
        sed -e "s/@BOARD@/$board/g" -e "s/@VERSION@/$version/g" -e "s|@NAME@|$BOARD_NAME|g" \
            "$here/bundle/README.md" > "$dir/README.md"
        {
            echo "prunus $version for $board ($BOARD_NAME)"
            echo "target: $BOARD_TRIPLE, glibc floor $glibc (cargo-zigbuild)"
            echo "rustc: $(rustc --version)"
            echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        } > "$dir/BUILDINFO"
        elfs=("$dir/bin/prunus")
        [ -d "$dir/lib" ] && elfs+=("$dir/lib/libprunus.so.$version")
        for exe in "$dir"/examples/c/*; do
            [ -f "$exe" ] && [ -x "$exe" ] && elfs+=("$exe")
        done
        "$here/check-glibc.sh" --max "$glibc" "${elfs[@]}" | sed "s|$out_dir/||"
        smoke_test "$dir" "$BOARD_ARCH" "$BOARD_QEMU_CPU"
        mtime="@$(git log -1 --format=%ct 2>/dev/null || date +%s)"
        tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" \
            -C "$out_dir" -czf "$out_dir/$name.tar.gz" "$name"
        echo "bundle: target/bundles/$name.tar.gz ($(du -k "$out_dir/$name.tar.gz" | cut -f1) KiB)"
    }
done
