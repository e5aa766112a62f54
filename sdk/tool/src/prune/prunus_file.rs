//! `.prunus` input for unstructured pruning: unpacks the stored weights (dense f32/f16 or
//! blocked sparse) back to their logical row-major form, prunes, and packs again (BatchNorm
//! is already folded there, so only magnitude pruning that keeps shapes is possible).

use prunus_format::layout::unpack_panel8;
use prunus_format::sparse::{SparseView, sparse_matrix_dims};
use prunus_format::{Encoding, Layout, Op, ParsedFile, WeightInfo};

use super::unstructured::{self, Target};
use super::{Granularity, Layers, PruneError};
use crate::IrModel;

/// The logical row-major f32 values of weight `info` of the parsed file `bytes`.
pub fn logical_weight(
    parsed: &ParsedFile,
    bytes: &[u8],
    info: &WeightInfo,
) -> Result<Vec<f32>, PruneError> {
    let fail = |reason: String| PruneError::Format(format!("weight '{}': {reason}", info.name));
    let raw = parsed.weight_bytes(bytes, info);
    let stored: Vec<f32> = match info.encoding {
        Encoding::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Encoding::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Encoding::SparseBlocks { .. } => {
            let (rows, cols) = sparse_matrix_dims(&info.shape)
                .ok_or_else(|| fail(format!("shape {:?} is not a matrix", info.shape)))?;
            return SparseView::new(raw, rows, cols, info.encoding)
                .and_then(|v| v.to_dense())
                .map_err(fail);
        }
        other => {
            return Err(fail(format!(
                "encoding {other:?}; only dense f32/f16 and blocked sparse weights can be read"
            )));
        }
    };
    let logical = match info.layout {
        Layout::RowMajor => stored,
        Layout::Panel8 => {
            let (o, i) = prunus_format::layout::matrix_dims(&info.shape)
                .ok_or_else(|| fail("panel layout on a non-matrix".into()))?;
            unpack_panel8(&stored, o, i)
        }
    };
    if logical.len() != info.numel() {
        return Err(fail("stored length mismatch".into()));
    }
    Ok(logical)
}

/// Reads a `.prunus` file into an in-memory model with logical f32 weights, and whether
/// its dense weights were f16. Sparse weights are decoded and marked dense again: whoever
/// writes the model decides their encoding anew ([`crate::sparsity`]).
pub fn read(bytes: &[u8]) -> Result<(IrModel, bool), PruneError> {
    let mut parsed = prunus_format::parse(bytes).map_err(|e| PruneError::Format(e.to_string()))?;
    let weights = parsed
        .graph
        .weights
        .iter()
        .map(|info| logical_weight(&parsed, bytes, info))
        .collect::<Result<Vec<_>, _>>()?;
    let f16 = parsed
        .graph
        .weights
        .iter()
        .any(|w| w.encoding == Encoding::F16);
    for info in &mut parsed.graph.weights {
        info.encoding = Encoding::F32;
    }
    Ok((
        IrModel {
            graph: parsed.graph,
            weights,
        },
        f16,
    ))
}

/// Unstructured pruning of a `.prunus` model in place: conv weights (1x1 ungrouped only
/// for [`Layers::Pointwise`]) and Gemm weights, never the first convolution nor depthwise
/// convolutions.
pub fn prune(
    model: &mut IrModel,
    layers: Layers,
    granularity: Granularity,
    sparsity: f64,
    global: bool,
) -> Result<Vec<(Target, Vec<bool>)>, PruneError> {
    if granularity == Granularity::Channel {
        return Err(PruneError::Options(
            "a .prunus input (BatchNorm already folded) accepts unstructured, block and N:M pruning only; \
             give the ONNX model for channel pruning"
                .into(),
        ));
    }
    let graph = &model.graph;
    let mut ids = Vec::new();
    for node in &graph.nodes {
        if node
            .inputs
            .first()
            .is_some_and(|x| graph.inputs.contains(x))
        {
            continue;
        }
        let id = match &node.op {
            Op::Conv(c) => {
                let pointwise = c.kernel == [1, 1] && c.groups == 1;
                // Depthwise weights are a small share of the MACs and have no sparse kernel.
                let depthwise = c.groups > 1
                    && graph
                        .weights
                        .get(c.weight as usize)
                        .is_some_and(|w| w.shape.get(1) == Some(&1));
                if depthwise || (layers == Layers::Pointwise && !pointwise) {
                    continue;
                }
                c.weight
            }
            Op::Gemm { weight, .. } if layers == Layers::All => *weight,
            _ => continue,
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut targets: Vec<Target> = ids
        .iter()
        .map(|&id| {
            let info = &graph.weights[id as usize];
            Target {
                name: info.name.clone(),
                dims: info.shape.iter().map(|&d| d as usize).collect(),
                out_axis: 0,
                data: model.weights[id as usize].clone(),
            }
        })
        .collect();
    let masks = unstructured::prune(&mut targets, granularity, sparsity, global)?;
    for (&id, t) in ids.iter().zip(&targets) {
        model.weights[id as usize] = t.data.clone();
    }
    Ok(targets.into_iter().zip(masks).collect())
}
