//! Sparse packing of every zoo family: 1x1, k×k and Gemm weights pruned (unstructured,
//! per-layer magnitude) to 50 % and 90 %, then written three ways — dense (the zeros
//! stored), sparse where the cost model of this machine says so, and every candidate
//! weight sparse (so the sparse kernels run on every layer shape of every family whatever
//! the cost model decides). The runtime's outputs on the sparse files must match the dense
//! file's (cosine ≥ 0.99999), and at 90 % the MobileNet v1/v2 files must be at most 25 % of
//! the dense fp32 file.

mod common;

use prunus_format::{Encoding, WriteOptions};
use prunus_tool::IrModel;
use prunus_tool::prune::{Granularity, Layers, prunus_file};
use prunus_tool::sparsity::{self, Decision, Target};
use prunus_tool::zoo::{FAMILIES, ZooOptions, build};

use common::{cosine, run_prunus_bytes as run};

const MIN_COSINE: f64 = 0.99999;
const MAX_SIZE_RATIO: f64 = 0.25;
const HW: u32 = 96;

fn input(n: usize) -> Vec<f32> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn pruned(name: &str, hw: u32, sparsity: f64) -> IrModel {
    let options = ZooOptions {
        input_hw: Some(hw),
        seed: 0,
    };
    let mut model = build(name, &options).expect("zoo build");
    prunus_file::prune(
        &mut model,
        Layers::All,
        Granularity::Unstructured,
        sparsity,
        false,
    )
    .expect("prune");
    model
}

/// Every candidate stored sparse with its cheapest block size.
fn all_sparse(model: &IrModel) -> (IrModel, usize) {
    let mut model = model.clone();
    let decisions: Vec<Decision> = sparsity::plan(&model, Target::host())
        .into_iter()
        .map(|d| Decision {
            chosen: d.best_sparse.map(|(b, _, _)| b),
            ..d
        })
        .collect();
    sparsity::apply(&mut model, &decisions);
    let n = decisions.iter().filter(|d| d.chosen.is_some()).count();
    (model, n)
}

fn sparse_weights(bytes: &[u8]) -> usize {
    prunus_format::parse(bytes)
        .expect("parse")
        .graph
        .weights
        .iter()
        .filter(|w| matches!(w.encoding, Encoding::SparseBlocks { .. }))
        .count()
}

#[test]
fn sparse_files_run_like_their_dense_zeros() {
    let mut failures = Vec::new();
    for family in FAMILIES {
        for s in [0.5, 0.9] {
            let dense = pruned(family.name, HW, s);
            let dense_bytes = dense.to_bytes(WriteOptions::default()).expect("dense");
            assert_eq!(sparse_weights(&dense_bytes), 0);
            let mut chosen = dense.clone();
            sparsity::pack_sparse(&mut chosen, Target::host());
            let chosen_bytes = chosen.to_bytes(WriteOptions::default()).expect("chosen");
            let (forced, candidates) = all_sparse(&dense);
            let forced_bytes = forced.to_bytes(WriteOptions::default()).expect("forced");
            assert_eq!(sparse_weights(&forced_bytes), candidates);
            assert!(candidates > 0, "{}: no sparse candidates", family.name);
            let x = input(3 * (HW * HW) as usize);
            let reference = run(&dense_bytes, &x);
            for (what, bytes) in [("cost model", &chosen_bytes), ("all sparse", &forced_bytes)] {
                let out = run(bytes, &x);
                let cos = cosine(&reference, &out);
                eprintln!(
                    "{:20} {:>3.0} % {what:10}: {:3} sparse weights, {:>9} bytes (dense {:>9}), cosine {cos:.9}",
                    family.name,
                    100.0 * s,
                    sparse_weights(bytes),
                    bytes.len(),
                    dense_bytes.len()
                );
                if out.len() != reference.len() || cos.is_nan() || cos < MIN_COSINE {
                    failures.push(format!("{} {s} {what}: cosine {cos}", family.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn mobilenets_at_ninety_percent_are_a_quarter_of_dense() {
    for name in ["mobilenet_v1", "mobilenet_v2"] {
        let hw = prunus_tool::zoo::family(name).expect("family").input_hw;
        let dense_file = build(
            name,
            &ZooOptions {
                input_hw: Some(hw),
                seed: 0,
            },
        )
        .expect("zoo")
        .to_bytes(WriteOptions::default())
        .expect("dense");
        let mut model = pruned(name, hw, 0.9);
        sparsity::pack_sparse(&mut model, Target::host());
        let sparse_file = model.to_bytes(WriteOptions::default()).expect("sparse");
        let ratio = sparse_file.len() as f64 / dense_file.len() as f64;
        eprintln!(
            "{name}: {} / {} bytes = {ratio:.3}",
            sparse_file.len(),
            dense_file.len()
        );
        assert!(ratio <= MAX_SIZE_RATIO, "{name}: {ratio}");
    }
}
