#!/usr/bin/env python3
"""Accuracy of one-shot pruning on a real model: agreement with the dense model.

Prunes ../shared/realdata/mobilenet_v2_imagenet.onnx with the `prunus` CLI (unstructured
50/70/90 % of the 1x1 weights, structured 1.3x/1.5x/2x MAC cuts), each with magnitude only
and with `--recover lstsq` (least-squares reconstruction + BatchNorm recalibration) on the
128 calibration crops, and compares the pruned ONNX (`--onnx-out`, run by onnxruntime)
with the dense model on the 64 evaluation crops: top-1 agreement (n/64), top-5 overlap and
mean KL(dense || pruned) of the softmax. The last column is the same KL on 64 of the
calibration crops the recovery was fit on: far below the evaluation KL means the least
squares overfit the calibration data.

Usage (from the repository root, with the tests' venv):
    .venv/bin/python bench/prune_accuracy.py [--prunus target/release/prunus]
        [--data ../shared/realdata] [--work /tmp/prune_accuracy] [--only u50,c1.5]
        [--recover none,lstsq] [--criterion reconstruction] [--target]

--target prunes the unstructured configs with `--target-sparsity` (per-layer ratios
allocated from a sensitivity sweep on the calibration crops, its trials recovered like the
model when --recover is lstsq); the sweep is written once per recovery mode to
WORK/sens-MODE/ and reused by the other sparsities (delete it after changing the tool).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

UNSTRUCTURED = [0.5, 0.7, 0.9]
MAC_CUTS = [1.3, 1.5, 2.0]


def to_nchw(path, meta):
    x = np.load(path).astype(np.float32) / 255.0
    x = (x - np.array(meta["mean"], np.float32)) / np.array(meta["std"], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def logits(onnx_path, x):
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def compare(dense, pruned):
    def softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(dense.astype(np.float64)), softmax(pruned.astype(np.float64))
    kl = float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))
    agree = int(np.sum(dense.argmax(1) == pruned.argmax(1)))
    top5 = np.argsort(-dense, axis=1)[:, :5], np.argsort(-pruned, axis=1)[:, :5]
    overlap = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(*top5)]))
    return agree, overlap, kl


def prune(prunus, model, out_dir, name, flags, calib, recover, criterion="l1"):
    onnx_out = os.path.join(out_dir, f"{name}-{recover}.onnx")
    cmd = [prunus, "prune", model, "-o", os.path.join(out_dir, f"{name}-{recover}.prunus"),
           "--onnx-out", onnx_out, "--dense", *flags]
    if recover != "none" or criterion in ("activation", "reconstruction"):
        cmd += ["--calib", calib]
    if recover != "none":
        cmd += ["--recover", recover]
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    macs = re.search(r"MACs: \d+ -> \d+ \(([0-9.]+)x fewer\)", done.stdout)
    return onnx_out, (float(macs.group(1)) if macs else float("nan")), time.time() - start


# MobileNetV2's expansion (hidden) channels: produced by features.N.conv.0.0 for N >= 2.
HIDDEN = r"^features\.([2-9]|1[0-7])\.conv\.0\.0"


def channel_flags(out_dir, scope, ratio, criterion="l1"):
    """Flags of channel pruning at `ratio` by `criterion`: every group (uniform) or the
    hidden ones only."""
    if scope == "uniform":
        return ["--granularity", "channel", "--sparsity", f"{ratio:.4f}",
                "--criterion", criterion]
    recipe = os.path.join(out_dir, f"hidden-{ratio:.4f}-{criterion}.json")
    with open(recipe, "w") as f:
        json.dump({"granularity": "channel", "criterion": criterion, "rules": [
            {"glob": "*", "skip": True},
            {"regex": HIDDEN, "skip": False, "ratio": round(ratio, 4)}]}, f)
    return ["--recipe", recipe]


def channel_ratio_for(prunus, model, out_dir, scope, cut):
    """Bisects the channel ratio whose MAC reduction reaches `cut` (the count per group,
    hence the MACs, does not depend on the criterion: probes use L1, without data)."""
    lo, hi = 0.0, 0.9
    for _ in range(8):
        mid = (lo + hi) / 2
        flags = channel_flags(out_dir, scope, mid)
        _, got, _ = prune(prunus, model, out_dir, "probe", flags, "", "none")
        lo, hi = (mid, hi) if got < cut else (lo, mid)
    return hi


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prunus", default="target/release/prunus")
    ap.add_argument("--data", default="../shared/realdata")
    ap.add_argument("--work", default="/tmp/prune_accuracy")
    ap.add_argument("--only", default="", help="comma list of u50,u70,u90,c1.3,c1.5,c2")
    ap.add_argument("--recover", default="none,lstsq", help="comma list of recovery modes")
    ap.add_argument("--channels", choices=["hidden", "uniform"], default="hidden",
                    help="structured: prune the inverted residuals' hidden channels only "
                         "(default) or every coupled group uniformly")
    ap.add_argument("--criterion", default="l1",
                    help="structured: channel criterion (l1, reconstruction, ...; the "
                         "data-driven ones use the calibration crops)")
    ap.add_argument("--per-layer", action="store_true",
                    help="unstructured: the same ratio in every layer instead of --global")
    ap.add_argument("--target", action="store_true",
                    help="unstructured: --target-sparsity (ratios allocated from a "
                         "sensitivity sweep) instead of --global")
    ap.add_argument("--sensitivity-samples", type=int, default=32,
                    help="--target: calibration crops each sweep trial is measured on (the "
                         "recovered trials are fit on the others)")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    meta = json.load(open(os.path.join(args.data, "meta.json")))
    model = os.path.join(args.data, "mobilenet_v2_imagenet.onnx")
    calib = os.path.join(args.work, "calib_f32.npy")
    calib_x = to_nchw(os.path.join(args.data, "calib_u8_224.npy"), meta)
    np.save(calib, calib_x)
    calib_x = calib_x[:64]
    evals = to_nchw(os.path.join(args.data, "deveval_u8_224.npy"), meta)
    dense = logits(model, evals)
    dense_calib = logits(model, calib_x)
    scope = [] if args.per_layer else ["--global"]
    runs = [(f"u{int(s * 100)}", ["--sparsity", str(s), "--layers", "1x1", *scope])
            for s in UNSTRUCTURED]
    if args.target:
        runs = [(f"u{int(s * 100)}", ["--target-sparsity", str(s), "--layers", "1x1",
                                      "--sensitivity-samples", str(args.sensitivity_samples)])
                for s in UNSTRUCTURED]
    for cut in MAC_CUTS:
        tag = f"c{cut:g}"
        if args.only and tag not in args.only.split(","):
            continue
        ratio = channel_ratio_for(args.prunus, model, args.work, args.channels, cut)
        flags = channel_flags(args.work, args.channels, ratio, args.criterion)
        runs.append((f"{tag} {args.channels} {ratio:.3f} {args.criterion}", flags))
    print("| config | recovery | MACs cut | top-1 agree | top-5 overlap | mean KL | time "
          "| calib KL |")
    print("|---|---|---|---|---|---|---|---|")
    for name, flags in runs:
        if args.only and name.split()[0] not in args.only.split(","):
            continue
        for recover in args.recover.split(","):
            run_flags = flags
            if "--target-sparsity" in flags:
                sens = os.path.join(args.work, f"sens-{recover}")
                done = os.path.join(sens, "sensitivity.json")
                run_flags = flags + (["--sensitivity-from", done] if os.path.exists(done)
                                     else ["--sensitivity", sens])
                if recover == "none":
                    run_flags += ["--calib", calib]
            out, macs, secs = prune(args.prunus, model, args.work, name, run_flags, calib,
                                    recover, args.criterion)
            agree, overlap, kl = compare(dense, logits(out, evals))
            _, _, calib_kl = compare(dense_calib, logits(out, calib_x))
            shown = name if "--recipe" in flags else f"{name} {' '.join(flags)}"
            print(f"| {shown} | {recover} | {macs:.2f}x | {agree}/{len(evals)} "
                  f"| {overlap:.3f} | {kl:.4f} | {secs:.0f} s | {calib_kl:.4f} |", flush=True)


if __name__ == "__main__":
    main()
