//! Windowed and spatial ops: `MaxPool`, `AveragePool` (with ceil mode), `GlobalAveragePool`
//! (and `ReduceMean` over H and W) and constant `Pad` of H and W.

use prunus_format::{Op, Pool};

use super::{R, spatial, u32_array, window};
use crate::onnx::ImportError;
use crate::onnx::attrs::NodeRef;
use crate::onnx::fold::axes_of;
use crate::onnx::importer::Importer;
use crate::onnx::shape::{normalize_axis, pool_out};

/// `MaxPool` / `AveragePool` with an explicit (possibly ceil-mode) output shape.
pub fn pool(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let shape = imp.shape(x);
    let hw = spatial(n, &shape)?;
    let kernel = n
        .ints_opt("kernel_shape")?
        .ok_or_else(|| n.error("missing attribute 'kernel_shape'"))?;
    let kernel = u32_array::<2>(n, "kernel_shape", kernel, 1)?;
    let win = window(n, kernel, hw)?;
    if win.dilation != [1, 1] {
        return Err(n.unsupported("dilations", win.dilation));
    }
    let max = n.op == "MaxPool";
    if max && n.int("storage_order", 0)? != 0 {
        return Err(n.unsupported("storage_order", n.int("storage_order", 0)?));
    }
    if !imp.output_name(n, 1).is_empty() {
        return Err(n.unsupported("outputs", "Indices (second output)"));
    }
    let ceil = n.int("ceil_mode", 0)? != 0;
    let count_include_pad = !max && n.int("count_include_pad", 0)? != 0;
    let [t, l, b, r] = win.pads.map(u64::from);
    let out = |i: usize, p0: u64, p1: u64| {
        pool_out(
            hw[i] as u64,
            p0,
            p1,
            kernel[i] as u64,
            win.stride[i] as u64,
            ceil,
        )
        .and_then(|v| u32::try_from(v).ok())
    };
    let (Some(oh), Some(ow)) = (out(0, t, b), out(1, l, r)) else {
        return Err(ImportError::Shape {
            node: n.name.to_string(),
            reason: format!(
                "{}: window {kernel:?} does not fit input {shape:?} with pads {:?}",
                n.op, win.pads
            ),
        });
    };
    let p = Pool {
        kernel,
        stride: win.stride,
        pads: win.pads,
        count_include_pad,
    };
    let op = if max {
        Op::MaxPool(p)
    } else {
        Op::AveragePool(p)
    };
    let out_shape = vec![1, shape[1] as u32, oh, ow];
    imp.emit(n, 0, op, &[x], Some(out_shape))?;
    Ok(())
}

/// `GlobalAveragePool` over H and W.
pub fn global_average_pool(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    imp.emit(n, 0, Op::GlobalAveragePool, &[x], None)?;
    Ok(())
}

/// Constant-mode `Pad` of H and W (pads from the input in opset 11+, the attribute before).
pub fn pad(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let rank = imp.shape(x).len();
    let mode = n.string_opt("mode")?.unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(n.unsupported("mode", mode));
    }
    let given = match imp.constant(n, 1)? {
        Some(t) => t.to_i64(),
        None => n
            .ints_opt("pads")?
            .ok_or_else(|| n.error("missing pads"))?
            .to_vec(),
    };
    let value = match imp.constant(n, 2)? {
        Some(t) => t
            .scalar_f32()
            .ok_or_else(|| n.error("constant_value must be a scalar"))?,
        None => n.float("value", 0.0)?,
    };
    // Opset 18: `axes` says which axes `pads` covers.
    let axes: Vec<usize> = match imp.constant(n, 3)? {
        Some(t) => t
            .to_i64()
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<Option<_>>()
            .ok_or_else(|| n.unsupported("axes", t.to_i64()))?,
        None => (0..rank).collect(),
    };
    if given.len() != 2 * axes.len() {
        return Err(n.unsupported("pads", &given));
    }
    let mut full = vec![0i64; 2 * rank];
    for (k, &a) in axes.iter().enumerate() {
        full[a] = given[k];
        full[a + rank] = given[k + axes.len()];
    }
    let nc_padded = rank != 4 || [0, 1, 4, 5].iter().any(|&i| full[i] != 0);
    if nc_padded || full.iter().any(|&p| p < 0) {
        return Err(n.unsupported("pads", &given));
    }
    let pads = u32_array::<4>(n, "pads", &[full[2], full[3], full[6], full[7]], 0)?;
    imp.emit(n, 0, Op::Pad { pads, value }, &[x], None)?;
    Ok(())
}

/// `ReduceMean` over H and W of a 4-D activation (PyTorch's `x.mean([2, 3])`): a global
/// average pool, followed by a reshape to `[1, C]` when `keepdims = 0`.
pub fn reduce_mean(imp: &mut Importer, n: &NodeRef) -> R<()> {
    let x = imp.act(n, 0)?;
    let shape = imp.shape(x);
    let given = axes_of(n, imp.constant(n, 1)?.as_deref())?;
    let mut axes: Vec<usize> = given
        .iter()
        .flatten()
        .map(|&a| normalize_axis(a, shape.len()))
        .collect::<Option<_>>()
        .ok_or_else(|| n.unsupported("axes", &given))?;
    axes.sort_unstable();
    if shape.len() != 4 || axes != [2, 3] {
        return Err(n.unsupported(
            "axes",
            format!("{given:?} on {shape:?} (only H and W of NCHW)"),
        ));
    }
    if n.int("keepdims", 1)? != 0 {
        imp.emit(n, 0, Op::GlobalAveragePool, &[x], None)?;
    } else {
        let pooled = format!("{}::mean", imp.output_name(n, 0));
        let g = imp.emit_named(n, &pooled, Op::GlobalAveragePool, &[x], None)?;
        let flat = vec![1, shape[1] as u32];
        imp.emit(n, 0, Op::Reshape, &[g], Some(flat))?;
    }
    Ok(())
}
