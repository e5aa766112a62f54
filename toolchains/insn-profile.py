#!/usr/bin/env python3
"""Where an aarch64 `prunus` spends its guest instructions, by symbol and by translation block.

Runs `prunus bench MODEL --runs N` under qemu-aarch64 with toolchains/qemu-insn/insn_profile.c
(address randomisation off: a PIE binary loads at 0x5500000000), then prints the instructions
per symbol and the hottest blocks; `--annotate LO HI` prints the disassembly of that address
range with each block's execution count. Everything inlined into one kernel entry shows as that
entry: the blocks and the disassembly tell its loops apart. Counts include loading and input
generation: compare runs with the same `--runs`, or two `--runs` values.

    toolchains/insn-profile.py BIN MODEL [--runs 10] [--top 25] [--annotate 0x1690 0x16b1]
"""
import argparse
import bisect
import collections
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = 0x5500000000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bin")
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--cpu", default="cortex-a72")
    ap.add_argument("--annotate", nargs=2, metavar=("LO", "HI"), help="hex address range")
    a = ap.parse_args()
    plugin = os.path.join(HERE, "..", "target", "qemu-insn", "insn_profile.so")
    src = os.path.join(HERE, "qemu-insn", "insn_profile.c")
    if not os.path.exists(plugin) or os.path.getmtime(src) > os.path.getmtime(plugin):
        os.makedirs(os.path.dirname(plugin), exist_ok=True)
        subprocess.run([os.environ.get("HOST_CC", "cc"), "-shared", "-fPIC", "-O2", "-o", plugin, src],
                       check=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "profile.txt")
        env = dict(os.environ, INSN_PROFILE_OUT=out, QEMU_CPU=a.cpu)
        subprocess.run(["setarch", "-R", "qemu-aarch64", "-plugin", plugin, "-d", "plugin",
                        "-L", "/usr/aarch64-linux-gnu", a.bin, "bench", a.model, "--runs", str(a.runs),
                        "--warmup", "0", "--threads", "1"],
                       env=env, check=True, capture_output=True)
        blocks = {}
        for line in open(out):
            vaddr, n, count = line.split()
            blocks[int(vaddr, 16) - BASE] = (int(n), int(count))
    nm = subprocess.run(["aarch64-linux-gnu-nm", "-n", "--demangle", a.bin],
                        capture_output=True, text=True, check=True).stdout
    syms = []
    for line in nm.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    starts = [s for s, _ in syms]
    # The binary's end: past it are the shared libraries qemu loaded after it.
    end = 0
    for line in subprocess.run(["aarch64-linux-gnu-readelf", "-lW", a.bin],
                               capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            end = max(end, int(f[2], 16) + int(f[5], 16))

    def function(addr):
        """(start address, name) of the function holding addr: monomorphised instances
        of one generic function share a demangled name, not an address."""
        i = bisect.bisect_right(starts, addr) - 1
        return syms[i] if 0 <= i and addr < end else (0, "(shared libraries: libc, libm)")

    def symbol(addr):
        return function(addr)[1]

    per_function = collections.Counter()
    for addr, (n, count) in blocks.items():
        per_function[function(addr)] += n * count
    total = sum(per_function.values())
    print(f"total {total} instructions ({a.runs} runs); per function: instructions, share, start")
    for (start, name), k in per_function.most_common(a.top):
        print(f"{k:13d} {100 * k / total:5.1f} %  {start:#9x}  {name[:130]}")
    print("\nhottest blocks: instructions, address, block length x executions, symbol")
    hot = sorted(blocks.items(), key=lambda b: -b[1][0] * b[1][1])[:a.top]
    for addr, (n, count) in hot:
        print(f"{n * count:13d} {addr:#9x} {n:4d} x {count:9d}  {symbol(addr)[:80]}")
    if a.annotate:
        lo, hi = (int(v, 16) for v in a.annotate)
        asm = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn",
                              f"--start-address={lo:#x}", f"--stop-address={hi:#x}", a.bin],
                             capture_output=True, text=True, check=True).stdout
        print()
        for line in asm.splitlines():
            head = line.strip().split(":")[0]
            if all(c in "0123456789abcdef" for c in head) and head and int(head, 16) in blocks:
                n, count = blocks[int(head, 16)]
                print(f"==== block of {n} x {count}")
            print(line[:120])


if __name__ == "__main__":
    main()
