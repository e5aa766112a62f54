//! The import state: which ONNX tensor name is a constant, an activation of the IR graph or
//! a not-yet-materialised view, plus helpers the op lowerings share.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use prunus_format::{Op, TensorId};

use super::attrs::NodeRef;
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::dimension::Value as Dim;
use super::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};
use super::tensor::{self, Tensor};
use super::{ImportError, ImportOptions, fold, lower};
use crate::IrModel;

type R<T> = Result<T, ImportError>;

/// What an ONNX tensor name stands for during import.
#[derive(Clone, Debug)]
pub enum Value {
    /// A constant (initializer, `Constant` node or folded subgraph).
    Const(Rc<Tensor>),
    /// An activation tensor of the IR graph.
    Act(TensorId),
    /// `[1, C, H, W]` viewed as `[1, g, C/g, H, W]` (the first half of a channel shuffle),
    /// `shuffled` once transposed to `[1, C/g, g, H, W]`; never materialised in the IR.
    Grouped {
        /// The 4-D activation viewed.
        src: TensorId,
        /// Number of groups `g`.
        groups: u32,
        /// Whether the `[0, 2, 1, 3, 4]` transpose has been applied.
        shuffled: bool,
        /// The 5-D shape the ONNX graph sees.
        shape: Vec<usize>,
    },
}

/// Import state for one ONNX graph.
pub struct Importer {
    /// The IR graph being built.
    pub model: IrModel,
    /// Default-domain opset version of the model.
    pub opset: i64,
    values: HashMap<String, Value>,
    /// Graph inputs declared NCHW although the ONNX input is NHWC (read through a leading
    /// `Transpose` with `perm = [0, 3, 1, 2]`).
    pub nhwc_inputs: HashSet<TensorId>,
}

/// A printable label for a node: its name, or its op type and first output.
pub fn node_label(node: &NodeProto, index: usize) -> String {
    match (node.name.as_deref(), node.output.first()) {
        (Some(name), _) if !name.is_empty() => name.to_string(),
        (_, Some(out)) if !out.is_empty() => format!("{}:{out}", node.op_type()),
        _ => format!("{}#{index}", node.op_type()),
    }
}

impl Importer {
    /// A new importer producing a model with the given metadata.
    pub fn new(name: &str, producer: &str, opset: i64) -> Self {
        Importer {
            model: IrModel::new(name, producer),
            opset,
            values: HashMap::new(),
            nhwc_inputs: HashSet::new(),
        }
    }

    /// Binds an ONNX tensor name; each name may be defined once (ONNX graphs are SSA).
    pub fn define(&mut self, name: &str, value: Value) -> R<()> {
        if name.is_empty() {
            return Ok(());
        }
        if self.values.insert(name.to_string(), value).is_some() {
            return Err(ImportError::InvalidModel(format!(
                "tensor '{name}' is defined twice"
            )));
        }
        Ok(())
    }

    /// What `name` stands for, if defined.
    pub fn lookup(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Input slot `i` of the node: `None` when absent or empty (an omitted optional input).
    pub fn input(&self, n: &NodeRef, i: usize) -> R<Option<&Value>> {
        match n.proto.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.values.get(name).map(Some).ok_or_else(|| {
                n.error(format!("input '{name}' is not defined before this node (unsupported producer or unsorted graph)"))
            }),
        }
    }

    /// Input slot `i`, which must be an IR activation.
    pub fn act(&self, n: &NodeRef, i: usize) -> R<TensorId> {
        match self.input(n, i)? {
            Some(Value::Act(id)) => Ok(*id),
            Some(Value::Const(_)) => Err(n.error(format!(
                "input {i} ('{}') is a constant; Prunus needs an activation here",
                n.proto.input[i]
            ))),
            Some(Value::Grouped { .. }) => Err(n.error(format!(
                "input {i} is a 5-D view; only the channel-shuffle pattern \
                 Reshape -> Transpose(0,2,1,3,4) -> Reshape is supported"
            ))),
            None => Err(n.error(format!("required input {i} is missing"))),
        }
    }

    /// Input slot `i` as a constant, if it is one (`None` when absent).
    pub fn constant(&self, n: &NodeRef, i: usize) -> R<Option<Rc<Tensor>>> {
        match self.input(n, i)? {
            Some(Value::Const(t)) => Ok(Some(t.clone())),
            Some(_) => Err(n.error(format!(
                "input {i} ('{}') must be a constant (initializer or foldable)",
                n.proto.input[i]
            ))),
            None => Ok(None),
        }
    }

    /// Input slot `i`, which must be present and constant.
    pub fn required_constant(&self, n: &NodeRef, i: usize) -> R<Rc<Tensor>> {
        self.constant(n, i)?
            .ok_or_else(|| n.error(format!("required input {i} is missing")))
    }

