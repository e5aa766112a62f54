//! Static shape inference for the ONNX ops of the supported families (with BatchNorm and
//! the channel-shuffle `Reshape`/`Transpose` still present). Also checks that weights agree
//! with their inputs, so it doubles as the consistency check after pruning.

use crate::onnx::shape::broadcast_shape as broadcast;
pub use crate::onnx::shape::{normalize_axis as norm_axis, slice_bounds};
use std::collections::HashMap;

use super::PruneError;
use super::onnx_graph::{Const, attr_i, attr_ints, attr_s, node_name, op};
use crate::onnx::proto::NodeProto;

type Shapes = HashMap<String, Vec<usize>>;

fn err(n: &NodeProto, reason: impl Into<String>) -> PruneError {
    PruneError::Node {
        node: node_name(n),
        reason: format!("{}: {}", op(n), reason.into()),
    }
}

fn input<'a>(
    n: &NodeProto,
    shapes: &'a Shapes,
    consts: &'a HashMap<String, Const>,
    i: usize,
) -> Result<&'a [usize], PruneError> {
    let name = n
        .input
        .get(i)
        .ok_or_else(|| err(n, format!("missing input {i}")))?;
    shapes
        .get(name)
        .map(Vec::as_slice)
        .or_else(|| consts.get(name).map(|c| c.dims.as_slice()))
        .ok_or_else(|| err(n, format!("input '{name}' has no known shape")))
}

/// A constant input's integer values, if the input is present.
pub fn const_ints(
    n: &NodeProto,
    consts: &HashMap<String, Const>,
    i: usize,
) -> Result<Option<Vec<i64>>, PruneError> {
    match n.input.get(i) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => consts
            .get(s)
            .map(|c| Some(c.as_i64()))
            .ok_or_else(|| err(n, format!("input '{s}' must be a constant"))),
    }
}

