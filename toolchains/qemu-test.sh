#!/usr/bin/env bash
# The ARM test matrix under qemu-user (CI runs this; see toolchains/README.md):
#
#   1. runtime + format unit/property tests (cargo test -p prunus -p prunus-format), cross-
#      built once per architecture, run under every emulated core:
#        aarch64-unknown-linux-gnu:            cortex-a53, cortex-a72, cortex-a76
#        thumbv7neon-unknown-linux-gnueabihf:  cortex-a7, cortex-a15
#      each core must pass at least MIN_UNIT_TESTS tests (parsed from libtest's summaries)
#      and every core of an architecture the same number, so an empty run fails;
#   2. the model-vs-onnxruntime tests (prunus-integration-tests, onnx_vs_onnxruntime) on
#      one core per architecture (cortex-a72, cortex-a15), at least MIN_ORT_TESTS;
#   3. aarch64: instruction counts (our plugin, toolchains/qemu-insn) show that the NEON
#      kernels ran: the default kernel set is `neon`, it executes vector FMLAs (at least
#      MIN_NEON_FMLA per inference, 100x the PRUNUS_ISA=scalar count, which is ~0) and fewer
#      instructions per inference than scalar (skipped with a notice while the runtime has
#      no NEON kernel set);
#   4. the bundled C example (when the C ABI is bundled) runs under qemu on each arch.
#
#   toolchains/qemu-test.sh [--arch aarch64|arm] [--skip-ort] [--skip-tests]
#   (--skip-tests: only steps 3-4, on the current bundles)
#
# Tests run with --test-threads=2 (2 cores). qemu timings are emulation, never speed.
# Needs toolchains/setup-host.sh and the ORT fixtures (tests/fixtures/setup_venv.sh);
# steps 3-4 use the bundles of toolchains/build.sh (pi4, pi3-32), which this script
# (re)builds first: the glibc check runs there too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

MIN_UNIT_TESTS="${MIN_UNIT_TESTS:-40}"
MIN_ORT_TESTS="${MIN_ORT_TESTS:-3}"
# Vector FMLAs per inference (mobilenet_v2 112x112: 75 M MACs) that show NEON kernels ran.
MIN_NEON_FMLA="${MIN_NEON_FMLA:-1000000}"
# The 32-bit triple of the -32 board profiles (thumbv7neon-unknown-linux-gnueabihf).
# shellcheck disable=SC1091
ARM32_TRIPLE=$(. "$here/boards/pi3-32.env" && echo "$BOARD_TRIPLE")

archs="aarch64 arm" run_ort=1 run_tests=1
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) archs="$2"; shift 2 ;;
        --skip-ort) run_ort=0; shift ;;
        --skip-tests) run_tests=0; shift ;;
        *) echo "usage: $0 [--arch aarch64|arm] [--skip-ort] [--skip-tests]" >&2; exit 2 ;;
    esac
done

cross=(--config "$here/cargo-cross.toml")
log_dir="$root/target/qemu-test"
mkdir -p "$log_dir"
summary=()
started=$SECONDS
total_passed=0

# Sums "test result: ok. N passed; M failed" over a libtest log: prints "passed failed".
count_tests() {
    awk '/^test result: /{
            for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
         } END { printf "%d %d\n", p, f }' "$1"
}

