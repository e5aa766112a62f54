//! Every ISA's depthwise kernels against the naive convolution: each fast shape (3x3s1,
//! 3x3s2, 5x5s1, 5x5s2) over random sizes 1..=40 (odd, narrower and wider than a vector),
//! every asymmetric padding `0..K`, every activation, bias on and off; other shapes through
//! the generic path; rows wider than a strip; planes taller than a block.

use super::depthwise_simd;
use super::in_place_3x3s1::InPlace3x3S1;
use super::in_place_3x3s2::InPlace3x3S2;
use super::kxk::{DepthwiseKxK, STRIP};
use super::packed::Packed;
use crate::kernels::ConvFn;
use crate::kernels::activation::test_support::*;
use crate::kernels::conv::reference::{Case, run_each};
use crate::kernels::simd::Simd;
use crate::kernels::{Epilogue, Isa, KernelTable};
use proptest::prelude::*;
use prunus_format::Activation;

/// The table's `depthwise` slot for every available ISA, and every SIMD instantiation
/// directly (the table may pick a narrower ISA for some shapes).
fn kernels() -> Vec<(&'static str, ConvFn)> {
    let mut all: Vec<(&'static str, ConvFn)> = Isa::available()
        .iter()
        .map(|&isa| (isa.name(), KernelTable::for_isa(isa).depthwise))
        .collect();
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{Avx2, Avx512};
        if Avx2::detect().is_some() {
            all.push(("depthwise_simd::<Avx2>", depthwise_simd::<Avx2>));
        }
        if Avx512::detect().is_some() {
            all.push(("depthwise_simd::<Avx512>", depthwise_simd::<Avx512>));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use crate::kernels::simd::Neon;
        if Neon::detect().is_some() {
            all.push(("depthwise_simd::<Neon>", depthwise_simd::<Neon>));
        }
    }
    all
}

fn case(channels: usize, size: [usize; 2], k: usize, stride: usize, pads: [usize; 4]) -> Case {
    Case {
        groups: channels,
        icpg: 1,
        ocpg: 1,
        size,
        kernel: [k, k],
        stride: [stride; 2],
        pads,
        dilation: [1, 1],
    }
}

prop_compose! {
    /// A `k`x`k` stride-`stride` depthwise case: 1..=37 channels, 1..=40 rows and columns,
    /// each pad in `0..k`.
    fn dw_case(k: usize, stride: usize)(
        channels in 1usize..=37,
        size in [1usize..=40, 1usize..=40],
        pads in [0..k, 0..k, 0..k, 0..k],
    ) -> Case {
        case(channels, size, k, stride, pads)
    }
}

prop_compose! {
    /// Shapes without a fast path: other (non-square) sizes, dilation 2, mixed or larger
    /// strides.
    fn generic_case()(
        channels in 1usize..=19,
        size in [1usize..=23, 1usize..=23],
        kernel in [1usize..=7, 1usize..=7],
        stride in [1usize..=3, 1usize..=3],
        pads in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
        dilation in [1usize..=2, 1usize..=2],
    ) -> Case {
        Case { kernel, stride, dilation, ..case(channels, size, 3, 1, pads) }
    }
}

prop_compose! {
    /// 3x3 stride-2 cases of the in-place kernel's geometry: even widths, left pad 1,
    /// right pad 0 or 1, any vertical pads, planes lower than a band of rows.
    fn in_place_3x3s2_case()(
        channels in 1usize..=9,
        h in 1usize..=24,
        half_w in 1usize..=40,
        [top, bottom] in [0usize..3, 0usize..3],
        right in 0usize..=1,
    ) -> Case {
        case(channels, [h, 2 * half_w], 3, 2, [top, 1, bottom, right])
    }
}

prop_compose! {
    /// 3x3 stride-1 cases of the in-place kernel's geometry: one column of padding on
    /// each side, any vertical pads, rows of 1 to 3 vectors and more.
    fn in_place_3x3s1_case()(
        channels in 1usize..=9,
        h in 1usize..=24,
        w in 1usize..=70,
        [top, bottom] in [0usize..3, 0usize..3],
    ) -> Case {
        case(channels, [h, w], 3, 1, [top, 1, bottom, 1])
    }
}

/// The in-place 3x3 kernel of stride `ST` and the copying one give the same bits on `S`.
fn in_place_matches_copying<S: Simd, const ST: usize>(
    s: S,
    case: &Case,
    act: Activation,
    seed: u64,
) {
    let g = case.geom();
    let fits = match ST {
        1 => InPlace3x3S1::fits::<S>(&g),
        _ => InPlace3x3S2::fits::<S>(&g),
    };
    if !fits {
        return;
    }
    let mut r = rng(seed);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let w = fill(&mut r, g.in_c * 9);
    let bias = fill(&mut r, g.out_c);
    let epi = Epilogue::new(Some(&bias), act);
    let mut want = vec![f32::NAN; g.out_c * g.out_h * g.out_w];
    let mut got = want.clone();
    let (g, x, w, epi) = (&g, &x[..], &w[..], &epi);
    let y = &mut want;
    s.vectorize(DepthwiseKxK::<3, ST> { g, x, w, epi, y });
    let y = &mut got;
    match ST {
        1 => s.vectorize(InPlace3x3S1 { g, x, w, epi, y }),
        _ => s.vectorize(InPlace3x3S2 { g, x, w, epi, y }),
    }
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let name = std::any::type_name::<S>();
    assert_eq!(bits(&got), bits(&want), "{name} {g:?}");
}

/// The channel-packed kernel and the row kernel (`K`x`K`, stride `ST`) give the same bits
/// on `S`, for the cases the packed kernel takes.
fn packed_matches_rows<S: Simd, const K: usize, const ST: usize>(
    s: S,
    case: &Case,
    act: Activation,
    seed: u64,
) {
    let g = case.geom();
    if !Packed::fits::<S>(&g) {
        return;
    }
    let mut r = rng(seed);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let w = fill(&mut r, g.in_c * K * K);
    let bias = fill(&mut r, g.out_c);
    let epi = Epilogue::new(Some(&bias), act);
    let mut want = vec![f32::NAN; g.out_c * g.out_h * g.out_w];
    let mut got = want.clone();
    let (g, x, w, epi) = (&g, &x[..], &w[..], &epi);
    s.vectorize(DepthwiseKxK::<K, ST> {
        g,
        x,
        w,
        epi,
        y: &mut want,
    });
    s.vectorize(Packed {
        g,
        x,
        w,
        epi,
        y: &mut got,
    });
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let name = std::any::type_name::<S>();
    assert_eq!(bits(&got), bits(&want), "{name} {g:?}");
}

/// [`packed_matches_rows`] on every SIMD ISA this CPU has.
fn each_isa_packed<const K: usize, const ST: usize>(case: &Case, act: Activation, seed: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{Avx2, Avx512};
        if let Some(s) = Avx2::detect() {
            packed_matches_rows::<_, K, ST>(s, case, act, seed);
        }
        if let Some(s) = Avx512::detect() {
            packed_matches_rows::<_, K, ST>(s, case, act, seed);
        }
    }
    #[cfg(target_arch = "aarch64")]
    if let Some(s) = crate::kernels::simd::Neon::detect() {
        packed_matches_rows::<_, K, ST>(s, case, act, seed);
    }
}

