#!/usr/bin/env bash
# Builds the C ABI (crate prunus-ffi) and installs it for C and C++ programs:
#
#   ffi/build.sh [--prefix DIR] [--debug] [--target TRIPLE]
#
#   DIR/lib/libprunus.so.X.Y.Z   shared library, SONAME libprunus.so.X
#   DIR/lib/libprunus.so.X, DIR/lib/libprunus.so   symlinks
#   DIR/lib/libprunus.a          static library
#   DIR/lib/pkgconfig/prunus.pc  pkg-config file (Libs.private for the static library;
#                                relocatable: paths are relative to the .pc file)
#   DIR/include/prunus.h         the committed C header (include/prunus.h)
#   DIR/include/prunus.hpp       the header-only C++ wrapper (examples/cpp/prunus.hpp)
#
# DIR defaults to /usr/local. --debug installs the debug build; --target cross-compiles
# (the Rust target must be installed, and the C toolchain configured for cargo).
set -euo pipefail
ffi="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$ffi")"

prefix=/usr/local profile=release target=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    --debug) profile=debug; shift ;;
    --target) target="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

cargo_args=(build -p prunus-ffi --lib)
[ "$profile" = release ] && cargo_args+=(--release)
[ -n "$target" ] && cargo_args+=(--target "$target")
(cd "$root" && cargo "${cargo_args[@]}")

out="${CARGO_TARGET_DIR:-$root/target}"
[ -n "$target" ] && out="$out/$target"
out="$out/$profile"

version="$(cd "$root" && cargo pkgid -p prunus-ffi)"; version="${version##*@}"
major="${version%%.*}"


mkdir -p "$prefix/lib" "$prefix/include"
install -m 755 "$out/libprunus_ffi.so" "$prefix/lib/libprunus.so.$version"
ln -sf "libprunus.so.$version" "$prefix/lib/libprunus.so.$major"
ln -sf "libprunus.so.$major" "$prefix/lib/libprunus.so"
install -m 644 "$out/libprunus_ffi.a" "$prefix/lib/libprunus.a"
install -m 644 "$root/include/prunus.h" "$prefix/include/prunus.h"
install -m 644 "$root/examples/cpp/prunus.hpp" "$prefix/include/prunus.hpp"
"$ffi/pkgconfig.sh" "$prefix" "$version" "$target"
echo "installed prunus $version ($profile) in $prefix"
