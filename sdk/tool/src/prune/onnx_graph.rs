//! A light mutable view of an ONNX graph for pruning: nodes, constants by name (initializers
//! and `Constant` nodes), producers/consumers and static shapes of every activation.
//!
//! The importer's shape machinery lowers to the Prunus IR (BatchNorm folded), so this view
//! does its own, smaller propagation over the ONNX ops the families use. It keeps BatchNorm,
//! which structured pruning, the BN criterion and ONNX export need.

use std::collections::HashMap;

use prost::Message;

use super::PruneError;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::tensor_shape_proto::dimension;
use crate::onnx::proto::type_proto::Value as TypeValue;
use crate::onnx::proto::{AttributeProto, ModelProto, NodeProto, TensorProto};

/// The values of a constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    /// Floating point (any float type read as f32).
    F32(Vec<f32>),
    /// Integer (any integer type read as i64).
    I64(Vec<i64>),
}

/// A constant tensor (initializer or `Constant` node output).
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    /// Dimensions.
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub data: ConstData,
}

impl Const {
    /// An f32 constant.
    pub fn f32(dims: Vec<usize>, data: Vec<f32>) -> Self {
        Const {
            dims,
            data: ConstData::F32(data),
        }
    }

    /// An i64 constant.
    pub fn i64(dims: Vec<usize>, data: Vec<i64>) -> Self {
        Const {
            dims,
            data: ConstData::I64(data),
        }
    }

    /// The f32 values, if floating point.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            ConstData::F32(v) => Some(v),
            ConstData::I64(_) => None,
        }
    }

    /// The integer values (floats are truncated), for shape-like inputs.
    pub fn as_i64(&self) -> Vec<i64> {
        match &self.data {
            ConstData::I64(v) => v.clone(),
            ConstData::F32(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }

    fn to_proto(&self, name: &str) -> TensorProto {
        let (data_type, raw): (DataType, Vec<u8>) = match &self.data {
            ConstData::F32(v) => (
                DataType::Float,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            ConstData::I64(v) => (
                DataType::Int64,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        };
        TensorProto {
            name: Some(name.to_string()),
            dims: self.dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type as i32),
            raw_data: Some(raw.into()),
            ..Default::default()
        }
    }
}

/// Reads a `TensorProto` (raw or typed fields; float and integer types).
pub fn read_tensor(t: &TensorProto) -> Result<Const, PruneError> {
    let name = t.name.clone().unwrap_or_default();
    let bad = |reason: &str| PruneError::Tensor {
        tensor: name.clone(),
        reason: reason.to_string(),
    };
    if !t.external_data.is_empty() || t.data_location == Some(1) {
        return Err(bad("external data is not supported"));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad("negative dimension")))
        .collect::<Result<_, _>>()?;
    let numel = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("too many elements"))?;
    let dt = t.data_type.unwrap_or(0);
    let raw = t.raw_data.as_deref();
    let data = match DataType::try_from(dt).unwrap_or(DataType::Undefined) {
        DataType::Float => ConstData::F32(match raw {
            Some(r) => r
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            None => t.float_data.clone(),
        }),
        DataType::Double => ConstData::F32(match raw {
            Some(r) => r
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            None => t.double_data.iter().map(|&v| v as f32).collect(),
        }),
        DataType::Float16 => ConstData::F32(match raw {
            Some(r) => r
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            None => t
                .int32_data
                .iter()
                .map(|&v| half::f16::from_bits(v as u16).to_f32())
                .collect(),
        }),
        DataType::Int64 => ConstData::I64(match raw {
            Some(r) => r
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect(),
            None => t.int64_data.clone(),
        }),
        DataType::Int32 | DataType::Int16 | DataType::Int8 | DataType::Uint8 | DataType::Bool => {
            ConstData::I64(match raw {
                Some(r) if dt == DataType::Int32 as i32 => r
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
                    .collect(),
                Some(r) if dt == DataType::Int8 as i32 => {
                    r.iter().map(|&b| b as i8 as i64).collect()
                }
                Some(r) if dt == DataType::Uint8 as i32 || dt == DataType::Bool as i32 => {
                    r.iter().map(|&b| b as i64).collect()
                }
                Some(_) => return Err(bad("unsupported raw integer type")),
                None => t.int32_data.iter().map(|&v| v as i64).collect(),
            })
        }
        _ => return Err(bad(&format!("unsupported data type {dt}"))),
    };
    let len = match &data {
        ConstData::F32(v) => v.len(),
        ConstData::I64(v) => v.len(),
    };
    if len != numel {
        return Err(bad(&format!("{len} values for dims {dims:?}")));
    }
    Ok(Const { dims, data })
}

