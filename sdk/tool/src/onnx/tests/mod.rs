//! Tests of the ONNX importer on small models built in Rust with the prost types.

mod errors;
mod fold;
mod fuzz;
mod layout;
mod lowering;
mod patterns;

use prost::Message;
use prunus_format::{Node, Op};

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{Dimension, dimension};
use super::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
use super::proto::*;
use super::{ImportError, ImportOptions, import};
use crate::IrModel;

/// A tiny ONNX graph builder.
pub struct G {
    pub graph: GraphProto,
    pub opset: i64,
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An f32 tensor proto (raw little-endian data).
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An i64 tensor proto (typed field).
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn attr(name: &str, t: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(t as i32),
        ..Default::default()
    }
}

/// An INT attribute.
pub fn ai(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: Some(v),
        ..attr(name, AttributeType::Int)
    }
}

/// An INTS attribute.
pub fn ais(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, AttributeType::Ints)
    }
}

/// A FLOAT attribute.
pub fn af(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: Some(v),
        ..attr(name, AttributeType::Float)
    }
}

/// A STRING attribute.
pub fn astr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: Some(v.as_bytes().to_vec()),
        ..attr(name, AttributeType::String)
    }
}

/// A TENSOR attribute.
pub fn atensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..attr(name, AttributeType::Tensor)
    }
}

impl G {
    /// An empty graph named "g" at the given opset.
    pub fn new(opset: i64) -> G {
        G {
            graph: GraphProto {
                name: Some("g".into()),
                ..Default::default()
            },
            opset,
        }
    }

    /// A float graph input with static dims.
    pub fn input(&mut self, name: &str, dims: &[i64]) -> &mut Self {
        let dims: Vec<Option<i64>> = dims.iter().map(|&d| Some(d)).collect();
        self.graph.input.push(value_info(name, &dims));
        self
    }

    /// A float graph input with some symbolic dims (`None`).
    pub fn input_sym(&mut self, name: &str, dims: &[Option<i64>]) -> &mut Self {
        self.graph.input.push(value_info(name, dims));
        self
    }

    /// An f32 initializer.
    pub fn init(&mut self, name: &str, dims: &[i64], data: &[f32]) -> &mut Self {
        self.graph.initializer.push(tensor_f32(name, dims, data));
        self
    }

    /// An f32 initializer `0, 1, 2, ...` scaled by `k`.
    pub fn init_seq(&mut self, name: &str, dims: &[i64], k: f32) -> &mut Self {
        let n: i64 = dims.iter().product();
        let data: Vec<f32> = (0..n).map(|i| i as f32 * k).collect();
        self.init(name, dims, &data)
    }

    /// An i64 initializer.
    pub fn init_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> &mut Self {
        self.graph.initializer.push(tensor_i64(name, dims, data));
        self
    }

    /// A node named after its first output.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> &mut Self {
        self.graph.node.push(NodeProto {
            name: Some(format!("{op}_{}", outputs.first().copied().unwrap_or(""))),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
        self
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str) -> &mut Self {
        self.graph.output.push(ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        });
        self
    }

    /// The serialized model.
    pub fn bytes(&self) -> Vec<u8> {
        ModelProto {
            ir_version: Some(8),
            producer_name: Some("rust-test".into()),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// Imports with default options.
    pub fn import(&self) -> Result<IrModel, ImportError> {
        import(&self.bytes(), &ImportOptions::default())
    }

    /// Imports with default options, panicking with the error message on failure.
    pub fn ok(&self) -> IrModel {
        match self.import() {
            Ok(m) => m,
            Err(e) => panic!("import failed: {e}"),
        }
    }
}

/// Op kind names of the graph's nodes, in order.
pub fn kinds(m: &IrModel) -> Vec<&'static str> {
    m.graph.nodes.iter().map(|n| n.op.kind_name()).collect()
}

/// The node writing the tensor called `name`.
pub fn writer<'a>(m: &'a IrModel, name: &str) -> &'a Node {
    m.graph
        .nodes
        .iter()
        .find(|n| n.outputs.iter().any(|&t| m.tensor(t).name == name))
        .unwrap_or_else(|| panic!("no node writes '{name}'"))
}

/// The weight values of weight `id`.
pub fn weight(m: &IrModel, id: u32) -> &[f32] {
    &m.weights[id as usize]
}

/// The conv op of a node.
pub fn conv_of(node: &Node) -> &prunus_format::Conv {
    match &node.op {
        Op::Conv(c) => c,
        other => panic!("expected a conv, got {other:?}"),
    }
}