/// Pads `[top, left, bottom, right]` of a conv/pool, resolving `auto_pad`.
pub fn pads_of(
    n: &NodeProto,
    hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dil: [usize; 2],
) -> [usize; 4] {
    match attr_s(n, "auto_pad").as_deref() {
        Some("SAME_UPPER") | Some("SAME_LOWER") => {
            let upper = attr_s(n, "auto_pad").as_deref() == Some("SAME_UPPER");
            let mut p = [0usize; 4];
            for ax in 0..2 {
                let out = hw[ax].div_ceil(stride[ax].max(1));
                let span = dil[ax] * (kernel[ax].saturating_sub(1)) + 1;
                let total = ((out.saturating_sub(1)) * stride[ax] + span).saturating_sub(hw[ax]);
                let small = total / 2;
                let (b, e) = if upper {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                p[ax] = b;
                p[ax + 2] = e;
            }
            p
        }
        _ => {
            let v = attr_ints(n, "pads").unwrap_or_default();
            if v.len() == 4 {
                [v[0], v[1], v[2], v[3]].map(|x| x.max(0) as usize)
            } else {
                [0; 4]
            }
        }
    }
}

fn pair(n: &NodeProto, name: &str, default: usize) -> [usize; 2] {
    match attr_ints(n, name) {
        Some(v) if v.len() == 2 => [v[0].max(1) as usize, v[1].max(1) as usize],
        _ => [default; 2],
    }
}

/// Output spatial size of a window op along one axis.
fn window_out(
    size: usize,
    p0: usize,
    p1: usize,
    span: usize,
    stride: usize,
    ceil: bool,
) -> Option<usize> {
    let padded = size + p0 + p1;
    if padded < span || stride == 0 {
        return None;
    }
    let d = padded - span;
    let mut out = if ceil {
        d.div_ceil(stride) + 1
    } else {
        d / stride + 1
    };
    if ceil && out > 1 && (out - 1) * stride >= size + p0 {
        out -= 1;
    }
    Some(out)
}

/// Output shapes of one node.
pub fn infer(
    n: &NodeProto,
    consts: &HashMap<String, Const>,
    shapes: &Shapes,
) -> Result<Vec<Vec<usize>>, PruneError> {
    let x = || input(n, shapes, consts, 0);
    let one = |s: Vec<usize>| Ok(vec![s]);
    match op(n) {
        "Relu" | "Clip" | "LeakyRelu" | "HardSigmoid" | "HardSwish" | "Sigmoid" | "Tanh"
        | "Identity" | "Elu" | "Softplus" | "Neg" | "Abs" | "Softmax" | "LogSoftmax" => {
            one(x()?.to_vec())
        }
        "Dropout" => Ok(vec![x()?.to_vec(); n.output.len().max(1)]),
        "BatchNormalization" => {
            let s = x()?.to_vec();
            let c = *s.get(1).ok_or_else(|| err(n, "input rank < 2"))?;
            for i in 1..5 {
                let p = input(n, shapes, consts, i)?;
                if p != [c] {
                    return Err(err(
                        n,
                        format!("parameter {i} has shape {p:?}, expected [{c}]"),
                    ));
                }
            }
            one(s)
        }
        "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Pow" => {
            let a = x()?;
            let b = input(n, shapes, consts, 1)?;
            broadcast(a, b)
                .map(|s| vec![s])
                .ok_or_else(|| err(n, format!("cannot broadcast {a:?} with {b:?}")))
        }
        "Conv" => {
            let s = x()?;
            let w = input(n, shapes, consts, 1)?;
            if s.len() != 4 || w.len() != 4 {
                return Err(err(
                    n,
                    format!("only 2-D convolutions: input {s:?}, weight {w:?}"),
                ));
            }
            let g = attr_i(n, "group").unwrap_or(1).max(1) as usize;
            if s[1] != w[1] * g || w[0] % g != 0 {
                return Err(err(
                    n,
                    format!("input {s:?} and weight {w:?} disagree for group {g}"),
                ));
            }
            if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
                let bs = consts.get(b).map(|c| c.dims.clone()).unwrap_or_default();
                if bs != [w[0]] {
                    return Err(err(n, format!("bias shape {bs:?}, expected [{}]", w[0])));
                }
            }
            let k = [w[2], w[3]];
            let stride = pair(n, "strides", 1);
            let dil = pair(n, "dilations", 1);
            let p = pads_of(n, [s[2], s[3]], k, stride, dil);
            let oh = window_out(s[2], p[0], p[2], dil[0] * (k[0] - 1) + 1, stride[0], false);
            let ow = window_out(s[3], p[1], p[3], dil[1] * (k[1] - 1) + 1, stride[1], false);
            match (oh, ow) {
                (Some(h), Some(w2)) => one(vec![s[0], w[0], h, w2]),
                _ => Err(err(n, "kernel larger than the padded input")),
            }
        }
        "MaxPool" | "AveragePool" => {
            let s = x()?;
            if s.len() != 4 {
                return Err(err(n, "only 2-D pooling"));
            }
            let k = pair(n, "kernel_shape", 1);
            let stride = pair(n, "strides", 1);
            let dil = pair(n, "dilations", 1);
            let p = pads_of(n, [s[2], s[3]], k, stride, dil);
            let ceil = attr_i(n, "ceil_mode").unwrap_or(0) != 0;
            let oh = window_out(s[2], p[0], p[2], dil[0] * (k[0] - 1) + 1, stride[0], ceil);
            let ow = window_out(s[3], p[1], p[3], dil[1] * (k[1] - 1) + 1, stride[1], ceil);
            match (oh, ow) {
                (Some(h), Some(w)) => one(vec![s[0], s[1], h, w]),
                _ => Err(err(n, "window larger than the padded input")),
            }
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let s = x()?;
            let mut o = s.to_vec();
            o.iter_mut().skip(2).for_each(|d| *d = 1);
            one(o)
        }
        "Flatten" => {
            let s = x()?;
            let axis = norm_axis(attr_i(n, "axis").unwrap_or(1), s.len() + 1)
                .ok_or_else(|| err(n, "bad axis"))?;
            one(vec![s[..axis].iter().product(), s[axis..].iter().product()])
        }
        "Gemm" => {
            let a = x()?;
            let b = input(n, shapes, consts, 1)?;
            if a.len() != 2 || b.len() != 2 {
                return Err(err(n, "Gemm needs 2-D operands"));
            }
            let ta = attr_i(n, "transA").unwrap_or(0) != 0;
            let tb = attr_i(n, "transB").unwrap_or(0) != 0;
            let (m, k) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
            let (k2, nn) = if tb { (b[1], b[0]) } else { (b[0], b[1]) };
            if k != k2 {
                return Err(err(
                    n,
                    format!("A {a:?} and B {b:?} disagree (transB={tb})"),
                ));
            }
            if let Some(c) = n.input.get(2).filter(|c| !c.is_empty()) {
                let cs = input(n, shapes, consts, 2)?;
                if broadcast(cs, &[m, nn]).as_deref() != Some(&[m, nn][..]) {
                    return Err(err(
                        n,
                        format!("C '{c}' {cs:?} does not broadcast to [{m}, {nn}]"),
                    ));
                }
            }
            one(vec![m, nn])
        }
        "MatMul" => {
            let a = x()?;
            let b = input(n, shapes, consts, 1)?;
            if a.len() != 2 || b.len() != 2 || a[1] != b[0] {
                return Err(err(n, format!("MatMul {a:?} x {b:?}: only 2-D")));
            }
            one(vec![a[0], b[1]])
        }
        "Concat" => {
            let first = x()?.to_vec();
            let axis = norm_axis(attr_i(n, "axis").unwrap_or(0), first.len())
                .ok_or_else(|| err(n, "bad axis"))?;
            let mut out = first.clone();
            out[axis] = 0;
            for i in 0..n.input.len() {
                let s = input(n, shapes, consts, i)?;
                if s.len() != first.len()
                    || s.iter()
                        .enumerate()
                        .any(|(d, &v)| d != axis && v != first[d])
                {
                    return Err(err(n, format!("input {i} {s:?} does not match {first:?}")));
                }
                out[axis] += s[axis];
            }
            one(out)
        }
        "Split" => {
            let s = x()?.to_vec();
            let axis = norm_axis(attr_i(n, "axis").unwrap_or(0), s.len())
                .ok_or_else(|| err(n, "bad axis"))?;
            let sizes = split_sizes(n, consts, s[axis])?;
            Ok(sizes
                .into_iter()
                .map(|k| {
                    let mut o = s.clone();
                    o[axis] = k;
                    o
                })
                .collect())
        }
        "Slice" => {
            let s = x()?.to_vec();
            let mut out = s.clone();
            for (axis, start, end, step) in slice_params(n, consts, &s)? {
                let (_, _, count) =
                    slice_bounds(s[axis], start, end, step).ok_or_else(|| err(n, "step 0"))?;
                out[axis] = count;
            }
            one(out)
        }
        "Reshape" => {
            let s = x()?;
            let target = const_ints(n, consts, 1)?
                .ok_or_else(|| err(n, "Reshape needs a constant shape"))?;
            let numel: usize = s.iter().product();
            let mut out = Vec::new();
            let mut infer_at = None;
            for (i, &d) in target.iter().enumerate() {
                match d {
                    -1 => {
                        infer_at = Some(i);
                        out.push(1)
                    }
                    0 => out.push(*s.get(i).ok_or_else(|| err(n, "0 beyond input rank"))?),
                    d if d > 0 => out.push(d as usize),
                    _ => return Err(err(n, format!("bad target {target:?}"))),
                }
            }
            let known: usize = out.iter().product();
            if let Some(i) = infer_at {
                if known == 0 || !numel.is_multiple_of(known) {
                    return Err(err(n, format!("cannot reshape {s:?} to {target:?}")));
                }
                out[i] = numel / known;
            } else if known != numel {
                return Err(err(n, format!("cannot reshape {s:?} to {target:?}")));
            }
            one(out)
        }
        "Transpose" => {
            let s = x()?;
            let perm = attr_ints(n, "perm").unwrap_or_else(|| (0..s.len() as i64).rev().collect());
            if perm.len() != s.len() {
                return Err(err(n, "perm rank mismatch"));
            }
            perm.iter()
                .map(|&p| s.get(p as usize).copied().ok_or_else(|| err(n, "bad perm")))
                .collect::<Result<Vec<_>, _>>()
                .map(|o| vec![o])
        }
        other => Err(err(
            n,
            format!("op '{other}' is not supported by the pruning tool"),
        )),
    }
}

