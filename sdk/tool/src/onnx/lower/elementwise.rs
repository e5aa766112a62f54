//! Pointwise ops: activations, `Add`/`Sub`/`Mul`/`Div` (two activations → `Binary`, an
//! activation and a scalar or per-channel constant → `ScaleShift`) and `Softmax`.

use prunus_format::{Activation, BinaryKind, Op, TensorId};

use super::R;
use crate::onnx::attrs::NodeRef;
use crate::onnx::importer::{Importer, Value};
use crate::onnx::shape::{broadcast_shape, normalize_axis};
use crate::onnx::tensor::Tensor;

/// A constant scalar bound of `Clip` (opset 11+ input), if given.
fn clip_bound(imp: &Importer, n: &NodeRef, i: usize) -> R<Option<f32>> {
    match imp.constant(n, i)? {
        Some(t) => t
            .scalar_f32()
            .map(Some)
            .ok_or_else(|| n.error(format!("Clip bound {i} must be a scalar"))),
        None => Ok(None),
    }
}

/// `Relu`, `Clip`, `LeakyRelu`, `HardSigmoid`, `HardSwish`, `Sigmoid` as a standalone
/// activation node (the passes fuse it into its producer).
pub fn activation(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let act = match n.op {
        "Relu" => Activation::Relu,
        "Clip" => {
            // Opset 11+: optional min/max inputs; older opsets: attributes.
            let min = clip_bound(imp, n, 1)?
                .or(n.float_opt("min")?)
                .unwrap_or(f32::NEG_INFINITY);
            let max = clip_bound(imp, n, 2)?
                .or(n.float_opt("max")?)
                .unwrap_or(f32::INFINITY);
            if min == 0.0 && max == f32::INFINITY {
                Activation::Relu
            } else {
                Activation::Clip { min, max }
            }
        }
        "LeakyRelu" => Activation::LeakyRelu {
            alpha: n.float("alpha", 0.01)?,
        },
        "HardSigmoid" => Activation::HardSigmoid {
            alpha: n.float("alpha", 0.2)?,
            beta: n.float("beta", 0.5)?,
        },
        "HardSwish" => Activation::HardSwish,
        _ => Activation::Sigmoid,
    };
    imp.emit(n, 0, Op::Activation(act), &[x], None)?;
    Ok(())
}

/// `Add`, `Sub`, `Mul`, `Div` with at least one activation operand.
pub fn binary(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let a = imp.input(n, 0)?.cloned();
    let b = imp.input(n, 1)?.cloned();
    match (a, b) {
        (Some(Value::Act(a)), Some(Value::Act(b))) => binary_acts(imp, n, a, b),
        (Some(Value::Act(x)), Some(Value::Const(c))) => scale_shift(imp, n, x, &c, false),
        (Some(Value::Const(c)), Some(Value::Act(x))) => scale_shift(imp, n, x, &c, true),
        _ => {
            Err(n.error("operands must be activations or constants (5-D views are not supported)"))
        }
    }
}

fn kind(op: &str) -> BinaryKind {
    match op {
        "Add" => BinaryKind::Add,
        "Sub" => BinaryKind::Sub,
        "Mul" => BinaryKind::Mul,
        _ => BinaryKind::Div,
    }
}

/// How `small` broadcasts onto `big` when it is a valid second operand of `Binary`:
/// `Some(true)` when it must first be reshaped to `[1, C, 1, 1]`.
fn second_operand(big: &[usize], small: &[usize]) -> Option<bool> {
    if small == big || small.iter().product::<usize>() == 1 {
        return Some(false);
    }
    if big.len() != 4 || small.len() > 4 {
        return None;
    }
    let mut aligned = vec![1; 4 - small.len()];
    aligned.extend_from_slice(small);
    (aligned == [1, big[1], 1, 1]).then_some(small.len() != 4)
}

/// Two activations: `Binary`, with the broadcast operand second (swapped for `Add`/`Mul`).
fn binary_acts(imp: &mut Importer, n: &NodeRef, a: TensorId, b: TensorId) -> R<()> {
    let (sa, sb) = (imp.shape(a), imp.shape(b));
    let out = broadcast_shape(&sa, &sb)
        .ok_or_else(|| n.error(format!("cannot broadcast {sa:?} with {sb:?}")))?;
    let (x, y, reshape) = if let (true, Some(r)) = (out == sa, second_operand(&sa, &sb)) {
        (a, b, r)
    } else if let (true, Some(r)) = (out == sb, second_operand(&sb, &sa)) {
        if matches!(n.op, "Sub" | "Div") {
            return Err(n.error(format!(
                "{} with the broadcast operand {sa:?} first (and {sb:?} second) is not supported",
                n.op
            )));
        }
        (b, a, r)
    } else {
        return Err(n.error(format!("broadcasting {sa:?} with {sb:?} is not supported (only same shape, [1, C, 1, 1] or scalar)")));
    };
    let y = if reshape {
        let shape = vec![1, imp.model.shape(x)[1], 1, 1];
        let name = format!("{}::as_nchw", imp.model.tensor(y).name);
        imp.emit_named(n, &name, Op::Reshape, &[y], Some(shape))?
    } else {
        y
    };
    imp.emit(
        n,
        0,
        Op::Binary {
            kind: kind(n.op),
            activation: Activation::None,
        },
        &[x, y],
        None,
    )?;
    Ok(())
}

