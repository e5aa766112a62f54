//! Data-movement ops: `Concat`, `Split` and `Slice` along channels, the reshape family,
//! and `Transpose` in the two forms Prunus understands (the channel-shuffle pattern and a
//! leading NHWC → NCHW transpose of a graph input).

use prunus_format::{Op, TensorId};

use super::R;
use crate::onnx::attrs::NodeRef;
use crate::onnx::fold::{axes_of, squeeze_shape, unsqueeze_shape};
use crate::onnx::importer::{Importer, Value};
use crate::onnx::shape::{normalize_axis, reshape_target, slice_bounds};

/// `Concat` of activations along the channel axis.
pub fn concat(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let mut parts = Vec::with_capacity(n.proto.input.len());
    for i in 0..n.proto.input.len() {
        if imp.input(n, i)?.is_some() {
            parts.push(imp.act(n, i)?);
        }
    }
    let first = *parts.first().ok_or_else(|| n.error("no inputs"))?;
    let axis_attr = n
        .int_opt("axis")?
        .ok_or_else(|| n.error("missing attribute 'axis'"))?;
    if normalize_axis(axis_attr, imp.shape(first).len()) != Some(1) {
        return Err(n.unsupported("axis", axis_attr));
    }
    imp.emit(n, 0, Op::Concat, &parts, None)?;
    Ok(())
}

/// The channel count of a 4-D activation split along axis `axis_attr`, which must be 1.
fn channels_on_axis(imp: &Importer, n: &NodeRef, x: TensorId, axis_attr: i64) -> R<usize> {
    let shape = imp.shape(x);
    if shape.len() != 4 {
        return Err(n.error(format!("input must be 4-D NCHW, got {shape:?}")));
    }
    if normalize_axis(axis_attr, 4) != Some(1) {
        return Err(n.unsupported("axis", axis_attr));
    }
    Ok(shape[1])
}

/// `Split` along channels: one `SliceChannels` per used output.
pub fn split(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let c = channels_on_axis(imp, n, x, n.int("axis", 0)?)?;
    let outputs = n.proto.output.len();
    let sizes: Vec<i64> = if let Some(t) = imp.constant(n, 1)? {
        t.to_i64()
    } else if let Some(s) = n.ints_opt("split")? {
        s.to_vec()
    } else if let Some(k) = n.int_opt("num_outputs")? {
        // Opset 18: equal chunks of ceil(C / k), the last one smaller.
        if k < 1 || k as usize != outputs {
            return Err(n.unsupported("num_outputs", k));
        }
        let chunk = c.div_ceil(k as usize) as i64;
        (0..k)
            .map(|i| chunk.min(c as i64 - i * chunk).max(0))
            .collect()
    } else {
        if outputs == 0 || c % outputs != 0 {
            return Err(n.error(format!(
                "{c} channels do not split equally into {outputs} outputs"
            )));
        }
        vec![(c / outputs) as i64; outputs]
    };
    if sizes.len() != outputs
        || sizes.iter().any(|&s| s < 0)
        || sizes.iter().try_fold(0i64, |a, &s| a.checked_add(s)) != Some(c as i64)
    {
        return Err(n.unsupported("split", &sizes));
    }
    let mut start = 0u32;
    for (i, &size) in sizes.iter().enumerate() {
        let end = start + size as u32;
        if !imp.output_name(n, i).is_empty() {
            imp.emit(n, i, Op::SliceChannels { start, end }, &[x], None)?;
        }
        start = end;
    }
    Ok(())
}

/// `Slice` along channels (step 1); other axes may only be "sliced" over their full range.
pub fn slice(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let shape = imp.shape(x);
    let list = |i: usize, attr: &str| -> R<Option<Vec<i64>>> {
        match imp.constant(n, i)? {
            Some(t) => Ok(Some(t.to_i64())),
            None => Ok(n.ints_opt(attr)?.map(<[i64]>::to_vec)),
        }
    };
    let starts = list(1, "starts")?.ok_or_else(|| n.error("missing starts"))?;
    let ends = list(2, "ends")?.ok_or_else(|| n.error("missing ends"))?;
    let axes = list(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = list(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if [ends.len(), axes.len(), steps.len()]
        .iter()
        .any(|&l| l != starts.len())
    {
        return Err(n.error("starts, ends, axes and steps differ in length"));
    }
    let mut channels = None;
    for i in 0..starts.len() {
        let axis =
            normalize_axis(axes[i], shape.len()).ok_or_else(|| n.unsupported("axes", &axes))?;
        let (first, step, count) = slice_bounds(shape[axis], starts[i], ends[i], steps[i])
            .ok_or_else(|| n.unsupported("steps", &steps))?;
        let full = first == 0 && step == 1 && count == shape[axis];
        if axis == 1 && step == 1 && !full {
            channels = Some((first as u32, first as u32 + count as u32));
        } else if !full {
            return Err(n.unsupported(
                "axes",
                format!(
                    "slice {}..{} step {} on axis {axis} (only channel slices with step 1)",
                    starts[i], ends[i], steps[i]
                ),
            ));
        }
    }
    match channels {
        Some((start, end)) => {
            imp.emit(n, 0, Op::SliceChannels { start, end }, &[x], None)?;
        }
        None => imp.define(imp.output_name(n, 0), Value::Act(x))?,
    }
    Ok(())
}

/// The output shape of a reshape-family node applied to an input of shape `input`.
fn reshape_shape(imp: &Importer, n: &NodeRef, input: &[usize]) -> R<Vec<usize>> {
    let axes = |i: usize| axes_of(n, imp.constant(n, i)?.as_deref());
    match n.op {
        "Reshape" => {
            let target = imp.required_constant(n, 1)?.to_i64();
            reshape_target(input, &target, n.int("allowzero", 0)? != 0).map_err(|e| n.error(e))
        }
        "Flatten" => {
            let a = n.int("axis", 1)?;
            let axis =
                normalize_axis(a, input.len() + 1).ok_or_else(|| n.unsupported("axis", a))?;
            let outer: usize = input[..axis].iter().product();
            Ok(vec![outer, input[axis..].iter().product()])
        }
        "Squeeze" => {
            let axes = axes(1)?;
            squeeze_shape(input, axes.as_deref()).ok_or_else(|| n.unsupported("axes", &axes))
        }
        _ => {
            let axes = axes(1)?.ok_or_else(|| n.error("missing axes"))?;
            unsqueeze_shape(input, &axes).ok_or_else(|| n.unsupported("axes", &axes))
        }
    }
}

fn to_u32(n: &NodeRef, shape: &[usize]) -> R<Vec<u32>> {
    shape
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| n.error(format!("dimension {d} is too large"))))
        .collect()
}

