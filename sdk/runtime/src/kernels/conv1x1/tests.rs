//! Every ISA's pointwise kernels (the kernel table's `conv1x1` and `group_conv1x1` slots)
//! against the naive reference: odd widths, channels not multiples of the vector width or
//! the panel, every activation, bias on and off, groups, strides and padding.

use super::reference::{geom, naive};
use crate::kernels::activation::test_support::*;
use crate::kernels::{Epilogue, Isa, KernelTable};
use proptest::prelude::*;
use prunus_format::Activation;
use prunus_format::layout::pack_panel8;

/// One case on every available ISA: `groups == 1` runs `conv1x1` on Panel8 weights,
/// otherwise `group_conv1x1` on row-major weights; `residual` adds a random tensor in the
/// epilogue (`act(conv + bias + residual)`).
#[allow(clippy::too_many_arguments)] // the case's independent parameters
fn run(
    sizes: (usize, usize, usize, usize),
    stride: [usize; 2],
    pads: [usize; 4],
    groups: usize,
    act: Activation,
    with_bias: bool,
    residual: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let g = geom(sizes, stride, pads, groups);
    let mut r = rng(seed);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let w_rm = fill(&mut r, g.out_c * g.in_c / groups);
    let bias = fill(&mut r, g.out_c);
    let bias = with_bias.then_some(&bias[..]);
    let res = fill(&mut r, g.out_c * g.out_h * g.out_w);
    let want = match residual {
        false => naive(&g, &x, &w_rm, bias, act),
        true => naive(&g, &x, &w_rm, bias, Activation::None)
            .iter()
            .zip(&res)
            .map(|(&v, &rv)| act.apply(v + rv))
            .collect(),
    };
    let w = if groups == 1 {
        pack_panel8(&w_rm, g.out_c, g.in_c)
    } else {
        w_rm
    };
    let epi = Epilogue {
        residual: residual.then_some(&res[..]),
        ..Epilogue::new(bias, act)
    };
    for &isa in Isa::available() {
        let table = KernelTable::for_isa(isa);
        let f = if groups == 1 {
            table.conv1x1
        } else {
            table.group_conv1x1
        };
        let mut y = vec![f32::NAN; want.len()];
        f(&g, &x, &w, &epi, &mut y);
        assert_close(&y, &want).map_err(|e| TestCaseError::fail(format!("{isa:?}: {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pointwise_stride1_matches_reference_on_every_isa(
        in_c in 1usize..=37, out_c in 1usize..=37, h in 1usize..=23, w in 1usize..=29,
        act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
        with_residual in any::<bool>(),
    ) {
        run((in_c, out_c, h, w), [1, 1], [0; 4], 1, act, with_bias, with_residual, seed)?;
    }

    #[test]
    fn pointwise_strided_padded_matches_reference_on_every_isa(
        in_c in 1usize..=19, out_c in 1usize..=19, h in 1usize..=13, w in 1usize..=13,
        sh in 1usize..=2, sw in 1usize..=2, pads in prop::array::uniform4(0usize..=1),
        act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run((in_c, out_c, h, w), [sh, sw], pads, 1, act, with_bias, false, seed)?;
    }

    #[test]
    fn grouped_pointwise_matches_reference_on_every_isa(
        groups in 2usize..=8, icg in 1usize..=13, ocg in 1usize..=13,
        h in 1usize..=17, w in 1usize..=19,
        act in any_activation(), with_bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run((groups * icg, groups * ocg, h, w), [1, 1], [0; 4], groups, act, with_bias, false, seed)?;
    }
}

#[test]
fn every_activation_both_layouts_and_tails() {
    // 9 output channels (a partial panel and tile), planes of 1, 3, 5x7 = 35 (tail after
    // whole vectors) and 7x9 = 63; ShuffleNet's 20 channels per group of 3.
    for act in ALL_ACTIVATIONS {
        for (h, w) in [(1, 1), (1, 3), (5, 7), (7, 9)] {
            run((5, 9, h, w), [1, 1], [0; 4], 1, act, true, true, 1).unwrap();
            run((12, 60, h, w), [1, 1], [0; 4], 3, act, true, false, 2).unwrap();
        }
    }
}

#[test]
fn large_planes_cross_pixel_blocks() {
    // 600 input channels: blocks of one tile; 37x23 pixels: many blocks and a tail.
    run(
        (600, 11, 37, 23),
        [1, 1],
        [0; 4],
        1,
        Activation::Relu,
        true,
        true,
        3,
    )
    .unwrap();
    run(
        (96, 24, 28, 28),
        [1, 1],
        [0; 4],
        3,
        Activation::HardSwish,
        false,
        false,
        4,
    )
    .unwrap();
}

/// NEON's assembly tile (epilogue included) gives the bits of the generic tile and
/// epilogue it replaces: the two compute overlapping pixels at a plane's tail, and which one
/// computes a pixel depends on the split into blocks and threads.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_asm_tile_gives_the_generic_tiles_bits() {
    use super::tile::{PanelRows, TileOut, tile};
    use crate::kernels::simd::{Neon, PanelActivation, PanelEpilogue, Simd, VecActivation};

    let s = Neon::detect().expect("NEON is baseline on aarch64");
    let mut r = rng(7);
    for act in ALL_ACTIVATIONS {
        let Some(asm_act) = PanelActivation::of(act) else {
            continue;
        };
        for (k, plane) in [(1, 12), (2, 13), (3, 29), (16, 12), (37, 31)] {
            // Values spread over the activations' interesting ranges (Clip, HardSwish).
            let scaled = |v: Vec<f32>| v.into_iter().map(|v| v * 8.0).collect::<Vec<_>>();
            let x = scaled(fill(&mut r, k * plane));
            let w = pack_panel8(&fill(&mut r, 8 * k), 8, k);
            let bias: [f32; 8] = fill(&mut r, 8).try_into().unwrap();
            let res = scaled(fill(&mut r, 8 * plane));
            let residuals = [None, Some(&res[..])];
            let cases = residuals.into_iter().flat_map(|r| [(r, true), (r, false)]);
            for (residual, with_bias) in cases {
                for col in [0, plane - 12] {
                    let panel = w.as_chunks::<8>().0;
                    let out = TileOut {
                        bias: match with_bias {
                            true => s.splat_each(&bias),
                            false => [s.zero(); 8],
                        },
                        act: &VecActivation::new(s, act),
                        rows: 8,
                        residual,
                    };
                    let mut want = vec![f32::NAN; 8 * plane];
                    let acc = tile::<Neon, _, 8, 3>(s, PanelRows::<0>(panel), &x, plane, col);
                    out.store(s, acc, &mut want, plane, col, 12);
                    let epi = PanelEpilogue {
                        bias: with_bias.then_some(&bias),
                        residual,
                        act: asm_act,
                    };
                    let mut got = vec![f32::NAN; 8 * plane];
                    assert!(s.panel_tile_8x3(&x, plane, col, panel, &epi, &mut got));
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{act:?} K={k} plane={plane} col={col} residual={} bias={with_bias}",
                        residual.is_some()
                    );
                }
            }
        }
    }
}