/// Per-channel values `[C]` of a constant that broadcasts onto `shape` as a scalar or along
/// axis 1 only, or `None`.
pub fn per_channel(shape: &[usize], c: &Tensor) -> Option<Vec<f32>> {
    let channels = *shape.get(1)?;
    let values = c.to_f32();
    if broadcast_shape(shape, &c.shape).as_deref() != Some(shape) {
        return None;
    }
    if values.len() == 1 {
        return Some(vec![values[0]; channels]);
    }
    let pad = shape.len() - c.shape.len();
    let only_channels = c
        .shape
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || i + pad == 1);
    (only_channels && values.len() == channels).then_some(values)
}

/// An activation and a constant: `x + c`, `x - c`, `c - x`, `x * c`, `x / c` as
/// `y = x * scale + shift`.
fn scale_shift(
    imp: &mut Importer,
    n: &NodeRef,
    x: TensorId,
    c: &Tensor,
    const_first: bool,
) -> R<()> {
    let shape = imp.shape(x);
    let values = per_channel(&shape, c).ok_or_else(|| {
        n.error(format!(
            "constant operand of shape {:?} on activation {shape:?}: only scalar or per-channel constants are supported",
            c.shape
        ))
    })?;
    let (scale, shift): (Vec<f32>, Vec<f32>) = match (n.op, const_first) {
        ("Add", _) => (vec![1.0; values.len()], values),
        ("Sub", false) => (vec![1.0; values.len()], values.iter().map(|v| -v).collect()),
        ("Sub", true) => (vec![-1.0; values.len()], values),
        ("Mul", _) => (values.clone(), vec![0.0; values.len()]),
        ("Div", false) => (
            values.iter().map(|v| 1.0 / v).collect(),
            vec![0.0; values.len()],
        ),
        _ => return Err(n.error("a constant divided by an activation is not supported")),
    };
    let out = imp.output_name(n, 0);
    let c = scale.len() as u32;
    let scale = imp.model.add_weight(&format!("{out}::scale"), &[c], scale);
    let shift = imp.model.add_weight(&format!("{out}::shift"), &[c], shift);
    imp.emit(
        n,
        0,
        Op::ScaleShift {
            scale,
            shift,
            activation: Activation::None,
        },
        &[x],
        None,
    )?;
    Ok(())
}

/// `Softmax`: over the last axis directly, or through a 2-D reshape when the reduced axes
/// are followed only by size-1 axes (e.g. axis 1 of `[1, K, 1, 1]`).
pub fn softmax(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let shape = imp.shape(x);
    let rank = shape.len();
    let default_axis = if imp.opset >= 13 { -1 } else { 1 };
    let axis_attr = n.int("axis", default_axis)?;
    let axis = normalize_axis(axis_attr, rank).ok_or_else(|| n.unsupported("axis", axis_attr))?;
    // Opset < 13 normalises over all axes from `axis` on; 13+ over `axis` alone.
    let end = if imp.opset >= 13 { axis + 1 } else { rank };
    if end == rank && axis + 1 == rank {
        imp.emit(n, 0, Op::Softmax, &[x], None)?;
        return Ok(());
    }
    if shape[end..].iter().any(|&d| d != 1) {
        return Err(n.unsupported("axis", axis_attr));
    }
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis..end].iter().product();
    let out = imp.output_name(n, 0).to_string();
    let flat = vec![outer as u32, inner as u32];
    let t = imp.emit_named(
        n,
        &format!("{out}::softmax_in"),
        Op::Reshape,
        &[x],
        Some(flat),
    )?;
    let s = imp.emit_named(n, &format!("{out}::softmax"), Op::Softmax, &[t], None)?;
    let back = imp.model.shape(x).to_vec();
    imp.emit(n, 0, Op::Reshape, &[s], Some(back))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_follows_onnx_broadcasting() {
        let nchw = [1, 3, 4, 4];
        let c = |shape: Vec<usize>, v: Vec<f32>| Tensor::f32(shape, v);
        assert_eq!(
            per_channel(&nchw, &c(vec![], vec![2.0])),
            Some(vec![2.0; 3])
        );
        assert_eq!(
            per_channel(&nchw, &c(vec![3, 1, 1], vec![1.0, 2.0, 3.0])),
            Some(vec![1.0, 2.0, 3.0])
        );
        assert_eq!(
            per_channel(&nchw, &c(vec![1, 3, 1, 1], vec![1.0, 2.0, 3.0])),
            Some(vec![1.0, 2.0, 3.0])
        );
        // [3] aligns with W (size 4): not per-channel and not even broadcastable.
        assert_eq!(per_channel(&nchw, &c(vec![3], vec![1.0, 2.0, 3.0])), None);
        assert_eq!(per_channel(&nchw, &c(vec![4], vec![1.0; 4])), None);
        // [C] is per-channel on a [1, C] tensor.
        assert_eq!(
            per_channel(&[1, 3], &c(vec![3], vec![1.0, 2.0, 3.0])),
            Some(vec![1.0, 2.0, 3.0])
        );
        // A constant must not expand the activation.
        assert_eq!(
            per_channel(&[1, 3, 1, 1], &c(vec![1, 3, 2, 1], vec![0.0; 6])),
            None
        );
    }

    #[test]
    fn second_operand_rules() {
        assert_eq!(second_operand(&[1, 8, 4, 4], &[1, 8, 1, 1]), Some(false));
        assert_eq!(second_operand(&[1, 8, 4, 4], &[8, 1, 1]), Some(true));
        assert_eq!(second_operand(&[1, 8, 4, 4], &[1]), Some(false));
        assert_eq!(second_operand(&[1, 8, 4, 4], &[1, 1, 4, 4]), None);
        assert_eq!(second_operand(&[1, 8, 1, 1], &[1, 8, 4, 4]), None);
    }
}
