//! Writing a model file: packs each weight into the layout its op reads, encodes it,
//! aligns it to 64 bytes and assembles header, table, graph and weights.

use crate::container::{self, WEIGHT_ALIGN};
use crate::error::FormatError;
use crate::graph::{Encoding, Graph, Layout};
use crate::layout::{layouts_by_use, matrix_dims, pack_panel8};
use crate::read::validate_graph;

/// Choices made when writing a file.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Store weights as f16 (half the size; widened to f32 at session creation).
    pub f16: bool,
}

/// Writes `graph` with the weight values `weights` (one row-major vector per entry of
/// `graph.weights`, in its logical shape). The `layout`, `encoding`, `offset` and `nbytes`
/// fields of `graph.weights` are ignored and filled in by the writer.
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
    let mut graph = graph.clone();
    let mut section = Vec::new();
    for ((info, data), layout) in graph.weights.iter_mut().zip(weights).zip(layouts) {
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
        let start = section.len().div_ceil(WEIGHT_ALIGN as usize) * WEIGHT_ALIGN as usize;
        section.resize(start, 0);
        let encoding = if options.f16 {
            Encoding::F16
        } else {
            Encoding::F32
        };
        match encoding {
            Encoding::F16 => packed
                .iter()
                .for_each(|&v| section.extend_from_slice(&half::f16::from_f32(v).to_le_bytes())),
            _ => packed
                .iter()
                .for_each(|&v| section.extend_from_slice(&v.to_le_bytes())),
        }
        info.layout = layout;
        info.encoding = encoding;
        info.offset = start as u64;
        info.nbytes = (section.len() - start) as u64;
    }
    let encoded = postcard::to_stdvec(&graph).map_err(|e| FormatError::GraphDecode {
        offset: 0,
        reason: format!("encoding failed: {e}"),
    })?;
    Ok(container::assemble(&encoded, &section))
}