    /// Name of output slot `i` (empty when the model does not use it).
    pub fn output_name<'a>(&self, n: &NodeRef<'a>, i: usize) -> &'a str {
        n.proto.output.get(i).map_or("", String::as_str)
    }

    /// Adds an IR node producing output slot `out` of ONNX node `n`; the IR tensor takes the
    /// ONNX output name and the IR node the ONNX node name.
    pub fn emit(
        &mut self,
        n: &NodeRef,
        out: usize,
        op: Op,
        inputs: &[TensorId],
        shape: Option<Vec<u32>>,
    ) -> R<TensorId> {
        let name = self.output_name(n, out).to_string();
        if name.is_empty() {
            return Err(n.error(format!("output {out} has no name")));
        }
        let id = self.emit_named(n, &name, op, inputs, shape)?;
        self.define(&name, Value::Act(id))?;
        Ok(id)
    }

    /// Adds an IR node whose output tensor is called `tensor` (not bound to an ONNX name).
    pub fn emit_named(
        &mut self,
        n: &NodeRef,
        tensor: &str,
        op: Op,
        inputs: &[TensorId],
        shape: Option<Vec<u32>>,
    ) -> R<TensorId> {
        let id = self
            .model
            .add_node_with_shape(tensor, op, inputs, shape)
            .map_err(|e| ImportError::Shape {
                node: n.name.to_string(),
                reason: format!("{} (as {}): {}", n.op, e.op, e.reason),
            })?;
        if let Some(node) = self.model.graph.nodes.last_mut() {
            node.name = n.name.to_string();
        }
        Ok(id)
    }

    /// Static shape of an IR tensor as `usize`s.
    pub fn shape(&self, id: TensorId) -> Vec<usize> {
        self.model.shape(id).iter().map(|&d| d as usize).collect()
    }

    /// Declares the graph's activation inputs (those not also initializers).
    pub fn declare_inputs(&mut self, graph: &GraphProto, options: &ImportOptions) -> R<()> {
        let mut override_shape = options.input_shape.as_deref();
        for vi in &graph.input {
            let name = vi.name.clone().unwrap_or_default();
            if self.values.contains_key(&name) {
                continue; // an initializer listed as an input (IR version < 4 style)
            }
            let shape = input_shape(vi, &name, override_shape.take())?;
            let err = |reason: String| ImportError::Input {
                input: name.clone(),
                reason,
            };
            let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            prunus_format::infer::check_dims(&dims).map_err(err)?;
            if shape.first().is_some_and(|&n| n != 1) {
                return Err(err(format!("shape {shape:?}: only batch 1 is supported")));
            }
            let nhwc = shape.len() == 4 && feeds_only_nhwc_transposes(graph, &name);
            let declared = match shape.as_slice() {
                &[n, h, w, c] if nhwc => vec![n, c, h, w],
                _ => shape,
            };
            let id = self.model.add_input(&name, &declared);
            if nhwc {
                self.nhwc_inputs.insert(id);
                let extra = &mut self.model.graph.metadata.extra;
                extra.push(("input_layout_source".into(), "NHWC".into()));
            }
            self.define(&name, Value::Act(id))?;
        }
        if self.model.graph.inputs.is_empty() {
            return Err(ImportError::InvalidModel(
                "the graph has no activation input".into(),
            ));
        }
        Ok(())
    }

    /// Imports one node: folds it when all its inputs are constants, lowers it otherwise.
    pub fn node(&mut self, proto: &NodeProto, index: usize) -> R<()> {
        let label = node_label(proto, index);
        let n = NodeRef {
            name: &label,
            op: proto.op_type(),
            proto,
        };
        match proto.domain.as_deref() {
            None | Some("") | Some("ai.onnx") => {}
            Some(domain) => {
                return Err(ImportError::UnsupportedOp {
                    node: label.clone(),
                    op: format!("{domain}.{}", n.op),
                });
            }
        }
        if n.op == "Constant" {
            let t = constant_node(&n)?;
            return self.define(self.output_name(&n, 0), Value::Const(Rc::new(t)));
        }
        if let Some(t) = self.static_shape_query(&n)? {
            return self.define(self.output_name(&n, 0), Value::Const(Rc::new(t)));
        }
        let mut consts = Vec::with_capacity(proto.input.len());
        let mut all_const = !proto.input.is_empty();
        for i in 0..proto.input.len() {
            match self.input(&n, i)? {
                Some(Value::Const(t)) => consts.push(Some(t.clone())),
                None => consts.push(None),
                Some(_) => all_const = false,
            }
        }
        if all_const {
            let refs: Vec<Option<&Tensor>> = consts.iter().map(|t| t.as_deref()).collect();
            if let Some(outs) = fold::eval(&n, &refs)? {
                for (i, t) in outs.into_iter().enumerate() {
                    let name = self.output_name(&n, i);
                    self.define(name, Value::Const(Rc::new(t)))?;
                }
                return Ok(());
            }
        }
        lower::lower(self, &n)
    }

    /// `Shape`/`Size` of an activation: answered from its static shape.
    fn static_shape_query(&self, n: &NodeRef) -> R<Option<Tensor>> {
        if !matches!(n.op, "Shape" | "Size") {
            return Ok(None);
        }
        let shape: Vec<usize> = match self.input(n, 0)? {
            Some(Value::Act(id)) => self.shape(*id),
            Some(Value::Grouped { shape, .. }) => shape.clone(),
            Some(Value::Const(t)) => t.shape.clone(),
            None => return Err(n.error("input 0 is missing")),
        };
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        if n.op == "Size" {
            return Ok(Some(Tensor::i64(vec![], vec![dims.iter().product()])));
        }
        let rank = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let start = clamp(n.int("start", 0)?);
        let end = clamp(n.int("end", rank)?).max(start);
        Ok(Some(Tensor::i64(
            vec![end - start],
            dims[start..end].to_vec(),
        )))
    }

    /// Binds the initializers as constants.
    pub fn declare_initializers(
        &mut self,
        initializers: Vec<TensorProto>,
        graph: &GraphProto,
    ) -> R<()> {
        // Each proto (and its slice of the file's buffer) is dropped once decoded.
        for t in initializers {
            let value = tensor::decode(&t)?;
            self.define(
                t.name.as_deref().unwrap_or_default(),
                Value::Const(Rc::new(value)),
            )?;
        }
        if !graph.sparse_initializer.is_empty() {
            return Err(ImportError::InvalidModel(
                "sparse initializers are not supported".into(),
            ));
        }
        Ok(())
    }
}

