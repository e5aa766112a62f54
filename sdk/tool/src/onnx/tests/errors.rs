//! Errors, never panics: malformed bytes, unsupported ops and attributes, bad inputs.

use super::*;

pub fn small_model() -> G {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .init_seq("w", &[4, 2, 3, 3], 0.1)
        .init("b", &[4], &[0.0, 1.0, 2.0, 3.0])
        .init_i64("shape", &[2], &[1, -1])
        .node(
            "Conv",
            &["x", "w", "b"],
            &["c"],
            vec![ais("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", &["c"], &["r"], vec![])
        .node(
            "MaxPool",
            &["r"],
            &["p"],
            vec![
                ais("kernel_shape", &[2, 2]),
                ais("strides", &[2, 2]),
                ai("ceil_mode", 1),
            ],
        )
        .node("Reshape", &["p", "shape"], &["y"], vec![])
        .output("y");
    g
}

#[test]
fn small_model_imports() {
    let m = small_model().ok();
    assert_eq!(kinds(&m), ["Conv", "MaxPool", "Reshape"]);
}

#[test]
fn unsupported_op_names_the_node_and_op() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .node("Elu", &["x"], &["y"], vec![])
        .output("y");
    let err = g.import().unwrap_err();
    assert!(
        matches!(&err, ImportError::UnsupportedOp { node, op } if node == "Elu_y" && op == "Elu"),
        "{err}"
    );
    assert!(err.to_string().contains("Elu_y") && err.to_string().contains("'Elu'"));
}

#[test]
fn unsupported_attribute_names_attribute_and_value() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .node(
            "MaxPool",
            &["x"],
            &["y"],
            vec![ais("kernel_shape", &[2, 2]), ais("dilations", &[2, 2])],
        )
        .output("y");
    let err = g.import().unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ImportError::UnsupportedAttribute { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("MaxPool_y") && msg.contains("dilations") && msg.contains('2'),
        "{msg}"
    );
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .init_i64("pads", &[8], &[0, 0, 1, 1, 0, 0, 1, 1])
        .node("Pad", &["x", "pads"], &["y"], vec![astr("mode", "reflect")])
        .output("y");
    let msg = g.import().unwrap_err().to_string();
    assert!(msg.contains("mode") && msg.contains("reflect"), "{msg}");
}

#[test]
fn wrong_attribute_type_is_an_error() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .init_seq("w", &[2, 2, 1, 1], 1.0)
        .node("Conv", &["x", "w"], &["y"], vec![af("group", 1.0)])
        .output("y");
    let err = g.import().unwrap_err();
    assert!(
        matches!(err, ImportError::InvalidAttribute { ref attribute, .. } if attribute == "group"),
        "{err}"
    );
}

#[test]
fn missing_and_undefined_inputs_are_errors() {
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .node("Conv", &["x"], &["y"], vec![])
        .output("y");
    assert!(matches!(g.import(), Err(ImportError::Node { .. })));
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .node("Relu", &["nowhere"], &["y"], vec![])
        .output("y");
    let msg = g.import().unwrap_err().to_string();
    assert!(msg.contains("nowhere"), "{msg}");
    let mut g = G::new(13);
    g.input("x", &[1, 2, 4, 4])
        .node("Relu", &["x"], &["y"], vec![])
        .output("other");
    assert!(matches!(g.import(), Err(ImportError::InvalidModel(_))));
}

#[test]
fn shape_errors_name_the_node() {
    let mut g = G::new(13);
    g.input("x", &[1, 3, 4, 4])
        .init_seq("w", &[2, 2, 1, 1], 1.0)
        .node("Conv", &["x", "w"], &["y"], vec![])
        .output("y");
    let err = g.import().unwrap_err();
    assert!(
        matches!(&err, ImportError::Shape { node, .. } if node == "Conv_y"),
        "{err}"
    );
}

#[test]
fn opset_domain_and_external_data_errors() {
    let mut g = G::new(5);
    g.input("x", &[1, 2])
        .node("Relu", &["x"], &["y"], vec![])
        .output("y");
    assert!(matches!(
        g.import(),
        Err(ImportError::UnsupportedOpset { version: 5 })
    ));
    let mut g = G::new(13);
    g.input("x", &[1, 2])
        .node("Relu", &["x"], &["y"], vec![])
        .output("y");
    g.graph.node[0].domain = Some("com.microsoft".into());
    let err = g.import().unwrap_err();
    assert!(err.to_string().contains("com.microsoft.Relu"), "{err}");
    let mut g = small_model();
    g.graph.initializer[0].external_data = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some("weights.bin".into()),
    }];
    g.graph.initializer[0].raw_data = None;
    assert!(matches!(g.import(), Err(ImportError::ExternalData { .. })));
}

#[test]
fn truncated_bytes_are_a_decode_error() {
    let bytes = small_model().bytes();
    let mut decode_errors = 0;
    for cut in [1, 7, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        match import(&bytes[..cut], &ImportOptions::default()) {
            Err(ImportError::Decode(_)) => decode_errors += 1,
            Err(_) => {}
            Ok(_) => panic!("a model truncated to {cut} bytes imported"),
        }
    }
    assert!(decode_errors >= 3);
    assert!(matches!(
        import(&bytes[..bytes.len() - 1], &ImportOptions::default()),
        Err(ImportError::Decode(_))
    ));
}

#[test]
fn import_file_reports_io_errors() {
    let err = super::super::import_file(
        std::path::Path::new("/nonexistent/model.onnx"),
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ImportError::Io { .. })
            && err.to_string().contains("/nonexistent/model.onnx")
    );
}
