//! `prunus prune` end to end on the mobilenet_v2 fixture (tests/fixtures/generated; missing
//! fixtures fail with a message saying how to make them).

mod common;

use common::{fixture_path, prunus, temp_dir};

#[test]
fn prune_writes_outputs_and_refuses_bad_requests() {
    let input = fixture_path("mobilenet_v2");
    let dir = temp_dir("prune-cli");
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let inp = input.to_string_lossy().into_owned();

    let (ok, text) = prunus(&[
        "prune",
        &inp,
        "-o",
        &p("c.prunus"),
        "--granularity",
        "channel",
        "--sparsity",
        "0.3",
        "--round",
        "8",
        "--onnx-out",
        &p("c.onnx"),
        "--masks",
        &p("c.json"),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("MACs:"), "{text}");
    for f in ["c.prunus", "c.onnx", "c.json"] {
        assert!(dir.join(f).metadata().unwrap().len() > 0, "{f}");
    }
    let masks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("c.json")).unwrap()).unwrap();
    assert_eq!(masks["format"], "prunus-masks/1");

    let (ok, text) = prunus(&[
        "prune",
        &inp,
        "-o",
        &p("u.prunus"),
        "--sparsity",
        "0.5",
        "--layers",
        "1x1",
    ]);
    assert!(ok && text.contains("(50.0 %)"), "{text}");
    let (ok, text) = prunus(&[
        "prune",
        &p("u.prunus"),
        "-o",
        &p("nm.prunus"),
        "--granularity",
        "2:4",
    ]);
    assert!(ok, "{text}");

    let (ok, text) = prunus(&[
        "prune",
        &p("u.prunus"),
        "-o",
        &p("x.prunus"),
        "--granularity",
        "channel",
        "--sparsity",
        "0.3",
    ]);
    assert!(
        !ok && text.contains("unstructured, block and N:M"),
        "{text}"
    );
    let before = std::fs::read(dir.join("u.prunus")).unwrap();
    let (ok, text) = prunus(&[
        "prune",
        &p("u.prunus"),
        "-o",
        &p("u.prunus"),
        "--sparsity",
        "0.9",
    ]);
    assert!(!ok && text.contains("refusing to overwrite"), "{text}");
    assert_eq!(std::fs::read(dir.join("u.prunus")).unwrap(), before);
    let (ok, text) = prunus(&[
        "prune",
        &inp,
        "-o",
        &p("y.prunus"),
        "--granularity",
        "channel",
        "--sparsity",
        "0.3",
        "--criterion",
        "activation",
    ]);
    assert!(!ok && text.contains("--calib"), "{text}");
    let (ok, _) = prunus(&[
        "prune",
        &inp,
        "-o",
        &p("y.prunus"),
        "--granularity",
        "block3",
        "--sparsity",
        "0.3",
    ]);
    assert!(!ok);
    std::fs::remove_dir_all(&dir).unwrap();
}