/// [`in_place_matches_copying`] on every SIMD ISA this CPU has.
fn each_isa_in_place<const ST: usize>(case: &Case, act: Activation, seed: u64) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{Avx2, Avx512};
        if let Some(s) = Avx2::detect() {
            in_place_matches_copying::<_, ST>(s, case, act, seed);
        }
        if let Some(s) = Avx512::detect() {
            in_place_matches_copying::<_, ST>(s, case, act, seed);
        }
    }
    #[cfg(target_arch = "aarch64")]
    if let Some(s) = crate::kernels::simd::Neon::detect() {
        in_place_matches_copying::<_, ST>(s, case, act, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dw3x3s1_in_place_matches_reference_and_the_copying_kernel(
        case in in_place_3x3s1_case(), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
        each_isa_in_place::<1>(&case, act, seed);
    }

    #[test]
    fn dw3x3s2_in_place_matches_reference_and_the_copying_kernel(
        case in in_place_3x3s2_case(), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
        each_isa_in_place::<2>(&case, act, seed);
    }

    #[test]
    fn dw3x3s1_matches_reference_on_every_isa(
        case in dw_case(3, 1), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
    }

    #[test]
    fn dw3x3s2_matches_reference_on_every_isa(
        case in dw_case(3, 2), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
    }

    #[test]
    fn dw5x5s1_matches_reference_on_every_isa(
        case in dw_case(5, 1), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
    }

    #[test]
    fn dw5x5s2_matches_reference_on_every_isa(
        case in dw_case(5, 2), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
    }

    #[test]
    fn dw_packed_gives_the_row_kernels_bits(
        cases in (dw_case(3, 1), dw_case(3, 2), dw_case(5, 1), dw_case(5, 2)),
        act in any_activation(),
        seed in any::<u64>(),
    ) {
        each_isa_packed::<3, 1>(&cases.0, act, seed);
        each_isa_packed::<3, 2>(&cases.1, act, seed);
        each_isa_packed::<5, 1>(&cases.2, act, seed);
        each_isa_packed::<5, 2>(&cases.3, act, seed);
    }

    #[test]
    fn dw_generic_shapes_match_reference_on_every_isa(
        case in generic_case(), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
    }
}

#[test]
fn every_activation_on_zoo_shapes() {
    // MobileNet / TF "SAME" stride-2 padding (0, 0, 1, 1) and (1, 1, 2, 2), symmetric ones.
    let shapes = [
        (3, 1, [1; 4], 14),
        (3, 2, [0, 0, 1, 1], 14),
        (3, 2, [1; 4], 15),
        (5, 1, [2; 4], 7),
        (5, 2, [1, 1, 2, 2], 28),
        (5, 2, [2; 4], 9),
    ];
    for (i, (k, stride, pads, size)) in shapes.into_iter().enumerate() {
        for act in ALL_ACTIVATIONS {
            let c = case(5, [size, size], k, stride, pads);
            run_each(&kernels(), c, act, true, i as u64).unwrap();
        }
    }
}

#[test]
fn rows_wider_than_a_strip() {
    // Output rows of STRIP + 37 and 2 * STRIP + 1 columns: several strips, the last partial.
    for (k, stride, w) in [
        (3, 1, STRIP + 37),
        (5, 2, 4 * STRIP + 3),
        (3, 2, 2 * STRIP + 1),
    ] {
        let c = case(2, [3, w], k, stride, [1, 2, 1, 0]);
        run_each(&kernels(), c, Activation::Relu, true, 7).unwrap();
    }
}

#[test]
fn input_smaller_than_the_kernel() {
    // 1x1 input, 5x5 kernel, pads 2 + 2: every output reads one input value.
    let c = case(3, [1, 1], 5, 1, [2, 2, 2, 2]);
    assert_eq!((c.geom().out_h, c.geom().out_w), (1, 1));
    run_each(&kernels(), c, Activation::None, true, 8).unwrap();
    let c = case(3, [1, 2], 5, 2, [4, 3, 0, 3]);
    run_each(&kernels(), c, Activation::HardSwish, false, 9).unwrap();
}

#[test]
fn planes_taller_than_a_block() {
    // MobileNetV2's 112x112 stride-1 and stride-2 planes and a tall odd-width plane: several
    // blocks of rows (each re-copying the rows it shares with the previous block), rows of
    // several de-interleaved vectors with an overlapping last one.
    for (k, stride, size, pads) in [
        (3, 1, [112, 112], [1; 4]),
        (3, 2, [112, 112], [0, 0, 1, 1]),
        (3, 2, [131, 57], [1, 2, 1, 0]),
        (5, 1, [97, 45], [2; 4]),
        (5, 2, [150, 83], [1, 1, 2, 2]),
    ] {
        let c = case(2, size, k, stride, pads);
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
        run_each(&kernels(), c, relu6, true, 11).unwrap();
    }
}