/// The group count `g` when `target` views the 4-D `input` `[1, C, H, W]` as
/// `[1, g, C/g, H, W]` (the first step of a channel shuffle).
fn shuffle_groups(input: &[usize], target: &[usize]) -> Option<usize> {
    match (input, target) {
        ([1, c, h, w], [1, g, cg, h2, w2]) if g * cg == *c && (h, w) == (h2, w2) => Some(*g),
        _ => None,
    }
}

/// `Reshape`, `Flatten`, `Squeeze`, `Unsqueeze` on an activation (or on the 5-D view of a
/// channel shuffle, which completes the pattern).
pub fn reshape(imp: &mut Importer, n: &NodeRef) -> R<()> {
    match imp.input(n, 0)?.cloned() {
        Some(Value::Act(x)) => {
            let input = imp.shape(x);
            let target = reshape_shape(imp, n, &input)?;
            if let Some(g) = shuffle_groups(&input, &target) {
                let groups = u32::try_from(g).map_err(|_| n.error("too many groups"))?;
                let view = Value::Grouped {
                    src: x,
                    groups,
                    shuffled: false,
                    shape: target,
                };
                return imp.define(imp.output_name(n, 0), view);
            }
            let shape = to_u32(n, &target)?;
            imp.emit(n, 0, Op::Reshape, &[x], Some(shape))?;
        }
        Some(Value::Grouped {
            src,
            groups,
            shuffled,
            shape,
        }) => {
            let target = reshape_shape(imp, n, &shape)?;
            let src_shape = imp.shape(src);
            if shuffled && target == src_shape {
                imp.emit(n, 0, Op::ChannelShuffle { groups }, &[src], None)?;
            } else if !shuffled {
                let shape = to_u32(n, &target)?;
                imp.emit(n, 0, Op::Reshape, &[src], Some(shape))?;
            } else {
                return Err(n.error(format!(
                    "a transposed 5-D view can only be reshaped back to {src_shape:?} (channel shuffle), not {target:?}"
                )));
            }
        }
        _ => return Err(n.error("input 0 must be an activation")),
    }
    Ok(())
}

/// `Transpose`: the middle of a channel shuffle, a leading NHWC → NCHW transpose of a graph
/// input, or a permutation that only moves size-1 axes (a reshape). Anything else is an error.
pub fn transpose(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let value = imp.input(n, 0)?.cloned();
    let perm_attr = n.ints_opt("perm")?.map(<[i64]>::to_vec);
    let shape = match &value {
        Some(Value::Act(x)) => imp.shape(*x),
        Some(Value::Grouped { shape, .. }) => shape.clone(),
        _ => return Err(n.error("input 0 must be an activation")),
    };
    let perm: Vec<usize> = match &perm_attr {
        Some(p) => p
            .iter()
            .map(|&a| normalize_axis(a, shape.len()))
            .collect::<Option<_>>()
            .ok_or_else(|| n.unsupported("perm", p))?,
        None => (0..shape.len()).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..shape.len()).collect::<Vec<_>>() {
        return Err(n.unsupported("perm", &perm));
    }
    let permuted: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    match value {
        Some(Value::Grouped { src, groups, shuffled: false, .. }) if perm == [0, 2, 1, 3, 4] => {
            let view = Value::Grouped { src, groups, shuffled: true, shape: permuted };
            imp.define(imp.output_name(n, 0), view)
        }
        Some(Value::Act(x)) if perm == [0, 3, 1, 2] && imp.nhwc_inputs.contains(&x) => {
            imp.define(imp.output_name(n, 0), Value::Act(x))
        }
        Some(Value::Act(x)) if keeps_order_of_non_unit_axes(&shape, &perm) => {
            let target = to_u32(n, &permuted)?;
            imp.emit(n, 0, Op::Reshape, &[x], Some(target))?;
            Ok(())
        }
        _ => Err(n.unsupported(
            "perm",
            format!("{perm:?} on {shape:?} (only the channel shuffle and a leading NHWC->NCHW transpose)"),
        )),
    }
}

/// Whether permuting by `perm` leaves the memory order unchanged (only size-1 axes move).
fn keeps_order_of_non_unit_axes(shape: &[usize], perm: &[usize]) -> bool {
    let moved: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
    moved.windows(2).all(|w| w[0] < w[1])
}

#[cfg(test)]
mod tests {
    use super::keeps_order_of_non_unit_axes;

    #[test]
    fn unit_axis_transposes_are_reshapes() {
        assert!(keeps_order_of_non_unit_axes(&[1, 8, 1, 1], &[0, 2, 3, 1]));
        assert!(!keeps_order_of_non_unit_axes(&[1, 8, 2, 1], &[0, 2, 3, 1]));
    }
}
