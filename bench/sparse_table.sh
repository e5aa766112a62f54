#!/usr/bin/env bash
# Dense vs sparse per family: file size and 1-thread median latency on this machine, for
# unstructured magnitude pruning at 50/70/80/90/95 % and 4-row blocks at 90/95 % (1x1, kxk and
# Gemm weights; the first conv and depthwise stay dense; each layer's encoding from the x86-64
# cost model). Optional: aarch64 instruction counts under qemu (deterministic) instead.
#
#   bench/sparse_table.sh OUT_DIR [families...]          # x86 timings
#   AARCH64_PRUNUS=target/aarch64-unknown-linux-gnu/release/prunus bench/sparse_table.sh OUT_DIR ...
#       # aarch64 instruction counts instead (toolchains/insn-per-inference.sh, cortex-a72)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"; shift
families=("${@:-squeezenet1_1 mobilenet_v1 mobilenet_v2 mobilenet_v3_small mobilenet_v3_large shufflenet_v1 shufflenet_v2_x1_0 ghostnet_1_0 xception}")
read -r -a families <<<"${families[*]}"
P="${PRUNUS:-$here/target/release/prunus}"
mkdir -p "$out"
settings=("u:0.5" "u:0.7" "u:0.8" "u:0.9" "u:0.95" "b4:0.9" "b4:0.95")
if [ -n "${AARCH64_PRUNUS:-}" ]; then target=aarch64; else target=x86_64; fi
measure() { # file -> number
    if [ -n "${AARCH64_PRUNUS:-}" ]; then
        "$here/toolchains/insn-per-inference.sh" "$AARCH64_PRUNUS" "$1" | sed -n 's/^insns_per_inference=\([0-9]*\).*/\1/p' \
            | awk '{printf "%.1f", $1 / 1e6}'
    else
        "$P" bench "$1" --threads 1 --warmup 3 --runs 40 --max-seconds 0 | sed -n 's/^median_ms=//p'
    fi
}
unit=$([ "$target" = aarch64 ] && echo "M insns" || echo "ms")
printf '| family | dense %s | MB |' "$unit"
for s in "${settings[@]}"; do
    printf ' %s %.0f %% %s (x) | MB |' "$([ "${s%%:*}" = b4 ] && echo "block4" || echo "unstr.")" "$(echo "${s##*:} * 100" | bc -l)" "$unit"
done
echo
printf '|---|---:|---:|'; for _ in "${settings[@]}"; do printf -- '---:|---:|'; done; echo
for f in "${families[@]}"; do
    dense="$out/$f.prunus"
    [ -f "$dense" ] || "$P" zoo "$f" -o "$dense" >/dev/null
    d=$(measure "$dense")
    printf '| %s | %s | %.2f |' "$f" "$d" "$(echo "$(stat -c %s "$dense") / 1048576" | bc -l)"
    for s in "${settings[@]}"; do
        kind=${s%%:*} sp=${s##*:}
        file="$out/$f-$kind-$sp-$target.prunus"
        block=$([ "$kind" = b4 ] && echo 4 || echo 1)
        [ -f "$file" ] || "$P" prune "$dense" -o "$file" --sparsity "$sp" --block "$block" --target "$target" >/dev/null
        m=$(measure "$file")
        printf ' %s (%.2fx) | %.2f |' "$m" "$(echo "$d / $m" | bc -l)" "$(echo "$(stat -c %s "$file") / 1048576" | bc -l)"
    done
    echo
done
