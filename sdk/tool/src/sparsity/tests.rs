use prunus_format::{Activation, Conv, Encoding, Op, WriteOptions};

use super::costs::{AARCH64, X86_64};
use super::*;

/// Deterministic weight values with `zeros` of them (a fraction) set to 0.
fn values(n: usize, zeros: f64, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            if u < zeros {
                0.0
            } else {
                (u as f32 - 0.5) + 0.01
            }
        })
        .collect()
}

fn conv(weight: u32, kernel: u32, groups: u32) -> Op {
    let pad = kernel / 2;
    Op::Conv(Conv {
        weight,
        bias: None,
        kernel: [kernel, kernel],
        stride: [1, 1],
        pads: [pad; 4],
        dilation: [1, 1],
        groups,
        activation: Activation::Relu,
    })
}

/// image → 3x3 conv (first) → depthwise 3x3 → 1x1 (`c` → `out`) → grouped 1x1 (g 4) →
/// 3x3 full → GAP → reshape → Gemm; every weight with a fraction `zeros` of zeros.
fn model(hw: u32, c: u32, out: u32, zeros: f64) -> IrModel {
    let mut m = IrModel::new("t", "test");
    let x = m.add_input("x", &[1, 3, hw, hw]);
    let add = |m: &mut IrModel, name: &str, shape: &[u32], seed| {
        let n = shape.iter().product::<u32>() as usize;
        m.add_weight(name, shape, values(n, zeros, seed))
    };
    let w0 = add(&mut m, "first", &[c, 3, 3, 3], 1);
    let y = m.add_node("first", conv(w0, 3, 1), &[x]).expect("first");
    let w1 = add(&mut m, "dw", &[c, 1, 3, 3], 2);
    let y = m.add_node("dw", conv(w1, 3, c), &[y]).expect("dw");
    let w2 = add(&mut m, "pw", &[out, c, 1, 1], 3);
    let y = m.add_node("pw", conv(w2, 1, 1), &[y]).expect("pw");
    let w3 = add(&mut m, "group", &[out, out / 4, 1, 1], 4);
    let y = m.add_node("group", conv(w3, 1, 4), &[y]).expect("group");
    let w4 = add(&mut m, "full", &[out, out, 3, 3], 5);
    let y = m.add_node("full", conv(w4, 3, 1), &[y]).expect("full");
    let y = m.add_node("gap", Op::GlobalAveragePool, &[y]).expect("gap");
    let y = m
        .add_node_with_shape("flat", Op::Reshape, &[y], Some(vec![1, out]))
        .expect("flat");
    let w5 = add(&mut m, "fc", &[1000, out], 6);
    let fc = Op::Gemm {
        weight: w5,
        bias: None,
        activation: Activation::None,
    };
    let y = m.add_node("fc", fc, &[y]).expect("fc");
    m.set_outputs(&[y]);
    m
}

#[test]
fn first_conv_and_depthwise_are_never_candidates() {
    let m = model(16, 32, 64, 0.9);
    let names: Vec<(String, SparseOp)> = candidates(&m.graph)
        .into_iter()
        .map(|c| (c.node, c.work.op))
        .collect();
    assert_eq!(
        names,
        [
            ("pw".to_string(), SparseOp::Pointwise),
            ("group".to_string(), SparseOp::Pointwise),
            ("full".to_string(), SparseOp::Spatial),
            ("fc".to_string(), SparseOp::Gemm),
        ]
    );
    let c = candidates(&m.graph);
    assert_eq!(
        (c[0].work.rows, c[0].work.cols, c[0].work.pixels),
        (64, 32, 256)
    );
    assert_eq!((c[1].work.cols, c[1].work.rows_per_group), (16, 16));
    assert_eq!(c[2].work.cols, 64 * 9);
    assert_eq!(
        (c[3].work.rows, c[3].work.cols, c[3].work.pixels),
        (1000, 64, 1)
    );
}

#[test]
fn a_dense_weight_never_goes_sparse() {
    for target in [Target::X86_64, Target::Aarch64] {
        for hw in [1, 7, 56, 224] {
            let m = model(hw, 64, 128, 0.0);
            let decisions = plan(&m, target);
            assert_eq!(decisions.len(), 4);
            for d in &decisions {
                assert_eq!(d.zeros, 0.0);
                assert_eq!(d.chosen, None, "{target} hw {hw}: {d:?}");
            }
        }
    }
}

