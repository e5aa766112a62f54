//! Writing a model file: packs each weight into the layout its op reads, encodes it,
//! aligns it to 64 bytes and assembles header, table, graph and weights.

use crate::container::{self, WEIGHT_ALIGN};
use crate::error::FormatError;
use crate::graph::{Encoding, Graph, Layout, WeightId, WeightInfo};
use crate::layout::{PANEL, layouts_by_use, matrix_dims, pack_panel8};
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
    // First pass: each weight's encoding, place and size (sparse ones encoded, they are
    // small), so the file is allocated once and dense weights are packed straight into it
    // (peak memory: the caller's values plus the file, not a weights section copied again).
    let mut stored: Vec<Stored> = Vec::with_capacity(weights.len());
    let mut section_len = 0usize;
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
        let start = section_len.div_ceil(WEIGHT_ALIGN as usize) * WEIGHT_ALIGN as usize;
        let (entry, nbytes) = if let Encoding::SparseBlocks { block, .. } = info.encoding {
            let sparse = encode_sparse(graph_ref, id, info, data, block as usize)?;
            info.layout = Layout::RowMajor;
            info.encoding = sparse.encoding();
            let n = sparse.bytes.len();
            (Stored::Sparse(sparse.bytes), n)
        } else {
            let entry = match layout {
                Layout::RowMajor => Stored::RowMajor,
                Layout::Panel8 => {
                    let (rows, cols) =
                        matrix_dims(&info.shape).ok_or_else(|| FormatError::WeightSize {
                            name: info.name.clone(),
                            offset: 0,
                            reason: format!("shape {:?} is not a matrix", info.shape),
                        })?;
                    Stored::Panel8 { rows, cols }
                }
            };
            info.layout = layout;
            info.encoding = if options.f16 {
                Encoding::F16
            } else {
                Encoding::F32
            };
            let values = match entry {
                Stored::Panel8 { rows, cols } => rows.div_ceil(PANEL) * PANEL * cols,
                _ => data.len(),
            };
            (entry, values * if options.f16 { 2 } else { 4 })
        };
        info.offset = start as u64;
        info.nbytes = nbytes as u64;
        section_len = start + nbytes;
        stored.push(entry);
    }
    let encoded = postcard::to_stdvec(&graph).map_err(|e| FormatError::GraphDecode {
        offset: 0,
        reason: format!("encoding failed: {e}"),
    })?;
    let weights_at = container::weights_offset(encoded.len()) as usize;
    let mut out = vec![0u8; weights_at + section_len];
    for ((info, data), entry) in graph.weights.iter().zip(weights).zip(stored) {
        let at = weights_at + info.offset as usize;
        let dst = &mut out[at..at + info.nbytes as usize];
        match entry {
            Stored::Sparse(bytes) => dst.copy_from_slice(&bytes),
            Stored::RowMajor => put_values(dst, data, options.f16),
            Stored::Panel8 { rows, cols } => {
                put_values(dst, &pack_panel8(data, rows, cols), options.f16)
            }
        }
    }
    container::finish(&mut out, &encoded);
    Ok(out)
}

/// How one weight is stored, as decided by the first pass of [`write`].
enum Stored {
    /// Its values in their logical order.
    RowMajor,
    /// Its `rows x cols` matrix packed as [`Layout::Panel8`].
    Panel8 { rows: usize, cols: usize },
    /// These encoded bytes.
    Sparse(Vec<u8>),
}

/// Writes `values` into `dst` as little-endian f32 or f16 (`dst` holds exactly them).
fn put_values(dst: &mut [u8], values: &[f32], f16: bool) {
    if f16 {
        for (d, &v) in dst.chunks_exact_mut(2).zip(values) {
            d.copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    } else {
        for (d, &v) in dst.chunks_exact_mut(4).zip(values) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    }
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
