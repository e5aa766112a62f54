//! `.prunus` input for unstructured pruning: unpacks the stored weights back to their
//! logical row-major form, prunes, and packs again (BatchNorm is already folded there, so
//! only magnitude pruning that keeps shapes is possible).

use prunus_format::layout::unpack_panel8;
use prunus_format::{Encoding, Layout, Op};

use super::unstructured::{self, Target};
use super::{Granularity, Layers, PruneError};
use crate::IrModel;

/// Reads a `.prunus` file into an in-memory model with logical f32 weights.
pub fn read(bytes: &[u8]) -> Result<(IrModel, bool), PruneError> {
    let parsed = prunus_format::parse(bytes).map_err(|e| PruneError::Format(e.to_string()))?;
    let mut weights = Vec::with_capacity(parsed.graph.weights.len());
    let mut f16 = false;
    for info in &parsed.graph.weights {
        let raw = parsed.weight_bytes(bytes, info);
        let stored: Vec<f32> = match info.encoding {
            Encoding::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Encoding::F16 => {
                f16 = true;
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect()
            }
            other => {
                return Err(PruneError::Format(format!(
                    "weight '{}' has encoding {other:?}; only dense f32/f16 files can be pruned",
                    info.name
                )));
            }
        };
        let logical = match info.layout {
            Layout::RowMajor => stored,
            Layout::Panel8 => {
                let (o, i) = prunus_format::layout::matrix_dims(&info.shape).ok_or_else(|| {
                    PruneError::Format(format!(
                        "weight '{}': panel layout on a non-matrix",
                        info.name
                    ))
                })?;
                unpack_panel8(&stored, o, i)
            }
        };
        if logical.len() != info.numel() {
            return Err(PruneError::Format(format!(
                "weight '{}': stored length mismatch",
                info.name
            )));
        }
        weights.push(logical);
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
/// for [`Layers::Pointwise`]) and Gemm weights, never the first convolution.
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
                if layers == Layers::Pointwise && !(c.kernel == [1, 1] && c.groups == 1) {
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
