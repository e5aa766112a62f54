//! Every ISA's sparse kernels against the naive dense convolution and matrix-vector
//! product on the decoded weights: random sparsity (0-99 %), every block size, odd planes,
//! channels not multiples of the vector width, groups, kxk with pads, strides and dilation,
//! with and without a residual added in the epilogue.

use proptest::prelude::*;
use prunus_format::sparse::{BLOCK_SIZES, SparseView, encode};
use rand::Rng;

use super::{SparseBench, SparseConv, SparseIndex, SparseSource};
use crate::kernels::activation::test_support::*;
use crate::kernels::conv::reference::{Case, naive};
use crate::kernels::{ConvGeom, Epilogue, Isa, KernelTable};
use prunus_format::Activation;

/// `n` values of which about `sparsity` are zero, the rest uniform in `[-1, 1)`.
fn sparse_fill(seed: u64, n: usize, sparsity: f64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let v = r.gen_range(-1.0f32..1.0);
            if r.gen_bool(sparsity) { 0.0 } else { v }
        })
        .collect()
}

/// One convolution case on every available ISA's `sparse_conv`.
fn conv_case(
    case: Case,
    block: usize,
    sparsity: f64,
    act: Activation,
    with_bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let g = case.geom();
    let cols = case.icpg * g.kernel[0] * g.kernel[1];
    let mut r = rng(seed);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let w = sparse_fill(seed ^ 0x5eed, g.out_c * cols, sparsity);
    let bias = fill(&mut r, g.out_c);
    let bias = with_bias.then_some(&bias[..]);
    let want = naive(&g, &x, &w, bias, act);
    let m = encode(&w, g.out_c, cols, block);
    let view = SparseView::new(&m.bytes, g.out_c, cols, m.encoding()).unwrap();
    let source = SparseSource::for_conv(&g);
    let index = SparseIndex::for_conv(&view, &g, source).unwrap();
    let values = view.values();
    let conv = SparseConv {
        geom: &g,
        weights: index.rows(&values, 0..index.blocks()),
        source,
    };
    let epi = Epilogue::new(bias, act);
    // The same case with a residual added in the epilogue: `act(conv + bias + residual)`.
    let res = fill(&mut r, want.len());
    let want_res: Vec<f32> = naive(&g, &x, &w, bias, Activation::None)
        .iter()
        .zip(&res)
        .map(|(&v, &rv)| act.apply(v + rv))
        .collect();
    let epi_res = Epilogue {
        residual: Some(&res),
        ..epi
    };
    let mut scratch = vec![f32::NAN; source.scratch_len(&g)];
    for &isa in Isa::available() {
        for (epi, want) in [(&epi, &want), (&epi_res, &want_res)] {
            let mut y = vec![f32::NAN; want.len()];
            (KernelTable::for_isa(isa).sparse_conv)(&conv, &x, epi, &mut y, &mut scratch);
            assert_close(&y, want).map_err(|e| {
                let with = epi.residual.is_some();
                TestCaseError::fail(format!("{isa:?} block {block} {g:?} residual {with}: {e}"))
            })?;
        }
    }
    Ok(())
}

