#!/usr/bin/env python3
"""Check `prunus import` + `prunus run` against onnxruntime on a folder of ONNX models.

For every MODEL.onnx in the folder: import it with the prunus CLI, run it on a seeded
N(0, 1) input (the same bytes are fed to onnxruntime), and print max |diff| relative to
max |ref| and the cosine similarity of the outputs. Needs numpy and onnxruntime.

    python bench/peer/compare_onnxruntime.py $PEERBENCH_WORK/models --prunus target/release/prunus
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", help="folder of .onnx files")
    ap.add_argument("--prunus", default="target/release/prunus")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    names = sorted(f for f in os.listdir(args.models) if f.endswith(".onnx"))
    print(f"| {'model':22} | {'max|diff|/max|ref|':>19} | {'cosine':>12} | {'top-1':>5} |")
    print(f"|{'-' * 24}|{'-' * 21}|{'-' * 14}|{'-' * 7}|")
    worst_cos = 1.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = os.path.join(args.models, name)
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            inp = sess.get_inputs()[0]
            shape = [d if isinstance(d, int) else 1 for d in inp.shape]
            x = np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)
            ref = sess.run(None, {inp.name: x})[0].astype(np.float64).ravel()
            packed = os.path.join(tmp, name + ".prunus")
            xin = os.path.join(tmp, name + ".in.npy")
            yout = os.path.join(tmp, name + ".out.npy")
            np.save(xin, x)
            subprocess.run([args.prunus, "import", path, "-o", packed], check=True, capture_output=True)
            subprocess.run([args.prunus, "run", packed, "--input", xin, "--output", yout], check=True, capture_output=True)
            got = np.load(yout).astype(np.float64).ravel()
            rel = np.abs(got - ref).max() / np.abs(ref).max()
            cos = float(got @ ref / (np.linalg.norm(got) * np.linalg.norm(ref)))
            worst_cos = min(worst_cos, cos)
            top1 = "ok" if got.argmax() == ref.argmax() else "DIFF"
            print(f"| {name[:-5]:22} | {rel:19.2e} | {cos:12.9f} | {top1:>5} |")
    return 0 if worst_cos >= 0.99999 else 1


if __name__ == "__main__":
    sys.exit(main())
