//! Writing a model file: packs each weight into the layout its op reads, encodes it,
//! aligns it to 64 bytes and assembles header, table, graph and weights.

use crate::container::{self, WEIGHT_ALIGN};
use crate::error::FormatError;
use crate::graph::{Encoding, Graph, Layout, WeightId, WeightInfo};
use crate::layout::{layouts_by_use, matrix_dims, pack_panel8};
use crate::read::validate_graph;
use crate::sparse::{self, SparseMatrix};

/// Choices made when writing a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Store weights as f16 (half the size; widened to f32 at session creation).
    pub f16: bool,
}

/// Writes `graph` with the weight values `weights` (one row-major vector per entry of
/// `graph.weights`, in its logical shape). The `layout`, `offset` and `nbytes` fields of
/// `graph.weights` are ignored and filled in by the writer; so is `encoding`, except that
/// a weight marked [`Encoding::SparseBlocks`] is stored sparse with that block size (its
/// `index_bytes` and `nnz` are ignored and recomputed).
pub fn write(
    graph: &Graph,
    weights: &[Vec<f32>],
    options: WriteOptions,
) -> Result<Vec<u8>, FormatError> {
    if weights.len() != graph.weights.len() {
        return Err(FormatError::InvalidGraph(format!(
            "{} weight entries but {} weight values",
            graph.weights.len(),
            weights.len()
        )));
    }
    validate_graph(graph)?;
    let layouts = layouts_by_use(graph);
    let graph_ref = graph;
    let mut graph = graph.clone();
    let mut section = Vec::new();
    for (id, ((info, data), layout)) in graph
        .weights
        .iter_mut()
        .zip(weights)
        .zip(layouts)
        .enumerate()
    {
        if data.len() != info.numel() {
            return Err(FormatError::WeightSize {
                name: info.name.clone(),
                offset: 0,
                reason: format!("shape {:?} but {} values", info.shape, data.len()),
            });
        }
        let layout = layout.ok_or_else(|| {
            FormatError::InvalidGraph(format!(
                "weight '{}' is used by ops that need different layouts",
                info.name
            ))
        })?;
        let start = section.len().div_ceil(WEIGHT_ALIGN as usize) * WEIGHT_ALIGN as usize;
        section.resize(start, 0);
        if let Encoding::SparseBlocks { block, .. } = info.encoding {
            let sparse = encode_sparse(graph_ref, id, info, data, block as usize)?;
            section.extend_from_slice(&sparse.bytes);
            info.layout = Layout::RowMajor;
            info.encoding = sparse.encoding();
        } else {
            let packed = match layout {
                Layout::RowMajor => data.clone(),
                Layout::Panel8 => {
                    let (rows, cols) =
                        matrix_dims(&info.shape).ok_or_else(|| FormatError::WeightSize {
                            name: info.name.clone(),
                            offset: 0,
                            reason: format!("shape {:?} is not a matrix", info.shape),
                        })?;
                    pack_panel8(data, rows, cols)
                }
            };
            if options.f16 {
                packed.iter().for_each(|&v| {
                    section.extend_from_slice(&half::f16::from_f32(v).to_le_bytes())
                });
                info.encoding = Encoding::F16;
            } else {
                packed
                    .iter()
                    .for_each(|&v| section.extend_from_slice(&v.to_le_bytes()));
                info.encoding = Encoding::F32;
            }
            info.layout = layout;
        }
        info.offset = start as u64;
        info.nbytes = (section.len() - start) as u64;
    }
    let encoded = postcard::to_stdvec(&graph).map_err(|e| FormatError::GraphDecode {
        offset: 0,
        reason: format!("encoding failed: {e}"),
    })?;
    Ok(container::assemble(&encoded, &section))
}

fn encode_sparse(
    graph: &Graph,
    id: usize,
    info: &WeightInfo,
    data: &[f32],
    block: usize,
) -> Result<SparseMatrix, FormatError> {
    let error = |reason: String| FormatError::WeightSize {
        name: info.name.clone(),
        offset: 0,
        reason,
    };
    if !sparse::BLOCK_SIZES.contains(&block) {
        return Err(error(format!(
            "sparse block of {block} rows (1, 2 or 4 supported)"
        )));
    }
    sparse::check_uses(graph, id as WeightId, block).map_err(error)?;
    let (rows, cols) = sparse::sparse_matrix_dims(&info.shape)
        .ok_or_else(|| error(format!("shape {:?} is not a matrix", info.shape)))?;
    Ok(sparse::encode(data, rows, cols, block))
}
