//! Sessions with several threads: outputs bitwise identical to one thread, and `run` still
//! allocates nothing (a counting global allocator, as in `no_alloc.rs`).

use prunus::format::builder::ModelBuilder;
use prunus::format::{Activation, BinaryKind, Conv, Op, Pool};

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0) * 0.2)
        .collect()
}

/// Input `[1, 16, 64, 64]`; every kind of step large enough to be split over threads:
/// a full 3x3 convolution (16 -> 64), a depthwise 3x3, a grouped 3x3 (g = 4), a 1x1 whose
/// output is added to the grouped one's (a fused residual), a 1x1 to 100 channels (13
/// panels, the last partial), a grouped 1x1 (g = 5), then global pooling and a Gemm, and a
/// max and an average pooling (3x3 stride 2, split over channels).
fn model_bytes() -> Vec<u8> {
    let mut b = ModelBuilder::new("threads", "prunus runtime tests");
    let x = b.add_input("input", &[1, 16, 64, 64]);
    let conv = |b: &mut ModelBuilder, name: &str, x, [in_c, out_c, k, groups]: [u32; 4], act| {
        let n = (out_c * in_c / groups * k * k) as usize;
        let weight = b.add_weight(
            &format!("{name}.w"),
            &[out_c, in_c / groups, k, k],
            values(n, 1),
        );
        let bias = Some(b.add_weight(&format!("{name}.b"), &[out_c], values(out_c as usize, 2)));
        let op = Op::Conv(Conv {
            weight,
            bias,
            kernel: [k, k],
            stride: [1, 1],
            pads: [k / 2; 4],
            dilation: [1, 1],
            groups,
            activation: act,
        });
        b.add_node(name, op, &[x]).unwrap()
    };
    let relu = Activation::Relu;
    let full = conv(&mut b, "full", x, [16, 64, 3, 1], relu);
    let dw = conv(&mut b, "dw", full, [64, 64, 3, 64], relu);
    let grouped = conv(&mut b, "grouped", dw, [64, 64, 3, 4], relu);
    let pw = conv(&mut b, "pw", grouped, [64, 64, 1, 1], Activation::None);
    let add = Op::Binary {
        kind: BinaryKind::Add,
        activation: Activation::None,
    };
    let sum = b.add_node("add", add, &[pw, grouped]).unwrap();
    let t1 = conv(&mut b, "pw2", sum, [64, 100, 1, 1], Activation::HardSwish);
    let t2 = conv(&mut b, "gpw", t1, [100, 100, 1, 5], Activation::HardSwish);
    let pooled = b.add_node("pool", Op::GlobalAveragePool, &[t2]).unwrap();
    let flat = b
        .add_node_with_shape("flat", Op::Reshape, &[pooled], Some(vec![1, 100]))
        .unwrap();
    let weight = b.add_weight("fc.w", &[5000, 100], values(500_000, 4));
    let bias = Some(b.add_weight("fc.b", &[5000], values(5000, 5)));
    let fc = Op::Gemm {
        weight,
        bias,
        activation: Activation::None,
    };
    let out = b.add_node("fc", fc, &[flat]).unwrap();
    let window = Pool {
        kernel: [3, 3],
        stride: [2, 2],
        pads: [1; 4],
        count_include_pad: false,
    };
    let max = b
        .add_node("max", Op::MaxPool(window.clone()), &[t2])
        .unwrap();
    let avg = b.add_node("avg", Op::AveragePool(window), &[t2]).unwrap();
    b.set_outputs(&[t2, out, max, avg]);
    b.to_bytes(Default::default()).unwrap()
}

#[test]
fn any_thread_count_gives_identical_outputs_without_allocating() {
    let _serial = common::serial();
    let bytes = model_bytes();
    let model = prunus::Model::from_bytes(&bytes).unwrap();
    let input = values(16 * 64 * 64, 3);
    let mut want = None::<Vec<f32>>;
    for threads in [1, 2, 3, 4] {
        let mut session = model
            .session(prunus::Options {
                threads,
                ..Default::default()
            })
            .unwrap();
        session.run(&[&input]).unwrap();
        let before = common::allocations();
        for _ in 0..5 {
            session.run(&[&input]).unwrap();
        }
        let allocated = common::allocations() - before;
        assert_eq!(
            allocated, 0,
            "{threads} threads: run allocated {allocated} times"
        );
        assert_eq!(session.report().fused_residuals, 1);
        let out: Vec<f32> = (0..4)
            .flat_map(|i| session.output(i).unwrap().to_vec())
            .collect();
        match &want {
            None => want = Some(out),
            Some(w) => {
                let same = out.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{threads} threads: output differs from 1 thread");
            }
        }
    }
}
