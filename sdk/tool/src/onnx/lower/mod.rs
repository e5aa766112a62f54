//! Lowering of ONNX ops (with at least one activation input) to Prunus IR nodes.
//!
//! One function per op family; each reads its inputs through the [`Importer`], validates
//! attributes (unsupported values are errors naming node, op, attribute and value) and
//! emits IR nodes whose output tensors keep the ONNX output names.

mod conv;
mod elementwise;
mod layout;
mod window;

use super::ImportError;
use super::attrs::NodeRef;
use super::importer::Importer;
use super::shape::same_pads;

type R<T> = Result<T, ImportError>;

/// Lowers one ONNX node that could not be constant-folded.
pub fn lower(imp: &mut Importer, n: &NodeRef) -> R<()> {
    match n.op {
        "Conv" => conv::conv(imp, n),
        "Gemm" => conv::gemm(imp, n),
        "MatMul" => conv::matmul(imp, n),
        "BatchNormalization" => conv::batch_norm(imp, n),
        "Relu" | "Clip" | "LeakyRelu" | "HardSigmoid" | "HardSwish" | "Sigmoid" => {
            elementwise::activation(imp, n)
        }
        "Add" | "Sub" | "Mul" | "Div" => elementwise::binary(imp, n),
        "Softmax" => elementwise::softmax(imp, n),
        "Identity" | "Dropout" => alias(imp, n),
        "Concat" => layout::concat(imp, n),
        "Split" => layout::split(imp, n),
        "Slice" => layout::slice(imp, n),
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => layout::reshape(imp, n),
        "Transpose" => layout::transpose(imp, n),
        "Pad" => window::pad(imp, n),
        "MaxPool" | "AveragePool" => window::pool(imp, n),
        "GlobalAveragePool" => window::global_average_pool(imp, n),
        "ReduceMean" => window::reduce_mean(imp, n),
        _ => Err(ImportError::UnsupportedOp {
            node: n.name.to_string(),
            op: n.op.to_string(),
        }),
    }
}

/// `Identity` and inference-mode `Dropout`: the output names the input's value.
fn alias(imp: &mut Importer, n: &NodeRef) -> R<()> {
    if n.op == "Dropout" && n.int("training_mode", 0)? != 0 {
        return Err(n.unsupported("training_mode", 1));
    }
    let value = match imp.input(n, 0)? {
        Some(v) => v.clone(),
        None => return Err(n.error("required input 0 is missing")),
    };
    let out = imp.output_name(n, 0);
    imp.define(out, value)
}

/// Converts integer attribute values to `N` `u32`s, each at least `min`.
pub fn u32_array<const N: usize>(
    n: &NodeRef,
    attribute: &str,
    values: &[i64],
    min: i64,
) -> R<[u32; N]> {
    let ok = values.len() == N && values.iter().all(|&v| v >= min && v <= u32::MAX as i64);
    if !ok {
        return Err(n.unsupported(attribute, values));
    }
    let mut out = [0u32; N];
    for (o, &v) in out.iter_mut().zip(values) {
        *o = v as u32;
    }
    Ok(out)
}

/// The sliding-window parameters shared by `Conv`, `MaxPool` and `AveragePool`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: [u32; 2],
    /// Stride along H and W.
    pub stride: [u32; 2],
    /// Explicit padding: top, left, bottom, right (ONNX order `[x1_begin, x2_begin,
    /// x1_end, x2_end]` is the same order).
    pub pads: [u32; 4],
    /// Dilation along H and W.
    pub dilation: [u32; 2],
}

/// Reads `strides`, `dilations`, `pads` and `auto_pad` for a 2-D window of size `kernel`
/// over an input of spatial size `hw`; `auto_pad` is turned into explicit pads.
pub fn window(n: &NodeRef, kernel: [u32; 2], hw: [u32; 2]) -> R<Window> {
    let stride = match n.ints_opt("strides")? {
        Some(s) => u32_array(n, "strides", s, 1)?,
        None => [1, 1],
    };
    let dilation = match n.ints_opt("dilations")? {
        Some(d) => u32_array(n, "dilations", d, 1)?,
        None => [1, 1],
    };
    let explicit = match n.ints_opt("pads")? {
        Some(p) => u32_array(n, "pads", p, 0)?,
        None => [0; 4],
    };
    let auto_pad = n.string_opt("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let pads = match auto_pad.as_str() {
        "NOTSET" => explicit,
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let upper = auto_pad == "SAME_UPPER";
            let along = |i: usize| {
                same_pads(
                    hw[i] as u64,
                    kernel[i] as u64,
                    stride[i] as u64,
                    dilation[i] as u64,
                    upper,
                )
            };
            let ((t, b), (l, r)) = (along(0), along(1));
            let fit = |v: u64| u32::try_from(v).map_err(|_| n.unsupported("auto_pad", &auto_pad));
            [fit(t)?, fit(l)?, fit(b)?, fit(r)?]
        }
        _ => return Err(n.unsupported("auto_pad", &auto_pad)),
    };
    Ok(Window {
        kernel,
        stride,
        pads,
        dilation,
    })
}

/// The spatial size `[H, W]` of a 4-D activation shape.
pub fn spatial(n: &NodeRef, shape: &[usize]) -> R<[u32; 2]> {
    match shape {
        [_, _, h, w] => Ok([*h as u32, *w as u32]),
        _ => Err(n.error(format!("input must be 4-D NCHW, got {shape:?}"))),
    }
}
