//! Sessions with several threads: outputs bitwise identical to one thread, and `run` still
//! allocates nothing (a counting global allocator, as in `no_alloc.rs`).

use prunus::format::builder::ModelBuilder;
use prunus::format::{Activation, Conv, Op};

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0) * 0.2)
        .collect()
}

/// Input `[1, 64, 40, 40]`, a 1x1 convolution to 100 channels (13 panels, the last
/// partial), then a grouped 1x1 (g = 5): both large enough to be split over threads.
fn model_bytes() -> Vec<u8> {
    let mut b = ModelBuilder::new("threads", "prunus runtime tests");
    let x = b.add_input("input", &[1, 64, 40, 40]);
    let conv = |b: &mut ModelBuilder, name: &str, x, in_c: u32, out_c: u32, groups: u32| {
        let n = (out_c * in_c / groups) as usize;
        let weight = b.add_weight(
            &format!("{name}.w"),
            &[out_c, in_c / groups, 1, 1],
            values(n, 1),
        );
        let bias = Some(b.add_weight(&format!("{name}.b"), &[out_c], values(out_c as usize, 2)));
        let op = Op::Conv(Conv {
            weight,
            bias,
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            dilation: [1, 1],
            groups,
            activation: Activation::HardSwish,
        });
        b.add_node(name, op, &[x]).unwrap()
    };
    let t1 = conv(&mut b, "pw", x, 64, 100, 1);
    let t2 = conv(&mut b, "gpw", t1, 100, 100, 5);
    b.set_outputs(&[t2]);
    b.to_bytes(Default::default()).unwrap()
}

#[test]
fn any_thread_count_gives_identical_outputs_without_allocating() {
    let bytes = model_bytes();
    let model = prunus::Model::from_bytes(&bytes).unwrap();
    let input = values(64 * 40 * 40, 3);
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
        let out = session.output(0).unwrap();
        match &want {
            None => want = Some(out.to_vec()),
            Some(w) => {
                let same = out.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{threads} threads: output differs from 1 thread");
            }
        }
    }
}