/// The value of a `Constant` node.
fn constant_node(n: &NodeRef) -> R<Tensor> {
    if let Some(t) = n.tensor_opt("value")? {
        return tensor::decode(t);
    }
    if let Some(v) = n.float_opt("value_float")? {
        return Ok(Tensor::f32(vec![], vec![v]));
    }
    if let Some(v) = n.floats_opt("value_floats")? {
        return Ok(Tensor::f32(vec![v.len()], v.to_vec()));
    }
    if let Some(v) = n.int_opt("value_int")? {
        return Ok(Tensor::i64(vec![], vec![v]));
    }
    if let Some(v) = n.ints_opt("value_ints")? {
        return Ok(Tensor::i64(vec![v.len()], v.to_vec()));
    }
    match n.names().next() {
        Some(other) => Err(n.unsupported(other, "(constant kind)")),
        None => Err(n.error("Constant without a value")),
    }
}

/// The shape of graph input `vi`: the batch dimension defaults to 1 when symbolic, an
/// `override_shape` replaces the declared one, any other unknown dimension is an error.
fn input_shape(vi: &ValueInfoProto, name: &str, override_shape: Option<&[u32]>) -> R<Vec<u32>> {
    let err = |reason: String| ImportError::Input {
        input: name.to_string(),
        reason,
    };
    let tensor = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(super::proto::type_proto::Value::TensorType(t)) => Some(t),
        None => None,
        Some(_) => return Err(err("only tensor inputs are supported".into())),
    };
    if let Some(t) = tensor {
        let elem = t.elem_type.unwrap_or(DataType::Float as i32);
        if elem != DataType::Float as i32 {
            let ty =
                DataType::try_from(elem).map_or(format!("{elem}"), |d| d.as_str_name().to_string());
            return Err(err(format!(
                "element type {ty}; only FLOAT inputs are supported"
            )));
        }
    }
    let dims = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|s| s.dim.as_slice());
    if let Some(shape) = override_shape {
        if let Some(d) = dims.filter(|d| d.len() != shape.len()) {
            return Err(err(format!(
                "override {shape:?} has rank {}, the model's input has rank {}",
                shape.len(),
                d.len()
            )));
        }
        if shape.contains(&0) {
            return Err(err(format!("override {shape:?} has a zero dimension")));
        }
        return Ok(shape.to_vec());
    }
    let dims = dims.ok_or_else(|| err("the model gives no shape: pass an input shape".into()))?;
    dims.iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(Dim::DimValue(v)) if *v > 0 && *v <= u32::MAX as i64 => Ok(*v as u32),
            Some(Dim::DimValue(v)) if *v > 0 => {
                Err(err(format!("dimension {i} = {v} is too large")))
            }
            _ if i == 0 => Ok(1),
            Some(Dim::DimParam(p)) => Err(err(format!(
                "dimension {i} is symbolic ('{p}'): pass an input shape"
            ))),
            _ => Err(err(format!(
                "dimension {i} is unknown: pass an input shape"
            ))),
        })
        .collect()
}

/// Whether every consumer of `input` is a `Transpose` with `perm = [0, 3, 1, 2]`.
fn feeds_only_nhwc_transposes(graph: &GraphProto, input: &str) -> bool {
    let mut consumers = graph
        .node
        .iter()
        .filter(|n| n.input.iter().any(|i| i == input))
        .peekable();
    consumers.peek().is_some()
        && consumers.all(|n| {
            n.op_type() == "Transpose"
                && n.attribute
                    .iter()
                    .any(|a| a.name.as_deref() == Some("perm") && a.ints == [0, 3, 1, 2])
        })
        && !graph
            .output
            .iter()
            .any(|o| o.name.as_deref() == Some(input))
}
