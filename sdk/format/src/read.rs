//! Parsing and validating a model file: everything the runtime relies on is checked here,
//! once, so kernels can index weights and activations without further checks.

use std::borrow::Cow;

use crate::container::{self, Sections, WEIGHT_ALIGN};
use crate::error::FormatError;
use crate::graph::{Encoding, Graph, Layout, WeightId, WeightInfo};
use crate::infer::{check_dims, infer_node};
use crate::layout::{layouts_by_use, stored_len};
use crate::sparse;

/// A model file whose header, table, graph and weight ranges have been validated.
#[derive(Clone, Debug)]
pub struct ParsedFile {
    /// The decoded, validated graph.
    pub graph: Graph,
    /// Where the sections are.
    pub sections: Sections,
}

impl ParsedFile {
    /// The stored bytes of one weight (in range: checked at parse time).
    pub fn weight_bytes<'a>(&self, bytes: &'a [u8], info: &WeightInfo) -> &'a [u8] {
        let start = (self.sections.weights.offset + info.offset) as usize;
        &bytes[start..start + info.nbytes as usize]
    }
}

/// Parses and validates a whole file held in memory (metadata only: weights are neither
/// read nor hashed).
pub fn parse(bytes: &[u8]) -> Result<ParsedFile, FormatError> {
    parse_with(bytes.len() as u64, &mut |start, end| {
        Ok::<_, FormatError>(Cow::Borrowed(&bytes[start as usize..end as usize]))
    })
}

/// Parses and validates a file of `file_len` bytes read through `read(start, end)` — e.g.
/// positioned reads of a file that is memory-mapped only for its weights, so opening it
/// makes no page of the mapping resident.
pub fn parse_with<'b, E: From<FormatError>>(
    file_len: u64,
    read: &mut dyn FnMut(u64, u64) -> Result<Cow<'b, [u8]>, E>,
) -> Result<ParsedFile, E> {
    let (sections, graph_bytes) = container::parse_sections_with(file_len, read)?;
    let graph: Graph =
        postcard::from_bytes(&graph_bytes).map_err(|e| FormatError::GraphDecode {
            offset: sections.graph.offset,
            reason: e.to_string(),
        })?;
    validate_graph(&graph)?;
    validate_weights(&graph, &sections)?;
    Ok(ParsedFile { graph, sections })
}

/// Bytes per stored element of an encoding this build executes.
pub fn element_size(encoding: Encoding) -> Option<u64> {
    match encoding {
        Encoding::F32 => Some(4),
        Encoding::F16 => Some(2),
        Encoding::SparseBlocks { .. } | Encoding::SparseNm | Encoding::Int8PerChannel => None,
    }
}

