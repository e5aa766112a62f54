//! Weighted ops: `Conv`, `Gemm`, `MatMul` with a constant right operand, and
//! `BatchNormalization` (as a per-channel scale-shift the passes later fold into the conv).

use prunus_format::{Activation, Conv, Op};

use super::super::tensor::Tensor;
use super::{R, spatial, window};
use crate::onnx::attrs::NodeRef;
use crate::onnx::importer::Importer;

/// A weight dimension as `u32`.
fn dim(n: &NodeRef, d: usize) -> R<u32> {
    u32::try_from(d).map_err(|_| n.error(format!("weight dimension {d} is too large")))
}

/// `[rows, cols]` of a 2-D constant transposed to `[cols, rows]`.
fn transpose2(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// `Conv` with constant weights (and optional constant bias) on a 4-D activation.
pub fn conv(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let w = imp.required_constant(n, 1)?;
    let bias = imp.constant(n, 2)?;
    let [o, ig, kh, kw] = match w.shape.as_slice() {
        &[o, i, kh, kw] => [dim(n, o)?, dim(n, i)?, dim(n, kh)?, dim(n, kw)?],
        other => {
            return Err(n.error(format!(
                "only 2-D convolutions are supported (weight shape {other:?})"
            )));
        }
    };
    if let Some(k) = n.ints_opt("kernel_shape")?
        && k != [kh as i64, kw as i64]
    {
        return Err(n.unsupported("kernel_shape", k));
    }
    let groups = n.int("group", 1)?;
    if groups < 1 || groups > u32::MAX as i64 {
        return Err(n.unsupported("group", groups));
    }
    let hw = spatial(n, &imp.shape(x))?;
    let win = window(n, [kh, kw], hw)?;
    let weight_name = n.proto.input[1].clone();
    let weight = imp
        .model
        .add_weight(&weight_name, &[o, ig, kh, kw], w.to_f32());
    let bias = match bias {
        Some(b) if b.numel() == o as usize => {
            Some(imp.model.add_weight(&n.proto.input[2], &[o], b.to_f32()))
        }
        Some(b) => {
            return Err(n.error(format!(
                "bias shape {:?} does not match {o} outputs",
                b.shape
            )));
        }
        None => None,
    };
    let op = Op::Conv(Conv {
        weight,
        bias,
        kernel: win.kernel,
        stride: win.stride,
        pads: win.pads,
        dilation: win.dilation,
        groups: groups as u32,
        activation: Activation::None,
    });
    imp.emit(n, 0, op, &[x], None)?;
    Ok(())
}

/// Bias values `[O]` from a constant broadcastable to `[1, O]` (scalar, `[O]` or `[1, O]`),
/// multiplied by `beta`.
fn gemm_bias(n: &NodeRef, c: &Tensor, o: usize, beta: f32) -> R<Vec<f32>> {
    let values = c.to_f32();
    let fits = match c.shape.as_slice() {
        [] | [1] | [1, 1] => true,
        [k] | [1, k] => *k == o,
        _ => false,
    };
    if !fits {
        return Err(n.error(format!(
            "bias C of shape {:?} does not broadcast to [1, {o}]",
            c.shape
        )));
    }
    Ok(if values.len() == 1 {
        vec![values[0] * beta; o]
    } else {
        values.iter().map(|v| v * beta).collect()
    })
}

/// Adds a `Gemm` IR node: `weight_ko` is the constant `[K, O]` (transposed) or `[O, K]`.
fn emit_gemm(
    imp: &mut Importer,
    n: &NodeRef,
    x: u32,
    w: &Tensor,
    w_is_ko: bool,
    alpha: f32,
    bias: Option<Vec<f32>>,
) -> R<()> {
    let (rows, cols) = match w.shape.as_slice() {
        &[r, c] => (r, c),
        other => return Err(n.error(format!("weight must be 2-D, got {other:?}"))),
    };
    let mut data = w.to_f32();
    let (o, k) = if w_is_ko {
        data = transpose2(&data, rows, cols);
        (cols, rows)
    } else {
        (rows, cols)
    };
    if alpha != 1.0 {
        data.iter_mut().for_each(|v| *v *= alpha);
    }
    let weight = imp
        .model
        .add_weight(&n.proto.input[1], &[dim(n, o)?, dim(n, k)?], data);
    let bias = match bias {
        Some(b) => {
            let name = n
                .proto
                .input
                .get(2)
                .cloned()
                .unwrap_or_else(|| format!("{}::bias", n.name));
            Some(imp.model.add_weight(&name, &[dim(n, o)?], b))
        }
        None => None,
    };
    let op = Op::Gemm {
        weight,
        bias,
        activation: Activation::None,
    };
    imp.emit(n, 0, op, &[x], None)?;
    Ok(())
}

/// `Gemm` with `transA = 0` and a constant `B` on a `[1, K]` activation.
pub fn gemm(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    if n.int("transA", 0)? != 0 {
        return Err(n.unsupported("transA", n.int("transA", 0)?));
    }
    let w = imp.required_constant(n, 1)?;
    let trans_b = n.int("transB", 0)? != 0;
    let (alpha, beta) = (n.float("alpha", 1.0)?, n.float("beta", 1.0)?);
    let o = match (w.shape.as_slice(), trans_b) {
        (&[r, _], true) | (&[_, r], false) => r,
        (other, _) => return Err(n.error(format!("B must be 2-D, got {other:?}"))),
    };
    let bias = match imp.constant(n, 2)? {
        Some(c) => Some(gemm_bias(n, &c, o, beta)?),
        None => None,
    };
    emit_gemm(imp, n, x, &w, !trans_b, alpha, bias)
}

/// `MatMul` of a `[1, K]` activation by a constant `[K, O]`: a bias-less `Gemm` (a following
/// `Add` of a constant becomes a scale-shift that the passes fold into the bias).
pub fn matmul(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let w = imp
        .constant(n, 1)?
        .ok_or_else(|| n.error("the right operand must be a constant"))?;
    emit_gemm(imp, n, x, &w, true, 1.0, None)
}

/// `BatchNormalization` (inference mode) as a per-channel scale-shift:
/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
pub fn batch_norm(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    if n.int("training_mode", 0)? != 0 {
        return Err(n.unsupported("training_mode", 1));
    }
    if n.int("spatial", 1)? != 1 {
        return Err(n.unsupported("spatial", 0));
    }
    let eps = n.float("epsilon", 1e-5)?;
    let c = imp
        .shape(x)
        .get(1)
        .copied()
        .ok_or_else(|| n.error("input has no channel axis"))?;
    let mut params = Vec::with_capacity(4);
    for (i, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        let t = imp.required_constant(n, i)?;
        if t.numel() != c {
            return Err(n.error(format!("{what} has {} values for {c} channels", t.numel())));
        }
        params.push(t.to_f32());
    }
    let (gamma, beta, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
    let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + eps).sqrt()).collect();
    let shift: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
    let out = imp.output_name(n, 0);
    let cw = dim(n, c)?;
    let scale = imp
        .model
        .add_weight(&format!("{out}::bn_scale"), &[cw], scale);
    let shift = imp
        .model
        .add_weight(&format!("{out}::bn_shift"), &[cw], shift);
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

#[cfg(test)]
mod tests {
    use super::super::u32_array;
    use super::*;

    #[test]
    fn transpose2_swaps_axes() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(
            transpose2(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn u32_array_rejects_wrong_lengths() {
        let proto = Default::default();
        let n = NodeRef {
            name: "c",
            op: "Conv",
            proto: &proto,
        };
        assert!(u32_array::<2>(&n, "strides", &[1, 2, 3], 1).is_err());
        assert!(u32_array::<2>(&n, "strides", &[0, 1], 1).is_err());
        assert_eq!(u32_array::<2>(&n, "strides", &[2, 1], 1).unwrap(), [2, 1]);
    }
}