#[test]
fn ninety_five_percent_zeros_1x1_at_large_hw_goes_sparse() {
    for target in [Target::X86_64, Target::Aarch64] {
        let m = model(112, 64, 128, 0.95);
        let decisions = plan(&m, target);
        let d = decisions
            .iter()
            .find(|d| d.candidate.node == "pw")
            .expect("pw");
        assert!(d.chosen.is_some(), "{target}: {d:?}");
        assert!(d.speedup() >= MARGIN, "{target}: {d:?}");
        assert!((d.zeros - 0.95).abs() < 0.02, "{d:?}");
    }
}

#[test]
fn decisions_follow_the_targets_constants_and_margin() {
    assert_ne!(X86_64, AARCH64);
    for (target, costs) in [(Target::X86_64, &X86_64), (Target::Aarch64, &AARCH64)] {
        assert_eq!(target.costs(), costs);
        for zeros in [0.3, 0.5, 0.7, 0.8, 0.9, 0.95] {
            let m = model(28, 64, 128, zeros);
            for d in plan(&m, target) {
                let w = d.candidate.work;
                assert_eq!(d.dense, costs.dense(&w));
                let data = &m.weights[d.candidate.weight as usize];
                // The best block is the cheapest of the allowed ones under this target.
                let best = w
                    .blocks()
                    .map(|b| costs.sparse(&w, b, stored_columns(data, w.rows, w.cols, b)))
                    .fold(f64::INFINITY, f64::min);
                let (_, _, cost) = d.best_sparse.expect("blocks");
                assert_eq!(cost, best);
                assert_eq!(d.chosen.is_some(), cost * MARGIN <= d.dense, "{d:?}");
            }
        }
    }
    // Swapping the constants changes a decision somewhere on a sweep of shapes, so the
    // target is really consulted.
    let mut differs = false;
    for zeros in [0.5, 0.6, 0.7, 0.8, 0.9] {
        for hw in [1, 4, 14, 56] {
            let m = model(hw, 64, 128, zeros);
            let x: Vec<_> = plan(&m, Target::X86_64)
                .into_iter()
                .map(|d| d.chosen)
                .collect();
            let a: Vec<_> = plan(&m, Target::Aarch64)
                .into_iter()
                .map(|d| d.chosen)
                .collect();
            differs |= x != a;
        }
    }
    assert!(differs, "x86_64 and aarch64 decide alike everywhere");
}

/// Blocks of a grouped conv stay inside a group: 6 rows per group allow blocks of 1, 2.
#[test]
fn grouped_blocks_divide_the_group() {
    let w = Workload {
        op: SparseOp::Pointwise,
        rows: 18,
        cols: 6,
        pixels: 100,
        rows_per_group: 6,
    };
    assert_eq!(w.blocks().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn stored_columns_counts_any_nonzero_per_block() {
    // rows: [1 0 0], [0 0 2], [0 0 0]
    let data = [1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0];
    assert_eq!(stored_columns(&data, 3, 3, 1), 2);
    assert_eq!(stored_columns(&data, 3, 3, 2), 2);
    assert_eq!(stored_columns(&data, 3, 3, 4), 2);
    let data = [1.0, 0.0, 0.0, 2.0];
    assert_eq!(stored_columns(&data, 2, 2, 2), 2);
    assert_eq!(stored_columns(&data, 2, 2, 1), 2);
}

/// Applied decisions are written sparse, and the file decodes to the same weights.
#[test]
fn packed_sparse_weights_decode_to_the_originals() {
    let mut m = model(112, 64, 128, 0.95);
    let decisions = pack_sparse(&mut m, Target::X86_64);
    let bytes = m.to_bytes(WriteOptions::default()).expect("write");
    let parsed = prunus_format::parse(&bytes).expect("parse");
    let mut sparse = 0;
    for d in &decisions {
        let info = &parsed.graph.weights[d.candidate.weight as usize];
        match (d.chosen, info.encoding) {
            (Some(b), Encoding::SparseBlocks { block, .. }) => {
                assert_eq!(b, block as usize);
                let (rows, cols) = (d.candidate.work.rows, d.candidate.work.cols);
                let view = prunus_format::sparse::SparseView::new(
                    parsed.weight_bytes(&bytes, info),
                    rows,
                    cols,
                    info.encoding,
                )
                .expect("view");
                assert_eq!(
                    view.to_dense().expect("dense"),
                    m.weights[d.candidate.weight as usize]
                );
                sparse += 1;
            }
            (None, Encoding::F32) => {}
            other => panic!("{}: {other:?}", d.candidate.node),
        }
    }
    assert!(sparse > 0);
}

#[test]
fn targets_parse() {
    assert_eq!("aarch64".parse(), Ok(Target::Aarch64));
    assert_eq!("x86_64".parse(), Ok(Target::X86_64));
    assert!("riscv".parse::<Target>().is_err());
}