fn validate_weights(graph: &Graph, sections: &Sections) -> Result<(), FormatError> {
    let layouts = layouts_by_use(graph);
    let section_len = sections.weights.length;
    for (id, (w, wanted)) in graph.weights.iter().zip(layouts).enumerate() {
        let dims: Vec<u64> = w.shape.iter().map(|&d| d as u64).collect();
        check_dims(&dims).map_err(|reason| FormatError::Oversized {
            name: w.name.clone(),
            reason,
        })?;
        let end = w.offset.checked_add(w.nbytes);
        if end.is_none_or(|e| e > section_len) {
            return Err(FormatError::WeightOutOfRange {
                name: w.name.clone(),
                offset: w.offset,
                nbytes: w.nbytes,
                start: sections.weights.offset,
                end: sections.weights.offset + section_len,
            });
        }
        if !w.offset.is_multiple_of(WEIGHT_ALIGN) {
            return Err(FormatError::MisalignedWeight {
                name: w.name.clone(),
                offset: sections.weights.offset + w.offset,
            });
        }
        let size_error = |reason: String| FormatError::WeightSize {
            name: w.name.clone(),
            offset: sections.weights.offset + w.offset,
            reason,
        };
        if let Encoding::SparseBlocks { block, .. } = w.encoding {
            if w.layout != Layout::RowMajor {
                return Err(size_error(format!(
                    "sparse weights are stored as row-major matrices, entry says {:?}",
                    w.layout
                )));
            }
            sparse::check_uses(graph, id as WeightId, block as usize).map_err(size_error)?;
            sparse::check_stored_len(&w.shape, w.encoding, w.nbytes).map_err(size_error)?;
            continue;
        }
        let Some(elem) = element_size(w.encoding) else {
            return Err(FormatError::UnsupportedEncoding {
                name: w.name.clone(),
                offset: sections.weights.offset + w.offset,
                encoding: format!("{:?}", w.encoding),
            });
        };
        if wanted != Some(w.layout) {
            return Err(size_error(format!(
                "stored layout {:?}, but its ops read {wanted:?}",
                w.layout
            )));
        }
        let expected = (stored_len(&w.shape, w.layout).ok_or_else(|| {
            size_error(format!(
                "layout {:?} does not fit shape {:?}",
                w.layout, w.shape
            ))
        })? as u64)
            .checked_mul(elem)
            .ok_or_else(|| size_error(format!("shape {:?} overflows a byte count", w.shape)))?;
        if expected != w.nbytes {
            return Err(size_error(format!(
                "shape {:?} as {:?} {:?} needs {expected} bytes, entry says {}",
                w.shape, w.layout, w.encoding, w.nbytes
            )));
        }
    }
    Ok(())
}

/// Checks graph structure (ids in range, each tensor defined once before use) and that
/// every node's stored output shape equals the inferred one.
pub fn validate_graph(graph: &Graph) -> Result<(), FormatError> {
    let invalid = |msg: String| FormatError::InvalidGraph(msg);
    let n = graph.tensors.len();
    for t in &graph.tensors {
        let dims: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
        check_dims(&dims).map_err(|reason| FormatError::Oversized {
            name: t.name.clone(),
            reason,
        })?;
        if t.shape.contains(&0) {
            return Err(invalid(format!(
                "tensor '{}' has an empty dimension",
                t.name
            )));
        }
    }
    let mut defined = vec![false; n];
    let define = |defined: &mut Vec<bool>, id: u32, by: &str| -> Result<(), FormatError> {
        match defined.get_mut(id as usize) {
            None => Err(invalid(format!(
                "{by} refers to tensor index {id} (graph has {n})"
            ))),
            Some(true) => Err(invalid(format!(
                "tensor '{}' is defined twice (again by {by})",
                graph.tensors[id as usize].name
            ))),
            Some(slot) => {
                *slot = true;
                Ok(())
            }
        }
    };
    if graph.inputs.is_empty() || graph.outputs.is_empty() {
        return Err(invalid(
            "graph needs at least one input and one output".into(),
        ));
    }
    for &id in &graph.inputs {
        define(&mut defined, id, "graph input")?;
    }
    for node in &graph.nodes {
        for &id in &node.inputs {
            if !defined.get(id as usize).copied().unwrap_or(false) {
                return Err(invalid(format!(
                    "node '{}' reads tensor index {id} before it is defined",
                    node.name
                )));
            }
        }
        let shape_error = |reason: String| FormatError::ShapeMismatch {
            node: node.name.clone(),
            op: node.op.kind_name(),
            reason,
        };
        let inferred = infer_node(graph, node).map_err(shape_error)?;
        for &id in &node.outputs {
            define(&mut defined, id, &node.name)?;
        }
        let stored = &graph.tensors[node.outputs[0] as usize].shape;
        if *stored != inferred {
            return Err(shape_error(format!(
                "output '{}' is stored as {stored:?}, inferred {inferred:?}",
                graph.tensors[node.outputs[0] as usize].name
            )));
        }
    }
    for &id in &graph.outputs {
        if !defined.get(id as usize).copied().unwrap_or(false) {
            return Err(invalid(format!("graph output index {id} is never defined")));
        }
    }
    Ok(())
}
