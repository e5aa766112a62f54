//! The Winograd convolution of every available ISA against the naive convolution (f64,
//! within a tolerance scaled to the summed magnitudes):
//! random sizes (odd, smaller than a tile, wider than a vector run), channel counts that
//! are not multiples of a panel or a vector, every asymmetric padding, every activation,
//! bias on and off; and a case of several blocks of tile rows.

use super::{WinogradFn, WinogradWeights, applies, pack_weights, scratch_len, winograd_simd};
use crate::kernels::ConvGeom;
use crate::kernels::Epilogue;
use crate::kernels::activation::test_support::*;
use crate::kernels::conv::reference::naive;
use crate::kernels::simd::Simd;
use proptest::prelude::*;
use prunus_format::Activation;

/// Every SIMD instantiation this CPU supports.
fn kernels() -> Vec<(&'static str, WinogradFn)> {
    let mut all: Vec<(&'static str, WinogradFn)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{Avx2, Avx512};
        if Avx2::detect().is_some() {
            all.push(("avx2", winograd_simd::<Avx2>));
        }
        if Avx512::detect().is_some() {
            all.push(("avx512", winograd_simd::<Avx512>));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use crate::kernels::simd::Neon;
        if Neon::detect().is_some() {
            all.push(("neon", winograd_simd::<Neon>));
        }
    }
    all
}

/// A 3x3 stride-1 geometry.
fn geom(in_c: usize, out_c: usize, [h, w]: [usize; 2], pads: [usize; 4]) -> ConvGeom {
    ConvGeom {
        in_c,
        in_h: h,
        in_w: w,
        out_c,
        out_h: h + pads[0] + pads[2] - 2,
        out_w: w + pads[1] + pads[3] - 2,
        kernel: [3, 3],
        stride: [1, 1],
        pads,
        dilation: [1, 1],
        groups: 1,
    }
}

/// Checks every kernel against [`naive`] on one random instance of `g`.
fn check(g: &ConvGeom, act: Activation, with_bias: bool, seed: u64) -> Result<(), TestCaseError> {
    prop_assert!(applies(g), "{g:?}");
    let mut r = rng(seed);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let w = fill(&mut r, g.out_c * g.in_c * 9);
    let bias = fill(&mut r, g.out_c);
    let bias = with_bias.then_some(&bias[..]);
    let want = naive(g, &x, &w, bias, act);
    // Winograd's error scales with the magnitudes summed, not with the (cancelling) sum:
    // each output may differ by 1e-5 of its sum of |x w| (about 170 ulps of it).
    let abs = |v: &[f32]| v.iter().map(|v| v.abs()).collect::<Vec<_>>();
    let scale = naive(g, &abs(&x), &abs(&w), None, Activation::None);
    let u = pack_weights(g, &w);
    let epi = Epilogue::new(bias, act);
    for (name, kernel) in kernels() {
        let mut y = vec![f32::NAN; want.len()];
        let mut scratch = vec![f32::NAN; scratch_len(g)];
        let w = WinogradWeights {
            u: &u,
            out_c: g.out_c,
            first: 0,
        };
        kernel(g, &x, w, &epi, &mut y, &mut scratch);
        for (i, ((&got, &want), &scale)) in y.iter().zip(&want).zip(&scale).enumerate() {
            let tol = 1e-5 * scale + 1e-5 * want.abs().max(1.0);
            prop_assert!(
                (got - want).abs() <= tol,
                "{name} {g:?}: index {i}: got {got}, want {want}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_naive(
        in_c in 8usize..=21,
        out_c in 8usize..=21,
        size in [1usize..=45, 1usize..=45],
        pads in [0usize..3, 0usize..3, 0usize..3, 0usize..3],
        act in any_activation(),
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Grow the input where the padding alone would not fit the kernel.
        let size = [
            size[0].max(3usize.saturating_sub(pads[0] + pads[2])),
            size[1].max(3usize.saturating_sub(pads[1] + pads[3])),
        ];
        check(&geom(in_c, out_c, size, pads), act, with_bias, seed)?;
    }
}

#[test]
fn many_blocks_of_tile_rows() {
    // 64 + 64 channels of 14 tiles per row: a few tile rows per block.
    let g = geom(64, 64, [55, 55], [1, 1, 1, 1]);
    assert!(super::block_rows(&g, g.out_c) < g.out_h.div_ceil(4));
    check(&g, Activation::Relu, true, 7).unwrap();
}

#[test]
fn too_few_channels_or_other_shapes_do_not_apply() {
    let g = geom(8, 8, [10, 10], [1; 4]);
    assert!(applies(&g));
    assert!(!applies(&geom(3, 32, [10, 10], [1; 4])));
    assert!(!applies(&geom(32, 4, [10, 10], [1; 4])));
    assert!(!applies(&ConvGeom {
        stride: [2, 2],
        ..g
    }));
    assert!(!applies(&ConvGeom { groups: 2, ..g }));
    assert!(!applies(&ConvGeom {
        dilation: [2, 2],
        ..g
    }));
    assert!(!applies(&ConvGeom {
        kernel: [5, 5],
        ..g
    }));
}

#[test]
fn a_share_of_the_output_channels_is_bitwise_that_share_of_the_whole() {
    // Several blocks of tile rows (a share of the channels alone would fit larger ones),
    // each call given exactly the whole convolution's scratch.
    let g = geom(96, 40, [90, 70], [1, 0, 2, 1]);
    assert!(super::block_rows(&g, g.out_c) < g.out_h.div_ceil(4));
    let mut r = rng(3);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let w = fill(&mut r, g.out_c * g.in_c * 9);
    let bias = fill(&mut r, g.out_c);
    let u = pack_weights(&g, &w);
    let hw = g.out_h * g.out_w;
    for (name, kernel) in kernels() {
        let mut whole = vec![f32::NAN; g.out_c * hw];
        let mut scratch = vec![f32::NAN; scratch_len(&g)];
        let all = WinogradWeights {
            u: &u,
            out_c: g.out_c,
            first: 0,
        };
        let epi = Epilogue::new(Some(&bias), Activation::Relu);
        kernel(&g, &x, all, &epi, &mut whole, &mut scratch);
        // Channels 16..37: whole panels from 16, a partial last one.
        let share = ConvGeom { out_c: 21, ..g };
        let mut part = vec![f32::NAN; share.out_c * hw];
        let epi = Epilogue::new(Some(&bias[16..37]), Activation::Relu);
        let from16 = WinogradWeights { first: 16, ..all };
        kernel(&share, &x, from16, &epi, &mut part, &mut scratch);
        let want = &whole[16 * hw..37 * hw];
        assert!(
            part.iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}"
        );
    }
}