/// Sizes of a `Split`'s outputs along its axis of size `dim`.
pub fn split_sizes(
    n: &NodeProto,
    consts: &HashMap<String, Const>,
    dim: usize,
) -> Result<Vec<usize>, PruneError> {
    let sizes = match const_ints(n, consts, 1)? {
        Some(v) => v,
        None => attr_ints(n, "split").unwrap_or_default(),
    };
    let outs = n.output.len().max(1);
    if sizes.is_empty() {
        let k = attr_i(n, "num_outputs")
            .map(|v| v as usize)
            .unwrap_or(outs)
            .max(1);
        let chunk = dim.div_ceil(k);
        return Ok((0..k)
            .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
            .collect());
    }
    if sizes.len() != outs
        || sizes.iter().any(|&v| v < 0)
        || sizes.iter().sum::<i64>() as usize != dim
    {
        return Err(err(
            n,
            format!("split sizes {sizes:?} do not partition {dim}"),
        ));
    }
    Ok(sizes.into_iter().map(|v| v as usize).collect())
}

/// `(axis, start, end, step)` per sliced axis (constants only).
pub fn slice_params(
    n: &NodeProto,
    consts: &HashMap<String, Const>,
    s: &[usize],
) -> Result<Vec<(usize, i64, i64, i64)>, PruneError> {
    let (starts, ends, axes, steps) = if n.input.len() > 1 {
        (
            const_ints(n, consts, 1)?.unwrap_or_default(),
            const_ints(n, consts, 2)?.unwrap_or_default(),
            const_ints(n, consts, 3)?,
            const_ints(n, consts, 4)?,
        )
    } else {
        (
            attr_ints(n, "starts").unwrap_or_default(),
            attr_ints(n, "ends").unwrap_or_default(),
            attr_ints(n, "axes"),
            None,
        )
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(err(n, "starts/ends/axes/steps lengths differ"));
    }
    (0..starts.len())
        .map(|i| {
            let axis = norm_axis(axes[i], s.len()).ok_or_else(|| err(n, "bad axis"))?;
            Ok((axis, starts[i], ends[i], steps[i]))
        })
        .collect()
}