fn pointwise(groups: usize, icpg: usize, ocpg: usize, h: usize, w: usize) -> Case {
    Case {
        groups,
        icpg,
        ocpg,
        size: [h, w],
        kernel: [1, 1],
        stride: [1, 1],
        pads: [0; 4],
        dilation: [1, 1],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn pointwise_matches_dense_reference_on_every_isa(
        in_c in 1usize..=40, out_c in 1usize..=37, h in 1usize..=23, w in 1usize..=29,
        block_ix in 0usize..3, sparsity in 0.0f64..0.99,
        act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let case = pointwise(1, in_c, out_c, h, w);
        conv_case(case, BLOCK_SIZES[block_ix], sparsity, act, with_bias, seed)?;
    }

    #[test]
    fn grouped_pointwise_matches_dense_reference_on_every_isa(
        groups in 2usize..=6, icpg in 1usize..=13, blocks_per_group in 1usize..=4,
        h in 1usize..=17, w in 1usize..=19, block_ix in 0usize..3, sparsity in 0.0f64..0.99,
        act in any_activation(), seed in any::<u64>(),
    ) {
        let block = BLOCK_SIZES[block_ix];
        let case = pointwise(groups, icpg, blocks_per_group * block, h, w);
        conv_case(case, block, sparsity, act, true, seed)?;
    }

    #[test]
    fn kxk_matches_dense_reference_on_every_isa(
        groups in 1usize..=3, icpg in 1usize..=9, blocks_per_group in 1usize..=5,
        h in 1usize..=19, w in 1usize..=21, k in prop::sample::select(vec![1usize, 2, 3, 5]),
        stride in 1usize..=2, dilation in 1usize..=2, pads in prop::array::uniform4(0usize..=2),
        block_ix in 0usize..3, sparsity in 0.0f64..0.99,
        act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let block = BLOCK_SIZES[block_ix];
        let case = Case {
            groups,
            icpg,
            ocpg: blocks_per_group * block,
            size: [h, w],
            kernel: [k, k],
            stride: [stride, stride],
            pads,
            dilation: [dilation, dilation],
        };
        conv_case(case, block, sparsity, act, with_bias, seed)?;
    }

    #[test]
    fn gemv_matches_dense_reference(
        k in 1usize..=300, o in 1usize..=45, groups in 1usize..=3, block_ix in 0usize..3,
        sparsity in 0.0f64..0.99, act in any_activation(), with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // A one-pixel grouped pointwise convolution (a Gemm when groups == 1).
        let block = BLOCK_SIZES[block_ix];
        let (o, k) = if groups == 1 { (o, k) } else { (groups * block * o.div_ceil(8), k.div_ceil(10)) };
        let g = pointwise(groups, k, o / groups, 1, 1).geom();
        let mut r = rng(seed);
        let x = fill(&mut r, g.in_c);
        let w = sparse_fill(seed ^ 1, o * k, sparsity);
        let bias = fill(&mut r, o);
        let bias = with_bias.then_some(&bias[..]);
        let want = naive(&g, &x, &w, bias, act);
        let m = encode(&w, o, k, block);
        let view = SparseView::new(&m.bytes, o, k, m.encoding()).unwrap();
        let index = SparseIndex::for_gemv(&view, groups).unwrap();
        let values = view.values();
        let epi = Epilogue::new(bias, act);
        for &isa in Isa::available() {
            let mut y = vec![f32::NAN; o];
            (KernelTable::for_isa(isa).sparse_gemv)(&index.rows(&values, 0..index.blocks()), &x, &epi, &mut y);
            assert_close(&y, &want).map_err(|e| TestCaseError::fail(format!("{isa:?}: {e}")))?;
        }
    }
}

#[test]
fn large_planes_cross_pixel_blocks_and_tails() {
    // MobileNet-like shapes: many pixel blocks, partial blocks of rows (out_c % block != 0
    // is allowed ungrouped), planes that are not whole tiles.
    for (block, sparsity) in [(1, 0.9), (2, 0.5), (4, 0.7), (4, 0.0)] {
        conv_case(
            pointwise(1, 96, 23, 29, 31),
            block,
            sparsity,
            Activation::Relu,
            true,
            1,
        )
        .unwrap();
        conv_case(
            pointwise(3, 40, 8, 14, 14),
            block.min(2),
            sparsity,
            Activation::HardSwish,
            true,
            2,
        )
        .unwrap();
        let squeeze_expand = Case {
            groups: 1,
            icpg: 16,
            ocpg: 30,
            size: [27, 27],
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1; 4],
            dilation: [1, 1],
        };
        conv_case(squeeze_expand, block, sparsity, Activation::Relu, false, 3).unwrap();
    }
}

#[test]
fn sub_ranges_of_blocks_match_the_whole_call_bitwise() {
    // What a thread computes: blocks b0..b1 into their rows of y, bias cut to them.
    let g: ConvGeom = pointwise(1, 50, 26, 9, 11).geom();
    let w = sparse_fill(4, 26 * 50, 0.8);
    let mut r = rng(5);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let bias = fill(&mut r, g.out_c);
    let m = encode(&w, 26, 50, 4);
    let view = SparseView::new(&m.bytes, 26, 50, m.encoding()).unwrap();
    let index = SparseIndex::for_conv(&view, &g, SparseSource::Direct).unwrap();
    let values = view.values();
    let hw = 99;
    for &isa in Isa::available() {
        let f = KernelTable::for_isa(isa).sparse_conv;
        let epi = Epilogue::new(Some(&bias), Activation::Relu);
        let whole = SparseConv {
            geom: &g,
            weights: index.rows(&values, 0..7),
            source: SparseSource::Direct,
        };
        let mut want = vec![f32::NAN; 26 * hw];
        f(&whole, &x, &epi, &mut want, &mut []);
        for (b0, b1) in [(0, 3), (3, 7), (6, 7)] {
            let (o0, o1) = (b0 * 4, (b1 * 4).min(26));
            let part = SparseConv {
                weights: index.rows(&values, b0..b1),
                ..whole
            };
            let epi = Epilogue::new(Some(&bias[o0..o1]), Activation::Relu);
            let mut got = vec![f32::NAN; (o1 - o0) * hw];
            f(&part, &x, &epi, &mut got, &mut []);
            let same = got
                .iter()
                .zip(&want[o0 * hw..o1 * hw])
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{isa:?} blocks {b0}..{b1}");
        }
    }
}

#[test]
fn bench_harness_runs_one_convolution_both_ways() {
    let g = Case {
        kernel: [3, 3],
        pads: [1; 4],
        ..pointwise(2, 8, 12, 9, 10)
    }
    .geom();
    for &isa in Isa::available() {
        let mut bench = SparseBench::new(isa, g, 4, 0.7, 3).unwrap();
        bench.run_dense();
        let dense = bench.output().to_vec();
        bench.run_sparse();
        assert_close(bench.output(), &dense).unwrap();
    }
    let depthwise = pointwise(8, 1, 1, 5, 5).geom();
    assert!(SparseBench::new(Isa::Scalar, depthwise, 1, 0.5, 1).is_err());
    assert!(SparseBench::new(Isa::Scalar, g, 8, 0.5, 1).is_err());
}
