#!/usr/bin/env python3
"""aarch64 instructions per inference of MobileNetV2's layers, one single-op model each.

Generates single-op ONNX models for the shapes of MobileNetV2 (torchvision, 224x224):
the stem (3x3/2, 3 -> 32), every distinct depthwise 3x3 layer (bias + Clip(0, 6)), the
pointwise (1x1 + bias, Clip when the layer has one), the residual Adds and the head
(GlobalAveragePool + Flatten + Gemm), plus MobileNetV3's 5x5 depthwise shapes; imports
each with the host `prunus` and counts the guest instructions one inference executes
with an aarch64 `prunus` under qemu-user (`toolchains/insn-per-inference.sh`).

Prints one row per op (instructions, instructions per MAC and per 4-lane FMA = MACs / 4,
times the layer occurs in the model) and per-kind totals weighted by occurrences, to
compare with a whole model's count.

    .venv/bin/python bench/insn_ops.py --arm /work/target-neon/aarch64-unknown-linux-gnu/release/prunus
    .venv/bin/python bench/insn_ops.py --arm BIN --only dw,stem   # kinds: stem dw dw5 pw add head empty
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# MobileNetV2 inverted residual settings (t, c, n, s) after the 32-channel stem at 112x112.
MNV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
        (6, 160, 3, 2), (6, 320, 1, 1)]

# MobileNetV3-Large's 5x5 depthwise layers: (channels, input size, stride).
MNV3_DW5 = [(72, 56, 2), (120, 28, 1), (672, 14, 2), (960, 7, 1)]


def mnv2_layers():
    """(kind, name, params) for every layer of MobileNetV2, in order."""
    layers = [("stem", "stem 3x3/2 3->32 224", dict(c_in=3, c_out=32, hw=224, k=3, s=2))]
    c_in, hw = 32, 112
    for t, c, n, s in MNV2:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            if t != 1:
                layers.append(("pw", f"pw {c_in}->{hidden} {hw}",
                               dict(c_in=c_in, c_out=hidden, hw=hw, act=True)))
            layers.append(("dw", f"dw 3x3/{stride} c{hidden} {hw}",
                           dict(c=hidden, hw=hw, k=3, s=stride)))
            out_hw = hw // stride
            layers.append(("pw", f"pw {hidden}->{c} {out_hw} (linear)",
                           dict(c_in=hidden, c_out=c, hw=out_hw, act=False)))
            if stride == 1 and c_in == c:
                layers.append(("add", f"add c{c} {out_hw}", dict(c=c, hw=out_hw)))
            c_in, hw = c, out_hw
    layers.append(("pw", f"pw {c_in}->1280 {hw}", dict(c_in=c_in, c_out=1280, hw=hw, act=True)))
    layers.append(("head", "head gap+flatten+gemm 1280->1000", dict(c=1280, hw=hw, n=1000)))
    return layers


def other_layers():
    """Layers outside MobileNetV2: MobileNetV3's 5x5 depthwise, an empty-ish model."""
    out = [("dw5", f"dw 5x5/{s} c{c} {hw}", dict(c=c, hw=hw, k=5, s=s)) for c, hw, s in MNV3_DW5]
    out.append(("empty", "relu 1x4 (fixed cost of a run)", dict()))
    return out


def macs(kind, p):
    if kind == "stem":
        o = (p["hw"] + 1) // p["s"] if p["s"] == 2 else p["hw"]
        return p["c_in"] * p["c_out"] * p["k"] ** 2 * o * o
    if kind in ("dw", "dw5"):
        o = (p["hw"] + 1) // p["s"] if p["s"] == 2 else p["hw"]
        return p["c"] * p["k"] ** 2 * o * o
    if kind == "pw":
        return p["c_in"] * p["c_out"] * p["hw"] ** 2
    if kind == "head":
        return p["c"] * p["n"]
    return 0


