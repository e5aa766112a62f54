//! Every ISA's full and grouped convolutions (the table's `conv` slot and each SIMD
//! instantiation) against the naive convolution: the 3x3 fast shapes over random sizes,
//! channels and groups, every asymmetric padding, every activation, bias on and off;
//! other shapes through the generic path; channel blocks and strips.

use super::conv_simd;
use super::reference::{Case, run_each};
use crate::kernels::ConvFn;
use crate::kernels::activation::test_support::*;
use crate::kernels::simd::Simd;
use crate::kernels::{Isa, KernelTable};
use proptest::prelude::*;
use prunus_format::Activation;

/// The table's `conv` slot for every available ISA, and every SIMD instantiation.
fn kernels() -> Vec<(&'static str, ConvFn)> {
    let mut all: Vec<(&'static str, ConvFn)> = Isa::available()
        .iter()
        .map(|&isa| (isa.name(), KernelTable::for_isa(isa).conv))
        .collect();
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{Avx2, Avx512};
        if Avx2::detect().is_some() {
            all.push(("conv_simd::<Avx2>", conv_simd::<Avx2>));
        }
        if Avx512::detect().is_some() {
            all.push(("conv_simd::<Avx512>", conv_simd::<Avx512>));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use crate::kernels::simd::Neon;
        if Neon::detect().is_some() {
            all.push(("conv_simd::<Neon>", conv_simd::<Neon>));
        }
    }
    all
}

prop_compose! {
    /// A 3x3 stride-`stride` case: full (1..=8 -> 1..=19 channels) or grouped (2..=4
    /// groups of 1..=5 -> 1..=5), 1..=40 rows and columns, each pad in 0..3.
    fn conv3x3_case(stride: usize)(
        (groups, icpg, ocpg) in prop_oneof![
            (Just(1usize), 1usize..=8, 1usize..=19),
            (2usize..=4, 1usize..=5, 1usize..=5),
        ],
        size in [1usize..=40, 1usize..=40],
        pads in [0usize..3, 0usize..3, 0usize..3, 0usize..3],
    ) -> Case {
        Case {
            groups, icpg, ocpg, size, kernel: [3, 3], stride: [stride; 2], pads,
            dilation: [1, 1],
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn conv3x3s1_matches_reference_on_every_isa(
        case in conv3x3_case(1), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
    }

    #[test]
    fn conv3x3s2_matches_reference_on_every_isa(
        case in conv3x3_case(2), act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        run_each(&kernels(), case, act, bias, seed)?;
    }

    #[test]
    fn conv_other_shapes_match_reference_on_every_isa(
        case in conv3x3_case(1),
        kernel in [1usize..=5, 1usize..=5],
        stride in [1usize..=3, 1usize..=3],
        dilation in [1usize..=2, 1usize..=2],
        act in any_activation(), bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let case = Case { kernel, stride, dilation, ..case };
        run_each(&kernels(), case, act, bias, seed)?;
    }
}

fn case(icpg: usize, ocpg: usize, groups: usize, size: [usize; 2], stride: usize) -> Case {
    Case {
        groups,
        icpg,
        ocpg,
        size,
        kernel: [3, 3],
        stride: [stride; 2],
        pads: [1; 4],
        dilation: [1, 1],
    }
}

#[test]
fn every_activation_on_zoo_shapes() {
    // The stem (3 -> 16, stride 2, TF padding), SqueezeNet's expand (pad 1), Xception's
    // valid 3x3, a grouped 3x3.
    let shapes = [
        Case {
            pads: [0, 0, 1, 1],
            ..case(3, 16, 1, [32, 32], 2)
        },
        case(16, 24, 1, [13, 13], 1),
        Case {
            pads: [0; 4],
            ..case(8, 12, 1, [19, 19], 1)
        },
        case(4, 6, 3, [9, 11], 1),
    ];
    for (i, c) in shapes.into_iter().enumerate() {
        for act in ALL_ACTIVATIONS {
            run_each(&kernels(), c, act, true, i as u64).unwrap();
        }
    }
}

#[test]
fn channel_blocks_and_strips() {
    // 300 input channels of 40-column rows: several channel blocks (partial sums through
    // the output, exact tails); 600-column rows: several strips.
    for act in [Activation::Relu, Activation::HardSwish] {
        run_each(&kernels(), case(300, 9, 1, [5, 40], 1), act, true, 1).unwrap();
        run_each(&kernels(), case(200, 5, 1, [4, 37], 2), act, false, 2).unwrap();
        run_each(&kernels(), case(2, 3, 1, [3, 600], 1), act, true, 3).unwrap();
        run_each(&kernels(), case(40, 3, 2, [3, 700], 2), act, true, 4).unwrap();
    }
}