/// The ONNX graph being pruned.
#[derive(Clone, Debug)]
pub struct OnnxGraph {
    /// The model with its graph's initializers removed (they live in `consts`) and its
    /// `Constant` nodes removed.
    pub model: ModelProto,
    /// Every constant by name.
    pub consts: HashMap<String, Const>,
    /// Static shape of every activation, by name.
    pub shapes: HashMap<String, Vec<usize>>,
    /// Graph input names (activations only).
    pub inputs: Vec<String>,
    /// Graph output names.
    pub outputs: Vec<String>,
}

impl OnnxGraph {
    /// Parses serialized ONNX and propagates shapes.
    pub fn parse(bytes: &[u8]) -> Result<Self, PruneError> {
        let model = ModelProto::decode(bytes)?;
        Self::from_model(model)
    }

    /// Takes a decoded model.
    pub fn from_model(mut model: ModelProto) -> Result<Self, PruneError> {
        let graph = model
            .graph
            .as_mut()
            .ok_or_else(|| PruneError::Model("no graph".into()))?;
        let mut consts = HashMap::new();
        for t in graph.initializer.drain(..) {
            let name = t.name.clone().unwrap_or_default();
            consts.insert(name, read_tensor(&t)?);
        }
        let mut nodes = Vec::with_capacity(graph.node.len());
        for n in graph.node.drain(..) {
            if n.op_type.as_deref() == Some("Constant") {
                let out = n.output.first().cloned().unwrap_or_default();
                let value = n
                    .attribute
                    .iter()
                    .find(|a| a.name.as_deref() == Some("value"))
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| PruneError::Node {
                        node: node_name(&n),
                        reason: "Constant without a tensor 'value' is not supported".into(),
                    })?;
                consts.insert(out, read_tensor(value)?);
            } else {
                nodes.push(n);
            }
        }
        graph.node = nodes;
        let mut inputs = Vec::new();
        let mut shapes = HashMap::new();
        for vi in &graph.input {
            let name = vi.name.clone().unwrap_or_default();
            if consts.contains_key(&name) {
                continue;
            }
            let dims = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(TypeValue::TensorType(tt)) => tt
                    .shape
                    .as_ref()
                    .map(|s| {
                        s.dim
                            .iter()
                            .enumerate()
                            .map(|(i, d)| match d.value {
                                Some(dimension::Value::DimValue(v)) if v > 0 => v as usize,
                                // A symbolic batch is batch 1, as in the importer.
                                _ if i == 0 => 1,
                                _ => 0,
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            if dims.is_empty() || dims.contains(&0) {
                return Err(PruneError::Model(format!(
                    "graph input '{name}' needs a static shape (got {dims:?})"
                )));
            }
            shapes.insert(name.clone(), dims);
            inputs.push(name);
        }
        graph
            .input
            .retain(|vi| !consts.contains_key(vi.name.as_deref().unwrap_or_default()));
        let outputs = graph
            .output
            .iter()
            .map(|o| o.name.clone().unwrap_or_default())
            .collect();
        let mut g = OnnxGraph {
            model,
            consts,
            shapes,
            inputs,
            outputs,
        };
        g.propagate_shapes()?;
        Ok(g)
    }

    /// The nodes in topological (file) order.
    pub fn nodes(&self) -> &[NodeProto] {
        self.model
            .graph
            .as_ref()
            .map(|g| g.node.as_slice())
            .unwrap_or(&[])
    }

    /// Mutable nodes.
    pub fn nodes_mut(&mut self) -> &mut Vec<NodeProto> {
        &mut self.model.graph.get_or_insert_with(Default::default).node
    }

    /// Consumers of each tensor: node indices.
    pub fn consumers(&self) -> HashMap<&str, Vec<usize>> {
        let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes().iter().enumerate() {
            for input in &n.input {
                if !input.is_empty() {
                    map.entry(input.as_str()).or_default().push(i);
                }
            }
        }
        map
    }

    /// How many nodes read each constant.
    pub fn const_uses(&self) -> HashMap<String, usize> {
        let mut map = HashMap::new();
        for n in self.nodes() {
            for input in &n.input {
                if self.consts.contains_key(input) {
                    *map.entry(input.clone()).or_insert(0) += 1;
                }
            }
        }
        map
    }

    /// The shape of an activation, or an error naming it.
    pub fn shape(&self, name: &str) -> Result<&[usize], PruneError> {
        self.shapes
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| PruneError::Model(format!("no shape for tensor '{name}'")))
    }

    /// Recomputes every activation shape from the graph inputs (checks weights and
    /// activations agree: used after pruning as a consistency check).
    pub fn propagate_shapes(&mut self) -> Result<(), PruneError> {
        let mut shapes: HashMap<String, Vec<usize>> = self
            .inputs
            .iter()
            .filter_map(|i| self.shapes.get(i).map(|s| (i.clone(), s.clone())))
            .collect();
        for node in self.nodes() {
            let outs = super::shapes::infer(node, &self.consts, &shapes)?;
            for (name, shape) in node.output.iter().zip(outs) {
                shapes.insert(name.clone(), shape);
            }
        }
        for o in &self.outputs {
            if !shapes.contains_key(o) {
                return Err(PruneError::Model(format!(
                    "graph output '{o}' is not produced by any node"
                )));
            }
        }
        self.shapes = shapes;
        Ok(())
    }

    /// Serializes the graph: constants used by some node become initializers (in first-use
    /// order), stale `value_info` is dropped.
    pub fn to_model(&self) -> ModelProto {
        let mut model = self.model.clone();
        let graph = model.graph.get_or_insert_with(Default::default);
        let mut seen = std::collections::HashSet::new();
        let mut init = Vec::new();
        for n in &graph.node {
            for input in &n.input {
                if let Some(c) = self.consts.get(input)
                    && seen.insert(input.clone())
                {
                    init.push(c.to_proto(input));
                }
            }
        }
        graph.initializer = init;
        graph.value_info.clear();
        for out in graph.output.iter_mut() {
            let name = out.name.clone().unwrap_or_default();
            if let (Some(shape), Some(TypeValue::TensorType(tt))) = (
                self.shapes.get(&name),
                out.r#type.as_mut().and_then(|t| t.value.as_mut()),
            ) && let Some(s) = tt.shape.as_mut()
                && s.dim.len() == shape.len()
            {
                for (d, &v) in s.dim.iter_mut().zip(shape).skip(1) {
                    d.value = Some(dimension::Value::DimValue(v as i64));
                }
            }
        }
        if model.ir_version.unwrap_or(0) < 4 {
            model.ir_version = Some(4);
        }
        model
    }

    /// Serialized ONNX bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_model().encode_to_vec()
    }

    /// Adds (or replaces) a constant for node `node`'s input `slot`, under a fresh name when
    /// the old constant is shared with other nodes.
    pub fn set_node_const(
        &mut self,
        node: usize,
        slot: usize,
        value: Const,
        uses: &HashMap<String, usize>,
    ) {
        let old = self.nodes()[node]
            .input
            .get(slot)
            .cloned()
            .unwrap_or_default();
        let name = if !old.is_empty() && uses.get(&old).copied().unwrap_or(0) <= 1 {
            old
        } else {
            let base = format!("{}.pruned_{slot}", node_name(&self.nodes()[node]));
            let mut name = base.clone();
            let mut i = 1;
            while self.consts.contains_key(&name) || self.shapes.contains_key(&name) {
                name = format!("{base}.{i}");
                i += 1;
            }
            name
        };
        self.consts.insert(name.clone(), value);
        let inputs = &mut self.nodes_mut()[node].input;
        while inputs.len() <= slot {
            inputs.push(String::new());
        }
        inputs[slot] = name;
    }
}

/// A node's name for messages (its first output when unnamed).
pub fn node_name(n: &NodeProto) -> String {
    match n.name.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => n
            .output
            .first()
            .cloned()
            .unwrap_or_else(|| "<unnamed>".into()),
    }
}