# run_tests LABEL QEMU_CPU MIN -- cargo test args...  (fails on failures or too few tests)
run_tests() {
    local label="$1" cpu="$2" min="$3"; shift 4
    local log="$log_dir/$label.log" t0=$SECONDS rc=0
    echo "== $label: QEMU_CPU=$cpu cargo test $*"
    QEMU_CPU="$cpu" cargo "${cross[@]}" test "$@" >"$log" 2>&1 || rc=$?
    local passed failed
    read -r passed failed < <(count_tests "$log")
    local line="$label  QEMU_CPU=$cpu  passed=$passed failed=$failed  ($((SECONDS - t0)) s wall, emulated)"
    summary+=("$line")
    echo "   $line"
    if [ "$rc" != 0 ] || [ "$failed" != 0 ]; then
        grep -E "^(test .* FAILED|failures:|---- |thread .* panicked)" "$log" | head -40 >&2 || true
        tail -20 "$log" >&2
        echo "qemu-test: $label failed (log: $log)" >&2
        exit 1
    fi
    if [ "$passed" -lt "$min" ]; then
        echo "qemu-test: $label ran $passed tests, fewer than the minimum $min (log: $log)" >&2
        exit 1
    fi
    LAST_PASSED=$passed
    total_passed=$((total_passed + passed))
}

triple_of() { case "$1" in aarch64) echo aarch64-unknown-linux-gnu ;; arm) echo "$ARM32_TRIPLE" ;; esac; }
cpus_of() { case "$1" in aarch64) echo "cortex-a53 cortex-a72 cortex-a76" ;; arm) echo "cortex-a7 cortex-a15" ;; esac; }
ort_cpu_of() { case "$1" in aarch64) echo cortex-a72 ;; arm) echo cortex-a15 ;; esac; }

for arch in $archs; do
    [ "$run_tests" = 1 ] || break
    triple=$(triple_of "$arch")
    unit=(-p prunus -p prunus-format --tests --target "$triple")
    echo "== build $arch unit/property tests ($triple)"
    t0=$SECONDS
    cargo "${cross[@]}" test "${unit[@]}" --no-run >"$log_dir/build-$arch.log" 2>&1 \
        || { tail -30 "$log_dir/build-$arch.log" >&2; exit 1; }
    summary+=("build $arch tests: $((SECONDS - t0)) s")
    first=""
    for cpu in $(cpus_of "$arch"); do
        run_tests "unit-$arch-$cpu" "$cpu" "$MIN_UNIT_TESTS" -- "${unit[@]}" -- --test-threads=2
        if [ -z "$first" ]; then
            first=$LAST_PASSED
        elif [ "$LAST_PASSED" != "$first" ]; then
            echo "qemu-test: $arch cores ran different test counts ($first vs $LAST_PASSED)" >&2
            exit 1
        fi
    done
    if [ "$run_ort" = 1 ]; then
        if [ ! -f "${PRUNUS_FIXTURES:-$root/tests/fixtures/generated}/manifest.json" ]; then
            echo "qemu-test: ORT fixtures missing: run tests/fixtures/setup_venv.sh" >&2
            exit 1
        fi
        run_tests "ort-$arch-$(ort_cpu_of "$arch")" "$(ort_cpu_of "$arch")" "$MIN_ORT_TESTS" -- \
            -p prunus-integration-tests --test onnx_vs_onnxruntime --target "$triple" \
            -- --test-threads=2
    fi
done

# Bundle binaries (glibc 2.17, release): the CLI for the instruction counts, the C example.
bundle_for() { case "$1" in aarch64) echo pi4 ;; arm) echo pi3-32 ;; esac; }
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
boards=""
for arch in $archs; do boards="$boards $(bundle_for "$arch")"; done
echo "== bundles:$boards (toolchains/build.sh; cargo rebuilds only what changed)"
t0=$SECONDS
# shellcheck disable=SC2086
SKIP_QEMU_SMOKE=1 "$here/build.sh" $boards >"$log_dir/bundles.log" 2>&1 \
    || { tail -30 "$log_dir/bundles.log" >&2; exit 1; }
summary+=("bundles$boards: $((SECONDS - t0)) s; $(grep -c ') ok$' "$log_dir/bundles.log") ELF files within the glibc floor")

# One model for the instruction counts and the C example, written by a bundled CLI.
model="$log_dir/mobilenet_v2-112.prunus"
first_arch=${archs%% *}
case "$first_arch" in
    aarch64) qemu_first=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
    *) qemu_first=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
