//! ONNX import: parses an ONNX model and lowers it to an optimised [`crate::IrModel`].
//!
//! # What is accepted
//!
//! * Models with a default-domain opset of 11 to 20 (7 to 10 are accepted best-effort for the
//!   attribute forms of `Clip`, `Pad`, `Split`, `Slice`, `Squeeze`/`Unsqueeze`).
//! * Weights as initializers or `Constant` nodes, stored as `raw_data` or typed fields;
//!   floating types become `f32`, integer types `i64`. External data is an error.
//! * Batch 1: a symbolic batch dimension becomes 1. [`ImportOptions::input_shape`] replaces
//!   the shape of the (first) graph input, in the layout the ONNX input has; any other
//!   unknown dimension without it is an error naming the input.
//! * Every node whose inputs are all constants is evaluated (PyTorch shape subgraphs:
//!   `Shape`, `Gather`, `Unsqueeze`, `Concat`, `Reshape`, `Cast`, `Slice`, arithmetic,
//!   `ConstantOfShape`, `Range`...); `Shape` of an activation is its static shape.
//! * The ops of the Prunus IR: `Conv`, `Gemm`/`MatMul` (constant weights, `[1, K]` input),
//!   `BatchNormalization`, `Relu`/`Clip`/`LeakyRelu`/`HardSigmoid`/`HardSwish`/`Sigmoid`,
//!   `Add`/`Sub`/`Mul`/`Div` (two activations, or an activation and a scalar or per-channel
//!   constant), `Concat`/`Split`/`Slice` along channels, `MaxPool`/`AveragePool` (ceil mode,
//!   `auto_pad`), `GlobalAveragePool` (and `ReduceMean` over H and W), `Flatten`/`Reshape`/`Squeeze`/`Unsqueeze`, `Softmax`,
//!   constant `Pad` of H/W, `Identity`/`Dropout` (removed). `Transpose` only as the middle of
//!   the channel shuffle `Reshape [1,g,C/g,H,W] → Transpose [0,2,1,3,4] → Reshape [1,C,H,W]`
//!   (→ `ChannelShuffle`) or as a leading `[0,3,1,2]` transpose of an NHWC graph input.
//!
//! # Layout
//!
//! The Prunus graph input is always NCHW. When an ONNX input is NHWC and feeds only
//! `Transpose(perm = [0, 3, 1, 2])` nodes (tf2onnx/Keras exports), the Prunus input is declared
//! as `[N, C, H, W]` under the same name, the transposes disappear, and the metadata records
//! `("input_layout_source", "NHWC")`: callers must feed NCHW data.
//!
//! # Names
//!
//! IR tensors keep their ONNX names. When the passes fuse a chain (conv → BN → relu), the
//! fused node writes the last tensor of the chain, so asking for that ONNX name returns the
//! same values. Tensors removed by fusion or aliasing (`Identity`, `Dropout`) are gone.

mod attrs;
mod fold;
mod importer;
mod lower;
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto;
pub(crate) mod shape;
mod tensor;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use prost::Message;
use prunus_format::{Op, TensorId};

use crate::IrModel;
use importer::{Importer, Value};
use proto::ModelProto;

/// Options for [`import`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Shape of the first graph input, replacing the one in the model (needed when the model
    /// has symbolic H/W, or to change the resolution). Given in the ONNX input's own layout.
    pub input_shape: Option<Vec<u32>>,
}

/// Why an ONNX model could not be imported. Messages name the node, op and attribute.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bytes are not a valid ONNX protobuf.
    #[error("malformed ONNX protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The file could not be read.
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The default-domain opset is outside the supported range.
    #[error(
        "unsupported opset {version} (Prunus imports opsets 11 to 20, and 7 to 10 best-effort)"
    )]
    UnsupportedOpset {
        /// Declared version.
        version: i64,
    },
    /// An op Prunus cannot represent.
    #[error("node '{node}': unsupported op '{op}'")]
    UnsupportedOp {
        /// Node name.
        node: String,
        /// ONNX op type (with its domain when not the default one).
        op: String,
    },
    /// A well-formed attribute value Prunus does not support.
    #[error("node '{node}' ({op}): unsupported {attribute} = {value}")]
    UnsupportedAttribute {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// Attribute name.
        attribute: String,
        /// The offending value.
        value: String,
    },
    /// An attribute of the wrong type.
    #[error("node '{node}' ({op}): attribute '{attribute}': {reason}")]
    InvalidAttribute {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// Attribute name.
        attribute: String,
        /// What is wrong.
        reason: String,
    },
    /// A node's inputs are missing, of the wrong kind or inconsistent.
    #[error("node '{node}' ({op}): {reason}")]
    Node {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// Shape inference rejected the lowered node (the reason starts with the ONNX op type).
    #[error("node '{node}': shape error: {reason}")]
    Shape {
        /// Node name.
        node: String,
        /// The op type and what is inconsistent.
        reason: String,
    },
    /// A graph input cannot be declared (unknown dimensions, wrong type).
    #[error("graph input '{input}': {reason}")]
    Input {
        /// Input name.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's data does not match its declaration.
    #[error("tensor '{tensor}': {reason}")]
    InvalidTensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor of an element type Prunus does not read.
    #[error("tensor '{tensor}': unsupported data type {data_type}")]
    UnsupportedDataType {
        /// Tensor name.
        tensor: String,
        /// ONNX data type name.
        data_type: String,
    },
    /// A tensor stored outside the model file.
    #[error(
        "tensor '{tensor}' uses external data, which is not supported: re-save the model with \
         all tensors embedded (onnx.save_model(model, path, save_as_external_data=False))"
    )]
    ExternalData {
        /// Tensor name.
        tensor: String,
    },
    /// Anything else structurally wrong with the model.
    #[error("invalid ONNX model: {0}")]
    InvalidModel(String),
}

