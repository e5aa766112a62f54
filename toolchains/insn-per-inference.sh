#!/usr/bin/env bash
# Guest instructions per inference of an ARM `prunus` binary under qemu-user, with our
# instruction-count plugin (toolchains/qemu-insn/insn_count.c). A deterministic proxy for
# work done, NOT a speed: qemu timings mean nothing.
#
#   toolchains/insn-per-inference.sh PRUNUS_BINARY MODEL.prunus [QEMU_CPU]
#   -> "insns_per_inference=<n> simd_per_inference=<n> fmla_per_inference=<n>"
#      (simd: A64 Advanced SIMD vector instructions, fmla: vector FMLAs; aarch64 only)
#
# Per inference = (count with 3 runs - count with 1 run) / 2: load and start-up cancel out.
# One worker thread (the counter is not atomic). PRUNUS_ISA in the environment selects the
# kernel set, as for any prunus run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1" model="$2" cpu="${3:-}"

case "$(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ')" in
    b7) qemu=qemu-aarch64 sysroot=/usr/aarch64-linux-gnu cpu="${cpu:-cortex-a72}" ;;
    28) qemu=qemu-arm sysroot=/usr/arm-linux-gnueabihf cpu="${cpu:-cortex-a15}" ;;
    *) echo "insn-per-inference: $bin is not an aarch64 or arm ELF" >&2; exit 2 ;;
esac

plugin="$here/../target/qemu-insn/insn_count.so"
if [ ! -f "$plugin" ] || [ "$here/qemu-insn/insn_count.c" -nt "$plugin" ]; then
    mkdir -p "$(dirname "$plugin")"
    ${HOST_CC:-cc} -shared -fPIC -O2 -o "$plugin" "$here/qemu-insn/insn_count.c"
fi

count() { # runs -> "insns simd fmla"
    QEMU_CPU="$cpu" "$qemu" -plugin "$plugin" -d plugin -L "$sysroot" \
        "$bin" bench "$model" --runs "$1" --warmup 0 --threads 1 2>&1 >/dev/null \
        | sed -n 's/^insn_count: insns=\([0-9]*\)\( simd=\([0-9]*\) fmla=\([0-9]*\)\)\{0,1\}$/\1 \3 \4/p'
}
read -r i1 s1 f1 < <(count 1)
read -r i3 s3 f3 < <(count 3)
[ -n "${i1:-}" ] && [ -n "${i3:-}" ] || { echo "insn-per-inference: no count from the plugin" >&2; exit 1; }
line="insns_per_inference=$(( (i3 - i1) / 2 ))"
if [ -n "${s1:-}" ]; then
    line="$line simd_per_inference=$(( (s3 - s1) / 2 )) fmla_per_inference=$(( (f3 - f1) / 2 ))"
fi
echo "$line"
