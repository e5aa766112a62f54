//! The ONNX importer through the crate's public API only: a model built with the public
//! protobuf types, imported from bytes and from a file, packed and parsed back.

use prost::Message;
use prunus_format::{Activation, Op};
use prunus_tool::onnx::proto::attribute_proto::AttributeType;
use prunus_tool::onnx::proto::tensor_proto::DataType;
use prunus_tool::onnx::proto::tensor_shape_proto::{Dimension, dimension};
use prunus_tool::onnx::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
use prunus_tool::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use prunus_tool::onnx::{ImportError, ImportOptions, import, import_file};

fn floats(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(format!("{op}_node")),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

/// Conv(3x3, pad 1) → BatchNormalization → Relu → GlobalAveragePool on a symbolic batch.
fn model_bytes() -> Vec<u8> {
    let dims = [None, Some(2), Some(6), Some(6)]
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("batch".into()),
            }),
            ..Default::default()
        })
        .collect();
    let input = ValueInfoProto {
        name: Some("image".into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pads = AttributeProto {
        name: Some("pads".into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: vec![1, 1, 1, 1],
        ..Default::default()
    };
    let weights: Vec<f32> = (0..4 * 2 * 9).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let graph = GraphProto {
        name: Some("tiny".into()),
        node: vec![
            node("Conv", &["image", "w"], "conv", vec![pads]),
            node(
                "BatchNormalization",
                &["conv", "g", "b", "m", "v"],
                "bn",
                vec![],
            ),
            node("Relu", &["bn"], "relu", vec![]),
            node("GlobalAveragePool", &["relu"], "pooled", vec![]),
        ],
        initializer: vec![
            floats("w", &[4, 2, 3, 3], &weights),
            floats("g", &[4], &[1.0, 0.5, 2.0, 1.0]),
            floats("b", &[4], &[0.0, 0.1, 0.2, 0.3]),
            floats("m", &[4], &[0.0, 0.0, 1.0, -1.0]),
            floats("v", &[4], &[1.0, 1.0, 1.0, 1.0]),
        ],
        input: vec![input],
        output: vec![ValueInfoProto {
            name: Some("pooled".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("onnx_import.rs".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn imports_optimizes_and_packs() {
    let model = import(&model_bytes(), &ImportOptions::default()).unwrap();
    let kinds: Vec<&str> = model.graph.nodes.iter().map(|n| n.op.kind_name()).collect();
    assert_eq!(kinds, ["Conv", "GlobalAveragePool"]);
    let Op::Conv(conv) = &model.graph.nodes[0].op else {
        panic!("not a conv")
    };
    assert_eq!(conv.activation, Activation::Relu);
    assert_eq!(model.tensor(model.graph.nodes[0].outputs[0]).name, "relu");
    assert_eq!(model.shape(model.graph.inputs[0]), &[1, 2, 6, 6]);
    assert_eq!(model.graph.metadata.name, "tiny");

    // Optimizing again changes nothing.
    let mut again = model.clone();
    prunus_tool::passes::optimize(&mut again);
    assert_eq!(again.graph, model.graph);

    let bytes = model.to_bytes(Default::default()).unwrap();
    let parsed = prunus_format::parse(&bytes).unwrap();
    assert_eq!(parsed.graph.nodes.len(), 2);
}

#[test]
fn import_file_and_input_shape_override() {
    let path = std::env::temp_dir().join(format!("prunus-onnx-import-{}.onnx", std::process::id()));
    std::fs::write(&path, model_bytes()).unwrap();
    let options = ImportOptions {
        input_shape: Some(vec![1, 2, 10, 8]),
    };
    let result = import_file(&path, &options);
    let _ = std::fs::remove_file(&path);
    let model = result.unwrap();
    assert_eq!(model.shape(model.graph.outputs[0]), &[1, 4, 1, 1]);
    assert_eq!(model.shape(model.graph.inputs[0]), &[1, 2, 10, 8]);
}

#[test]
fn malformed_bytes_are_errors() {
    let bytes = model_bytes();
    let err = import(&bytes[..bytes.len() / 2], &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImportError::Decode(_)), "{err}");
    assert!(import(b"\xff\xff\xff\xff", &ImportOptions::default()).is_err());
}
