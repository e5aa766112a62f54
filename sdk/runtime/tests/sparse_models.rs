//! Models written with sparse weights against the same models written dense: outputs agree
//! on every ISA and thread count, `run` allocates nothing, and corrupt column indices are an
//! error at session creation.

use prunus::format::builder::ModelBuilder;
use prunus::format::{Activation, Conv, Encoding, Op, TensorId, parse};
use prunus::{AlignedBytes, Error, Isa, Model, Options};

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// Deterministic values with about `sparsity` of them zero.
fn values(n: usize, seed: usize, sparsity: f64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i * 7919 + seed * 104_729) % 10_007;
            if (h as f64 / 10_007.0) < sparsity {
                0.0
            } else {
                ((h % 2001) as f32 / 1000.0 - 1.0) * 0.3
            }
        })
        .collect()
}

struct Net {
    b: ModelBuilder,
    /// `(weight index, block)` of every weight to store sparse.
    sparse: Vec<(usize, u8)>,
}

impl Net {
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: TensorId,
        out_c: u32,
        k: u32,
        stride: u32,
        pad: u32,
        groups: u32,
        block: u8,
        sparsity: f64,
    ) -> TensorId {
        let in_c = self.b.shape(x)[1];
        let n = (out_c * in_c / groups * k * k) as usize;
        let seed = self.b.graph.weights.len();
        let weight = self.b.add_weight(
            &format!("{name}.w"),
            &[out_c, in_c / groups, k, k],
            values(n, seed, sparsity),
        );
        self.sparse.push((weight as usize, block));
        let bias = Some(self.b.add_weight(
            &format!("{name}.b"),
            &[out_c],
            values(out_c as usize, seed + 1, 0.0),
        ));
        let op = Op::Conv(Conv {
            weight,
            bias,
            kernel: [k, k],
            stride: [stride, stride],
            pads: [pad; 4],
            dilation: [1, 1],
            groups,
            activation: Activation::HardSwish,
        });
        self.b.add_node(name, op, &[x]).unwrap()
    }

    /// The model bytes, with the marked weights sparse or all dense.
    fn bytes(&self, sparse: bool) -> AlignedBytes {
        let mut b = self.b.clone();
        if sparse {
            for &(w, block) in &self.sparse {
                b.graph.weights[w].encoding = Encoding::SparseBlocks {
                    block,
                    index_bytes: 0,
                    nnz: 0,
                };
            }
        }
        AlignedBytes::new(&b.to_bytes(Default::default()).unwrap())
    }
}

/// Every sparse path: 1x1 (direct), grouped 1x1, 3x3 (im2col), strided 3x3, strided 1x1,
/// depthwise (decoded dense), one-pixel 1x1 and Gemm (matrix-vector), blocks 1, 2 and 4.
fn small_net() -> Net {
    let mut n = Net {
        b: ModelBuilder::new("sparse", "prunus runtime tests"),
        sparse: Vec::new(),
    };
    let x = n.b.add_input("input", &[1, 24, 15, 13]);
    let t = n.conv("pw", x, 36, 1, 1, 0, 1, 4, 0.7);
    let t = n.conv("gpw", t, 24, 1, 1, 0, 3, 2, 0.5);
    let t = n.conv("c3", t, 22, 3, 1, 1, 1, 1, 0.9);
    let t = n.conv("c3s2", t, 16, 3, 2, 1, 1, 4, 0.6);
    let t = n.conv("dw", t, 16, 3, 1, 1, 16, 1, 0.3);
    let t = n.conv("pws2", t, 12, 1, 2, 0, 1, 2, 0.5);
    let t = n.b.add_node("gap", Op::GlobalAveragePool, &[t]).unwrap();
    let t = n.conv("se", t, 8, 1, 1, 0, 1, 4, 0.5);
    let t =
        n.b.add_node_with_shape("flat", Op::Reshape, &[t], Some(vec![1, 8]))
            .unwrap();
    let seed = n.b.graph.weights.len();
    let weight = n.b.add_weight("fc.w", &[10, 8], values(80, seed, 0.6));
    n.sparse.push((weight as usize, 1));
    let op = Op::Gemm {
        weight,
        bias: None,
        activation: Activation::None,
    };
    let y = n.b.add_node("fc", op, &[t]).unwrap();
    n.b.set_outputs(&[y]);
    n
}

fn run(model: &Model, options: Options, input: &[f32]) -> Vec<f32> {
    let mut session = model.session(options).unwrap();
    session.run(&[input]).unwrap();
    session.output(0).unwrap().to_vec()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{what}: output {i}: sparse {g}, dense {w}"
        );
    }
}

#[test]
fn sparse_model_matches_dense_model_on_every_isa() {
    let _serial = common::serial();
    let net = small_net();
    let (dense, sparse) = (net.bytes(false), net.bytes(true));
    let dense = Model::from_bytes(dense.as_bytes()).unwrap();
    let sparse = Model::from_bytes(sparse.as_bytes()).unwrap();
    let input = values(24 * 15 * 13, 99, 0.0);
    for &isa in Isa::available() {
        let options = || Options {
            isa: Some(isa),
            ..Default::default()
        };
        let want = run(&dense, options(), &input);
        let got = run(&sparse, options(), &input);
        assert_close(&got, &want, isa.name());
        let session = sparse.session(options()).unwrap();
        let report = session.report();
        // Everything but the depthwise convolution runs sparse; it is decoded once.
        assert_eq!(report.sparse_layers, 7, "{report:?}");
        assert_eq!(report.repacked_weights, 1, "{report:?}");
        assert_eq!(report.repacked_bytes, 16 * 9 * 4, "{report:?}");
        assert!(report.sparse_index_bytes > 0 && report.scratch_bytes > 0);
    }
}