esac
"${qemu_first[@]}" "target/bundles/prunus-$version-$(bundle_for "$first_arch")/bin/prunus" \
    zoo mobilenet_v2 --input-hw 112 -o "$model" >/dev/null

if [[ " $archs " == *" aarch64 "* ]]; then
    bin="target/bundles/prunus-$version-pi4/bin/prunus"
    echo "== NEON check: instructions per inference, mobilenet_v2 112x112, cortex-a72"
    default_isa=$(QEMU_CPU=cortex-a72 qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" bench \
        "$model" --runs 1 --warmup 0 | sed -n 's/^version=.*(\(.*\))$/\1/p')
    scalar=$(PRUNUS_ISA=scalar "$here/insn-per-inference.sh" "$bin" "$model" cortex-a72)
    summary+=("insns aarch64 cortex-a72 scalar: $scalar")
    if [ "$default_isa" = neon ]; then
        neon=$(PRUNUS_ISA=neon "$here/insn-per-inference.sh" "$bin" "$model" cortex-a72)
        summary+=("insns aarch64 cortex-a72 neon:   $neon")
        field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
        s_all=$(field "$scalar" insns_per_inference) n_all=$(field "$neon" insns_per_inference)
        s_fmla=$(field "$scalar" fmla_per_inference) n_fmla=$(field "$neon" fmla_per_inference)
        summary+=("neon/scalar instructions per inference: $((100 * n_all / s_all)) %; vector FMLAs: $n_fmla vs $s_fmla")
        # The explicit NEON kernels issue vector FMLAs; the portable kernels, auto-vectorised,
        # issue none (no contraction without fast-math). Fewer instructions overall, too.
        if [ "$n_fmla" -lt "$MIN_NEON_FMLA" ] || [ "$n_fmla" -lt $((100 * (s_fmla + 1))) ] \
            || [ "$n_all" -ge "$s_all" ]; then
            echo "qemu-test: no sign that the NEON kernels ran ($neon vs scalar $scalar)" >&2
            exit 1
        fi
    elif grep -rq "Isa::Neon" sdk/runtime/src 2>/dev/null; then
        echo "qemu-test: the runtime has Isa::Neon but cortex-a72 chose '$default_isa'" >&2
        exit 1
    else
        summary+=("NEON check skipped: this runtime has no NEON kernel set yet")
    fi
fi

# The C example, linked against the bundled libprunus.so, under qemu.
for arch in $archs; do
    dir="target/bundles/prunus-$version-$(bundle_for "$arch")"
    exe="$dir/examples/c/classify"
    if [ ! -x "$exe" ]; then
        summary+=("C example $arch: not in the bundle (C ABI not bundled)")
        continue
    fi
    ppm="$log_dir/image.ppm"
    { printf 'P6\n64 48\n255\n'; head -c $((64 * 48 * 3)) /dev/zero | tr '\0' '\200'; } >"$ppm"
    case "$arch" in
        aarch64) qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu) cpu=cortex-a53 ;;
        *) qemu=(qemu-arm -L /usr/arm-linux-gnueabihf) cpu=cortex-a7 ;;
    esac
    for variant in classify classify-static; do
        [ -x "$dir/examples/c/$variant" ] || continue
        out=$(QEMU_CPU=$cpu "${qemu[@]}" "$dir/examples/c/$variant" "$model" "$ppm" 2>&1) \
            || { echo "$out" >&2; echo "qemu-test: C example $variant failed on $arch" >&2; exit 1; }
        summary+=("C example $arch $variant (QEMU_CPU=$cpu): ok, $(echo "$out" | wc -l) lines")
    done
done

echo
echo "== qemu matrix summary (wall times are emulation, not speed)"
printf '   %s\n' "${summary[@]}"
echo "   total wall time: $((SECONDS - started)) s"
echo "qemu: $total_passed passed, 0 failed"