def model(kind, p, rng):
    """A single-op ONNX model for the layer."""
    f32 = TensorProto.FLOAT
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))

    def clip(src, dst):
        init("lo", np.array(0.0))
        init("hi", np.array(6.0))
        nodes.append(helper.make_node("Clip", [src, "lo", "hi"], [dst]))

    if kind in ("stem", "dw", "dw5", "pw"):
        dw = kind in ("dw", "dw5")
        c_in = p["c"] if dw else p["c_in"]
        c_out = p["c"] if dw else p["c_out"]
        k, s = p.get("k", 1), p.get("s", 1)
        hw = p["hw"]
        pad = k // 2
        o = (hw + 2 * pad - k) // s + 1
        init("w", rng.standard_normal((c_out, 1 if dw else c_in, k, k)) * 0.3)
        init("b", rng.standard_normal(c_out) * 0.1)
        act = p.get("act", True)
        nodes.append(helper.make_node(
            "Conv", ["x", "w", "b"], ["conv" if act else "y"], kernel_shape=[k, k],
            strides=[s, s], pads=[pad] * 4, group=c_in if dw else 1))
        if act:
            clip("conv", "y")
        x_shape, y_shape = [1, c_in, hw, hw], [1, c_out, o, o]
        inputs = [helper.make_tensor_value_info("x", f32, x_shape)]
    elif kind == "add":
        # The residual Add of two activations (x + x: a constant operand is not imported).
        shape = [1, p["c"], p["hw"], p["hw"]]
        nodes.append(helper.make_node("Add", ["x", "x"], ["y"]))
        x_shape = y_shape = shape
        inputs = [helper.make_tensor_value_info("x", f32, x_shape)]
    elif kind == "head":
        x_shape = [1, p["c"], p["hw"], p["hw"]]
        y_shape = [1, p["n"]]
        init("w", rng.standard_normal((p["n"], p["c"])) * 0.03)
        init("b", rng.standard_normal(p["n"]) * 0.1)
        nodes += [helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
                  helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
                  helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1)]
        inputs = [helper.make_tensor_value_info("x", f32, x_shape)]
    else:
        x_shape = y_shape = [1, 1, 1, 4]
        nodes.append(helper.make_node("Relu", ["x"], ["y"]))
        inputs = [helper.make_tensor_value_info("x", f32, x_shape)]
    graph = helper.make_graph(nodes, kind, inputs,
                              [helper.make_tensor_value_info("y", f32, y_shape)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def count(arm, path, cpu):
    out = subprocess.run([os.path.join(ROOT, "toolchains", "insn-per-inference.sh"), arm, path, cpu],
                         check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in re.findall(r"(\w+)_per_inference=(\d+)", out)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arm", required=True, help="aarch64 prunus binary")
    ap.add_argument("--host", default=os.path.join(ROOT, "target", "release", "prunus"),
                    help="host prunus binary (imports the models)")
    ap.add_argument("--cpu", default="cortex-a72", help="QEMU_CPU")
    ap.add_argument("--keep", help="directory to keep the generated models in")
    ap.add_argument("--only", default="stem,dw,dw5,pw,add,head,empty",
                    help="comma-separated kinds to measure")
    args = ap.parse_args()
    kinds = set(args.only.split(","))

    # Distinct layers, with how many times each occurs in MobileNetV2.
    rows = {}
    for kind, name, p in mnv2_layers() + other_layers():
        if kind not in kinds:
            continue
        key = (kind, name)
        if key in rows:
            rows[key][1] += 1
        else:
            rows[key] = [p, 1 if kind not in ("dw5", "empty") else 0]

    rng = np.random.default_rng(0)
    totals = {}
    print(f"{'op':40s} {'n':>2s} {'MACs':>10s} {'insns':>11s} {'simd':>10s} {'fmla':>10s} "
          f"{'ins/MAC':>7s} {'ins/FMA4':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for (kind, name), (p, n) in rows.items():
            stem = re.sub(r"[^\w]+", "_", name).strip("_") if args.keep else "op"
            onnx_path = os.path.join(args.keep or tmp, stem + ".onnx")
            prunus_path = os.path.join(args.keep or tmp, stem + ".prunus")
            onnx.save(model(kind, p, rng), onnx_path)
            imp = subprocess.run([args.host, "import", onnx_path, "-o", prunus_path],
                                 capture_output=True, text=True)
            if imp.returncode != 0:
                sys.exit(f"import of {name} failed: {imp.stderr.strip()}")
            c = count(args.arm, prunus_path, args.cpu)
            m = macs(kind, p)
            per_mac = f"{c['insns'] / m:7.3f}" if m else "      -"
            per_fma = f"{c['insns'] / (m / 4):8.2f}" if m else "       -"
            print(f"{name:40s} {n:2d} {m:10d} {c['insns']:11d} {c.get('simd', 0):10d} "
                  f"{c.get('fmla', 0):10d} {per_mac} {per_fma}", flush=True)
            t = totals.setdefault(kind, [0, 0])
            t[0] += n * c["insns"]
            t[1] += n * m
    print("\nMobileNetV2 totals by kind (occurrences x insns; includes each run's fixed cost):")
    for kind, (insns, m) in totals.items():
        if kind in ("dw5", "empty"):
            continue
        ratio = f"{insns / m:.3f} insns/MAC" if m else ""
        print(f"  {kind:5s} {insns / 1e6:9.2f} M insns  {m / 1e6:8.2f} M MACs  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