/// Supported default-domain opsets (7 to 10 best-effort, see the module docs).
const OPSETS: std::ops::RangeInclusive<i64> = 7..=20;

/// Imports an ONNX model from its serialized bytes and optimises it ([`crate::passes::optimize`]).
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<IrModel, ImportError> {
    import_model(ModelProto::decode(bytes)?, options)
}

/// [`import`] of a decoded model. The initializers are taken out of the graph and each is
/// dropped once decoded.
fn import_model(mut model: ModelProto, options: &ImportOptions) -> Result<IrModel, ImportError> {
    let initializers = model
        .graph
        .as_mut()
        .map(|g| std::mem::take(&mut g.initializer))
        .unwrap_or_default();
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::InvalidModel("no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .map(|o| o.version.unwrap_or(0))
        .ok_or_else(|| ImportError::InvalidModel("no default-domain opset import".into()))?;
    if !OPSETS.contains(&opset) {
        return Err(ImportError::UnsupportedOpset { version: opset });
    }
    let producer = format!("prunus {} (onnx import)", env!("CARGO_PKG_VERSION"));
    let mut imp = Importer::new(graph.name.as_deref().unwrap_or_default(), &producer, opset);
    let extra = &mut imp.model.graph.metadata.extra;
    extra.push(("opset".into(), opset.to_string()));
    extra.push((
        "source_producer".into(),
        model.producer_name.clone().unwrap_or_default(),
    ));
    imp.declare_initializers(initializers, graph)?;
    imp.declare_inputs(graph, options)?;
    for (i, node) in graph.node.iter().enumerate() {
        imp.node(node, i)?;
    }
    let outputs: Vec<String> = graph
        .output
        .iter()
        .map(|o| o.name.clone().unwrap_or_default())
        .collect();
    set_outputs(&mut imp, &outputs)?;
    let mut ir = imp.model;
    crate::passes::optimize(&mut ir);
    Ok(ir)
}

/// Reads and imports an ONNX file.
pub fn import_file(path: &Path, options: &ImportOptions) -> Result<IrModel, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Decoded from shared bytes, the tensors' `raw_data` are slices of the file's buffer,
    // not copies. Every slice but the initializers' is then copied out (they are small:
    // `Constant` values, subgraphs), so the buffer is freed as soon as the initializers are
    // decoded, before lowering copies weights again.
    let mut model = ModelProto::decode(prost::bytes::Bytes::from(bytes))?;
    if let Some(graph) = model.graph.as_mut() {
        for node in &mut graph.node {
            node.attribute.iter_mut().for_each(detach_attribute);
        }
    }
    import_model(model, options)
}

/// Copies the `raw_data` of every tensor an attribute holds (and of its subgraphs) out of
/// the buffer it was decoded from.
fn detach_attribute(a: &mut proto::AttributeProto) {
    let sparse = a.sparse_tensor.iter_mut().chain(&mut a.sparse_tensors);
    let tensors = a.t.iter_mut().chain(&mut a.tensors);
    for t in tensors.chain(sparse.filter_map(|s| s.values.as_mut())) {
        detach_tensor(t);
    }
    for g in a.g.iter_mut().chain(&mut a.graphs) {
        g.initializer.iter_mut().for_each(detach_tensor);
        for node in &mut g.node {
            node.attribute.iter_mut().for_each(detach_attribute);
        }
    }
}

/// Copies a tensor's `raw_data` into its own allocation.
fn detach_tensor(t: &mut proto::TensorProto) {
    if let Some(raw) = t.raw_data.as_mut() {
        *raw = prost::bytes::Bytes::copy_from_slice(raw);
    }
}

/// Declares the graph outputs, keeping their ONNX names even when an output is an alias
/// (`Identity`) of another tensor: the tensor is renamed, or copied by an identity reshape
/// when it is a graph input or already another output.
fn set_outputs(imp: &mut Importer, names: &[String]) -> Result<(), ImportError> {
    let mut ids: Vec<TensorId> = Vec::with_capacity(names.len());
    for name in names {
        let id = match imp.lookup(name) {
            Some(Value::Act(id)) => *id,
            Some(Value::Const(_)) => {
                return Err(ImportError::InvalidModel(format!(
                    "graph output '{name}' is a constant"
                )));
            }
            Some(Value::Grouped { .. }) => {
                return Err(ImportError::InvalidModel(format!(
                    "graph output '{name}' is a 5-D view"
                )));
            }
            None => {
                return Err(ImportError::InvalidModel(format!(
                    "graph output '{name}' is not produced by any node"
                )));
            }
        };
        let model = &mut imp.model;
        let id = if model.tensor(id).name == *name {
            id
        } else if !ids.contains(&id) && !model.graph.inputs.contains(&id) {
            model.graph.tensors[id as usize].name = name.clone();
            id
        } else {
            let shape = model.shape(id).to_vec();
            model
                .add_node_with_shape(name, Op::Reshape, &[id], Some(shape))
                .map_err(|e| ImportError::InvalidModel(format!("graph output '{name}': {e}")))?
        };
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(ImportError::InvalidModel("the graph has no outputs".into()));
    }
    imp.model.set_outputs(&ids);
    Ok(())
}