/// The op type.
pub fn op(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or_default()
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

/// Integer attribute.
pub fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).and_then(|a| a.i)
}

/// Float attribute.
pub fn attr_f(n: &NodeProto, name: &str) -> Option<f32> {
    attr(n, name).and_then(|a| a.f)
}

/// Integer-list attribute.
pub fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

/// String attribute.
pub fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name)
        .and_then(|a| a.s.as_ref())
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Sets (or adds) an integer-list attribute.
pub fn set_attr_ints(n: &mut NodeProto, name: &str, values: Vec<i64>) {
    use crate::onnx::proto::attribute_proto::AttributeType;
    match n
        .attribute
        .iter_mut()
        .find(|a| a.name.as_deref() == Some(name))
    {
        Some(a) => a.ints = values,
        None => n.attribute.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: values,
            ..Default::default()
        }),
    }
}

/// Sets (or adds) an integer attribute.
pub fn set_attr_i(n: &mut NodeProto, name: &str, value: i64) {
    use crate::onnx::proto::attribute_proto::AttributeType;
    match n
        .attribute
        .iter_mut()
        .find(|a| a.name.as_deref() == Some(name))
    {
        Some(a) => a.i = Some(value),
        None => n.attribute.push(AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(value),
            ..Default::default()
        }),
    }
}
