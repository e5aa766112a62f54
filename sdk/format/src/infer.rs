//! Shape inference for every [`Op`]: used by the tool to build graphs and by the loader to
//! validate a file (a stored output shape must equal the inferred one).

use crate::graph::{Conv, Graph, Node, Op, Pool};

/// Largest accepted size of one dimension.
pub const MAX_DIM: u64 = 1 << 24;
/// Largest accepted element count of one tensor (activation or weight).
pub const MAX_NUMEL: u64 = 1 << 30;

/// Why a node's shapes are inconsistent (the caller adds the node name).
pub type ShapeResult<T> = Result<T, String>;

fn dims4(shape: &[u32], what: &str) -> ShapeResult<[u64; 4]> {
    match shape {
        [n, c, h, w] => {
            if *n != 1 {
                return Err(format!("{what} batch is {n}, only batch 1 is supported"));
            }
            Ok([*n as u64, *c as u64, *h as u64, *w as u64])
        }
        _ => Err(format!("{what} must be NCHW (4-D), got {shape:?}")),
    }
}

/// Output size of a sliding window along one axis (floor mode).
pub fn window_out(
    size: u64,
    pad0: u64,
    pad1: u64,
    k: u64,
    stride: u64,
    dilation: u64,
) -> Option<u64> {
    let span = dilation * (k - 1) + 1;
    let padded = size + pad0 + pad1;
    (padded >= span && stride > 0).then(|| (padded - span) / stride + 1)
}

fn check_window(kernel: [u32; 2], stride: [u32; 2], dilation: [u32; 2]) -> ShapeResult<()> {
    if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
        return Err(format!(
            "kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be positive"
        ));
    }
    if kernel
        .iter()
        .chain(&stride)
        .chain(&dilation)
        .any(|&v| v as u64 > MAX_DIM)
    {
        return Err("kernel, stride or dilation is oversized".into());
    }
    Ok(())
}

fn conv_shape(graph: &Graph, c: &Conv, x: &[u32]) -> ShapeResult<Vec<u32>> {
    let [_, cin, h, w] = dims4(x, "conv input")?;
    check_window(c.kernel, c.stride, c.dilation)?;
    let weight = weight_shape(graph, c.weight)?;
    let [o, ig, kh, kw] = match weight {
        [o, i, kh, kw] => [*o as u64, *i as u64, *kh as u64, *kw as u64],
        _ => return Err(format!("conv weight must be OIHW, got {weight:?}")),
    };
    let g = c.groups as u64;
    if g == 0 || cin % g != 0 || o % g != 0 || ig * g != cin {
        return Err(format!(
            "groups {g} do not fit input channels {cin}, weight {weight:?}"
        ));
    }
    if [kh, kw] != [c.kernel[0] as u64, c.kernel[1] as u64] {
        return Err(format!(
            "weight {weight:?} does not match kernel {:?}",
            c.kernel
        ));
    }
    if let Some(b) = c.bias {
        let bs = weight_shape(graph, b)?;
        if bs != [o as u32] {
            return Err(format!(
                "bias shape {bs:?} does not match {o} output channels"
            ));
        }
    }
    let [pt, pl, pb, pr] = c.pads.map(u64::from);
    let ho = window_out(h, pt, pb, kh, c.stride[0] as u64, c.dilation[0] as u64);
    let wo = window_out(w, pl, pr, kw, c.stride[1] as u64, c.dilation[1] as u64);
    match (ho, wo) {
        (Some(ho), Some(wo)) => to_shape(&[1, o, ho, wo]),
        _ => Err(format!(
            "kernel {:?} larger than padded input {h}x{w}",
            c.kernel
        )),
    }
}

fn pool_shape(p: &Pool, x: &[u32], out: &[u32]) -> ShapeResult<Vec<u32>> {
    let [_, c, h, w] = dims4(x, "pool input")?;
    check_window(p.kernel, p.stride, [1, 1])?;
    let [pt, pl, pb, pr] = p.pads.map(u64::from);
    let (k, s) = (p.kernel.map(u64::from), p.stride.map(u64::from));
    let floor_h = window_out(h, pt, pb, k[0], s[0], 1);
    let floor_w = window_out(w, pl, pr, k[1], s[1], 1);
    let (Some(fh), Some(fw)) = (floor_h, floor_w) else {
        return Err(format!(
            "pool window {:?} larger than padded input",
            p.kernel
        ));
    };
    // ceil_mode may add one more window per axis, which must still start inside the input
    // or its left/top padding. No stored shape (a graph being built) means floor mode.
    if out.is_empty() {
        return to_shape(&[1, c, fh, fw]);
    }
    let [_, _, oh, ow] = dims4(out, "pool output")?;
    let ok = |o: u64, f: u64, size: u64, p0: u64, s: u64| {
        o == f || (o == f + 1 && (o - 1) * s < size + p0)
    };
    if !ok(oh, fh, h, pt, s[0]) || !ok(ow, fw, w, pl, s[1]) {
        return Err(format!(
            "pool output {out:?} is neither the floor ({fh}x{fw}) nor the ceil size"
        ));
    }
    to_shape(&[1, c, oh, ow])
}

fn to_shape(dims: &[u64]) -> ShapeResult<Vec<u32>> {
    check_dims(dims)?;
    Ok(dims.iter().map(|&d| d as u32).collect())
}