/// Input `[1, 64, 40, 40]`: a 1x1 to 100 channels and a 3x3 to 64, both large enough to
/// be split over threads.
fn big_net() -> Net {
    let mut n = Net {
        b: ModelBuilder::new("sparse-threads", "prunus runtime tests"),
        sparse: Vec::new(),
    };
    let x = n.b.add_input("input", &[1, 64, 40, 40]);
    let t = n.conv("pw", x, 100, 1, 1, 0, 1, 4, 0.5);
    let t = n.conv("c3", t, 64, 3, 1, 1, 1, 2, 0.7);
    let t = n.conv("gpw", t, 64, 1, 1, 0, 4, 1, 0.5);
    n.b.set_outputs(&[t]);
    n
}

#[test]
fn any_thread_count_gives_identical_outputs_without_allocating() {
    let _serial = common::serial();
    let net = big_net();
    let (dense, sparse) = (net.bytes(false), net.bytes(true));
    let dense = Model::from_bytes(dense.as_bytes()).unwrap();
    let model = Model::from_bytes(sparse.as_bytes()).unwrap();
    let input = values(64 * 40 * 40, 3, 0.0);
    let want = run(&dense, Options::default(), &input);
    let mut first = None::<Vec<f32>>;
    for threads in [1, 2, 3, 4] {
        let mut session = model
            .session(Options {
                threads,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(session.report().sparse_layers, 3);
        session.run(&[&input]).unwrap();
        let before = common::allocations();
        for _ in 0..3 {
            session.run(&[&input]).unwrap();
        }
        let allocated = common::allocations() - before;
        assert_eq!(
            allocated, 0,
            "{threads} threads: run allocated {allocated} times"
        );
        let out = session.output(0).unwrap();
        assert_close(out, &want, "vs dense");
        match &first {
            None => first = Some(out.to_vec()),
            Some(w) => {
                let same = out.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{threads} threads: output differs from 1 thread");
            }
        }
    }
}

/// Where weight `name`'s block counts and column deltas are in the file, its block counts
/// and its stored columns (the test weights have 1-byte deltas).
fn sparse_parts(bytes: &[u8], name: &str) -> (usize, usize, Vec<usize>, usize) {
    let parsed = parse(bytes).unwrap();
    let info = parsed
        .graph
        .weights
        .iter()
        .find(|w| w.name == name)
        .unwrap();
    let Encoding::SparseBlocks {
        block,
        nnz,
        index_bytes,
    } = info.encoding
    else {
        panic!("{name} is not sparse");
    };
    assert_eq!(index_bytes, 1, "{name}");
    let start = (parsed.sections.weights.offset + info.offset) as usize;
    let counts_at = start + nnz as usize * block as usize * 4;
    let blocks = (info.shape[0] as usize).div_ceil(block as usize);
    let counts = bytes[counts_at..counts_at + blocks * 4]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as usize)
        .collect();
    (counts_at, counts_at + blocks * 4, counts, nnz as usize)
}

#[test]
fn corrupt_sparse_indices_are_an_error_at_session_creation() {
    let _serial = common::serial();
    let net = small_net();
    let good = net.bytes(true).as_bytes().to_vec();
    // A delta past the last column, a repeated column, and a block count larger than what
    // remains; on a direct 1x1, an im2col 3x3, a depthwise weight (decoded dense) and the
    // Gemm.
    for name in ["pw.w", "c3.w", "dw.w", "fc.w"] {
        let (counts_at, deltas_at, counts, nnz) = sparse_parts(&good, name);
        let mut past_end = good.clone();
        past_end[deltas_at + nnz - 1] = 255;
        // The second column of the first block with two or more repeats its first.
        let (b, _) = counts.iter().enumerate().find(|&(_, &c)| c >= 2).unwrap();
        let second: usize = counts[..b].iter().sum::<usize>() + 1;
        let mut repeated = good.clone();
        repeated[deltas_at + second] = 0;
        let mut bad_count = good.clone();
        bad_count[counts_at..counts_at + 4].copy_from_slice(&(nnz as u32 + 1).to_le_bytes());
        for (what, bytes) in [
            ("delta past the end", past_end),
            ("repeated column", repeated),
            ("block count", bad_count),
        ] {
            let aligned = AlignedBytes::new(&bytes);
            let model = Model::from_bytes(aligned.as_bytes()).unwrap();
            match model.session(Options::default()) {
                Err(Error::SparseWeight { name: n, reason }) => {
                    assert_eq!(n, name, "{what}: {reason}");
                }
                Err(e) => panic!("{name}, {what}: unexpected error {e}"),
                Ok(_) => panic!("{name}, {what}: session created"),
            }
        }
    }
}
