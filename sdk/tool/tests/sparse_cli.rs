//! The sparse packing of the `prunus` CLI: `prune` writes sparse layers (and `--dense` none),
//! `inspect` shows them, a sparse `.prunus` can be pruned again, `import` packs an ONNX
//! model with zeros sparse (and `--dense` turns it off), `--target` and `--block` parse.

mod common;

use prunus_format::{Encoding, WriteOptions};
use prunus_tool::zoo::{ZooOptions, build};

use common::{fixture_path, prunus, temp_dir};

fn sparse_layers(path: &str) -> usize {
    let bytes = std::fs::read(path).expect("read");
    prunus_format::parse(&bytes)
        .expect("parse")
        .graph
        .weights
        .iter()
        .filter(|w| matches!(w.encoding, Encoding::SparseBlocks { .. }))
        .count()
}

#[test]
fn prune_and_inspect_sparse_prunus_files() {
    let dir = temp_dir("sparse-cli-prunus");
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let model = build(
        "mobilenet_v2",
        &ZooOptions {
            input_hw: Some(112),
            seed: 0,
        },
    )
    .expect("zoo");
    std::fs::write(
        p("dense.prunus"),
        model.to_bytes(WriteOptions::default()).expect("pack"),
    )
    .expect("write");

    let (ok, text) = prunus(&[
        "prune",
        &p("dense.prunus"),
        "-o",
        &p("s90.prunus"),
        "--sparsity",
        "0.9",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("sparse: "), "{text}");
    let sparse = sparse_layers(&p("s90.prunus"));
    assert!(sparse > 0, "{text}");

    let (ok, text) = prunus(&["inspect", &p("s90.prunus")]);
    assert!(ok, "{text}");
    let sparse_rows: Vec<&str> = text.lines().filter(|l| l.contains(" sparse ")).collect();
    assert_eq!(sparse_rows.len(), sparse, "{text}");
    assert!(
        sparse_rows
            .iter()
            .all(|l| l.contains(" u8 ") || l.contains(" u16 ")),
        "{text}"
    );
    assert!(text.contains("90.0 %"), "{text}");

    // A sparse input is decoded and pruned again; --dense writes no sparse layer.
    let (ok, text) = prunus(&[
        "prune",
        &p("s90.prunus"),
        "-o",
        &p("s95.prunus"),
        "--sparsity",
        "0.95",
        "--block",
        "2",
        "--target",
        "aarch64",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("on aarch64"), "{text}");
    assert!(sparse_layers(&p("s95.prunus")) > 0);
    let (ok, text) = prunus(&[
        "prune",
        &p("s90.prunus"),
        "-o",
        &p("d90.prunus"),
        "--sparsity",
        "0.9",
        "--dense",
    ]);
    assert!(ok, "{text}");
    assert_eq!(sparse_layers(&p("d90.prunus")), 0);
    assert!(
        std::fs::metadata(p("d90.prunus")).unwrap().len()
            > 3 * std::fs::metadata(p("s90.prunus")).unwrap().len()
    );

    let (ok, text) = prunus(&[
        "prune",
        &p("dense.prunus"),
        "-o",
        &p("x.prunus"),
        "--sparsity",
        "0.5",
        "--target",
        "riscv",
    ]);
    assert!(!ok && text.contains("unknown target 'riscv'"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn import_packs_zeros_sparse_unless_dense() {
    let onnx = fixture_path("mobilenet_v1");
    let dir = temp_dir("sparse-cli-onnx");
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let onnx = onnx.to_string_lossy().into_owned();
    let (ok, text) = prunus(&[
        "prune",
        &onnx,
        "-o",
        &p("pruned.prunus"),
        "--sparsity",
        "0.9",
        "--onnx-out",
        &p("pruned.onnx"),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = prunus(&["import", &p("pruned.onnx"), "-o", &p("sparse.prunus")]);
    assert!(ok, "{text}");
    assert!(sparse_layers(&p("sparse.prunus")) > 0, "{text}");
    let (ok, text) = prunus(&[
        "import",
        &p("pruned.onnx"),
        "-o",
        &p("dense.prunus"),
        "--dense",
    ]);
    assert!(ok, "{text}");
    assert_eq!(sparse_layers(&p("dense.prunus")), 0);
    // The unpruned model has no zeros: nothing sparse.
    let (ok, text) = prunus(&["import", &onnx, "-o", &p("orig.prunus")]);
    assert!(ok, "{text}");
    assert_eq!(sparse_layers(&p("orig.prunus")), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