/// Checks one shape against [`MAX_DIM`] and [`MAX_NUMEL`].
pub fn check_dims(dims: &[u64]) -> ShapeResult<()> {
    if let Some(d) = dims.iter().find(|&&d| d > MAX_DIM) {
        return Err(format!("dimension {d} exceeds the limit {MAX_DIM}"));
    }
    let numel = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    match numel {
        Some(n) if n <= MAX_NUMEL => Ok(()),
        _ => Err(format!("shape {dims:?} has more than {MAX_NUMEL} elements")),
    }
}

fn weight_shape(graph: &Graph, id: u32) -> ShapeResult<&[u32]> {
    graph
        .weights
        .get(id as usize)
        .map(|w| w.shape.as_slice())
        .ok_or_else(|| format!("weight index {id} out of range"))
}

fn tensor_shape(graph: &Graph, id: u32) -> ShapeResult<&[u32]> {
    graph
        .tensors
        .get(id as usize)
        .map(|t| t.shape.as_slice())
        .ok_or_else(|| format!("tensor index {id} out of range"))
}

fn arity(node: &Node, inputs: usize, outputs: usize) -> ShapeResult<()> {
    if node.inputs.len() != inputs || node.outputs.len() != outputs {
        return Err(format!(
            "{} takes {inputs} input(s) and {outputs} output(s), node has {} and {}",
            node.op.kind_name(),
            node.inputs.len(),
            node.outputs.len()
        ));
    }
    Ok(())
}

fn numel(shape: &[u32]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

/// Infers the output shape of `node` from its input shapes and weights.
///
/// `Reshape` and pooling take the stored output shape as given (a reshape only needs the same
/// element count; a pool may be in ceil mode) and check it is consistent.
pub fn infer_node(graph: &Graph, node: &Node) -> ShapeResult<Vec<u32>> {
    let n_in = match node.op {
        Op::Binary { .. } => 2,
        Op::Concat => node.inputs.len().max(1),
        _ => 1,
    };
    arity(node, n_in, 1)?;
    let x = tensor_shape(graph, node.inputs[0])?;
    let stored_out = tensor_shape(graph, node.outputs[0])?;
    match &node.op {
        Op::Conv(c) => conv_shape(graph, c, x),
        Op::Gemm { weight, bias, .. } => {
            let w = weight_shape(graph, *weight)?;
            let [o, k] = match w {
                [o, k] => [*o, *k],
                _ => return Err(format!("gemm weight must be [O, K], got {w:?}")),
            };
            if x.len() != 2 || x[0] != 1 || x[1] != k {
                return Err(format!("gemm input {x:?} does not match weight [{o}, {k}]"));
            }
            if let Some(b) = bias {
                let bs = weight_shape(graph, *b)?;
                if bs != [o] {
                    return Err(format!("gemm bias {bs:?} does not match {o} outputs"));
                }
            }
            Ok(vec![1, o])
        }
        Op::Binary { .. } => {
            let b = tensor_shape(graph, node.inputs[1])?;
            let per_channel = x.len() == 4 && b == [1, x[1], 1, 1];
            if b == x || per_channel || numel(b) == 1 {
                Ok(x.to_vec())
            } else {
                Err(format!("cannot broadcast {b:?} to {x:?}"))
            }
        }
        Op::ScaleShift { scale, shift, .. } => {
            let c = x
                .get(1)
                .copied()
                .ok_or("scale-shift input has no channel axis")?;
            for w in [scale, shift] {
                let s = weight_shape(graph, *w)?;
                if s != [c] {
                    return Err(format!("scale/shift {s:?} does not match {c} channels"));
                }
            }
            Ok(x.to_vec())
        }
        Op::Activation(_) => Ok(x.to_vec()),
        Op::Concat => {
            let [_, _, h, w] = dims4(x, "concat input")?;
            let mut channels = 0u64;
            for &id in &node.inputs {
                let [_, c, hi, wi] = dims4(tensor_shape(graph, id)?, "concat input")?;
                if (hi, wi) != (h, w) {
                    return Err(format!("concat inputs differ in H/W: {h}x{w} vs {hi}x{wi}"));
                }
                channels += c;
            }
            to_shape(&[1, channels, h, w])
        }
        Op::SliceChannels { start, end } => {
            let [_, c, h, w] = dims4(x, "slice input")?;
            if start >= end || *end as u64 > c {
                return Err(format!("channel slice {start}..{end} of {c} channels"));
            }
            to_shape(&[1, (end - start) as u64, h, w])
        }
        Op::ChannelShuffle { groups } => {
            let [_, c, _, _] = dims4(x, "shuffle input")?;
            if *groups == 0 || c % *groups as u64 != 0 {
                return Err(format!("{c} channels do not split into {groups} groups"));
            }
            Ok(x.to_vec())
        }
        Op::MaxPool(p) | Op::AveragePool(p) => pool_shape(p, x, stored_out),
        Op::GlobalAveragePool => {
            let [_, c, _, _] = dims4(x, "global pool input")?;
            to_shape(&[1, c, 1, 1])
        }
        Op::Reshape => {
            if numel(stored_out) != numel(x) {
                return Err(format!("cannot reshape {x:?} to {stored_out:?}"));
            }
            Ok(stored_out.to_vec())
        }
        Op::Softmax => Ok(x.to_vec()),
        Op::Pad { pads, .. } => {
            let [_, c, h, w] = dims4(x, "pad input")?;
            let [t, l, b, r] = pads.map(u64::from);
            to_shape(&[1, c, h + t + b, w + l + r])
        }
    }
}
