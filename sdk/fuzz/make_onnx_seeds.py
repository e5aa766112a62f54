#!/usr/bin/env python3
"""Writes small ONNX seed files for the onnx_import fuzz target (corpus/onnx_import/).

Each seed is a few hundred bytes to a few kB and exercises one importer path: conv + BN +
activation folding, channel shuffle, h-swish chains, split/concat, shape-subgraph folding,
pools, gemm, NHWC input, Constant-node weights, opset-11 Clip and opset-10 Clip attributes.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "onnx_import")
rng = np.random.default_rng(0)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def w(shape):
    return rng.standard_normal(shape).astype(np.float32) * 0.3


def save(name, nodes, inits, in_shape, out_shape, opset=13, in_name="x"):
    g = helper.make_graph(nodes, name,
                          [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="seed")
    m.ir_version = 7
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())


def bn_inits(p, c):
    return [init(p + "g", np.ones(c, np.float32)), init(p + "b", np.zeros(c, np.float32)),
            init(p + "m", np.zeros(c, np.float32)), init(p + "v", np.ones(c, np.float32))]


def main():
    os.makedirs(OUT, exist_ok=True)
    # conv + BN + relu6 (Clip inputs), depthwise, residual add, GAP, flatten, gemm
    save("conv_bn_clip_gemm", [
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bg", "bb", "bm", "bv"], ["n1"], epsilon=1e-5),
        helper.make_node("Clip", ["n1", "lo", "hi"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Add", ["a1", "c2"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ], [init("w1", w((4, 3, 3, 3))), *bn_inits("b", 4), init("lo", np.float32(0)), init("hi", np.float32(6)),
        init("w2", w((4, 1, 3, 3))), init("fw", w((5, 4))), init("fb", w((5,)))], [1, 3, 8, 8], [1, 5])
    # channel shuffle via Reshape/Transpose/Reshape, split, concat, maxpool ceil mode
    save("shuffle_split_concat", [
        helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=1),
        helper.make_node("Relu", ["b"], ["rb"]),
        helper.make_node("Concat", ["a", "rb"], ["c"], axis=1),
        helper.make_node("Reshape", ["c", "s1"], ["r1"]),
        helper.make_node("Transpose", ["r1"], ["t"], perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", ["t", "s2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    ], [init("sp", np.array([2, 2], np.int64)), init("s1", np.array([1, 2, 2, 5, 5], np.int64)),
        init("s2", np.array([1, 4, 5, 5], np.int64))], [1, 4, 5, 5], [1, 4, 2, 2])
    # h-swish as Add/Clip/Div/Mul, SE with HardSigmoid and Mul, AveragePool, Softmax
    save("hswish_se", [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["c", "three"], ["a3"]),
        helper.make_node("Clip", ["a3", "zero", "six"], ["cl"]),
        helper.make_node("Div", ["cl", "six"], ["d"]),
        helper.make_node("Mul", ["c", "d"], ["hs"]),
        helper.make_node("GlobalAveragePool", ["hs"], ["g"]),
        helper.make_node("HardSigmoid", ["g"], ["hg"], alpha=1.0 / 6, beta=0.5),
        helper.make_node("Mul", ["hs", "hg"], ["se"]),
        helper.make_node("AveragePool", ["se"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["ap"], ["fl"]),
        helper.make_node("Softmax", ["fl"], ["y"], axis=-1),
    ], [init("w1", w((4, 2, 1, 1))), init("b1", w((4,))), init("three", np.float32(3)),
        init("zero", np.float32(0)), init("six", np.float32(6))], [1, 2, 4, 4], [1, 16])
    # PyTorch-style shape subgraph feeding Reshape, Constant-node weights, opset 18 Split
    save("shape_fold_constant_opset18", [
        helper.make_node("Constant", [], ["cw"], value=numpy_helper.from_array(w((6, 2, 1, 1)), "cw")),
        helper.make_node("Conv", ["x", "cw"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Shape", ["c"], ["sh"]),
        helper.make_node("Gather", ["sh", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
        helper.make_node("Concat", ["nu", "minus1"], ["ns"], axis=0),
        helper.make_node("Split", ["c"], ["s0", "s1"], axis=1, num_outputs=2),
        helper.make_node("Mul", ["s0", "s1"], ["m"]),
        helper.make_node("Reshape", ["m", "ns"], ["y"]),
    ], [init("i0", np.array(0, np.int64)), init("ax", np.array([0], np.int64)),
        init("minus1", np.array([-1], np.int64))], [1, 2, 3, 3], [1, 27], opset=18)
    # NHWC input + leading transpose, opset-10 Clip attributes, Pad, Sigmoid, Sub/Div constants
    save("nhwc_clip_attrs_opset10", [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["t", "mean"], ["s"]),
        helper.make_node("Div", ["s", "std"], ["n"]),
        helper.make_node("Pad", ["n"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="constant"),
        helper.make_node("Conv", ["p", "w1"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Clip", ["c"], ["cl"], min=0.0, max=6.0),
        helper.make_node("Sigmoid", ["cl"], ["y"]),
    ], [init("mean", np.array([[[0.4]], [[0.5]], [[0.6]]], np.float32)),
        init("std", np.array([[[0.2]], [[0.2]], [[0.3]]], np.float32)), init("w1", w((2, 3, 3, 3)))],
        [1, 5, 5, 3], [1, 2, 5, 5], opset=10)
    print(f"wrote seeds to {OUT}")


if __name__ == "__main__":
    main()
