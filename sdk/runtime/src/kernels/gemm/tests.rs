//! Every ISA's Gemm (the kernel table's `gemm` slot) against a naive reference.

use crate::kernels::activation::test_support::*;
use crate::kernels::{Epilogue, Isa, KernelTable};
use proptest::prelude::*;
use prunus_format::Activation;
use prunus_format::layout::pack_panel8;

/// `y[o] = act(sum_k W[o][k] x[k] + b[o])` on the row-major weight, summed in f64.
fn naive(x: &[f32], w_rm: &[f32], bias: Option<&[f32]>, act: Activation) -> Vec<f32> {
    let k = x.len();
    (0..w_rm.len() / k.max(1))
        .map(|o| {
            let dot: f64 = (0..k).map(|i| w_rm[o * k + i] as f64 * x[i] as f64).sum();
            act.apply(dot as f32 + bias.map_or(0.0, |b| b[o]))
        })
        .collect()
}

fn run(
    k: usize,
    o: usize,
    act: Activation,
    with_bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut r = rng(seed);
    let x = fill(&mut r, k);
    let w_rm = fill(&mut r, o * k);
    let bias = fill(&mut r, o);
    let bias = with_bias.then_some(&bias[..]);
    let w = pack_panel8(&w_rm, o, k);
    let want = naive(&x, &w_rm, bias, act);
    let epi = Epilogue::new(bias, act);
    for &isa in Isa::available() {
        let mut y = vec![f32::NAN; o];
        (KernelTable::for_isa(isa).gemm)(&x, &w, &epi, &mut y);
        assert_close(&y, &want).map_err(|e| TestCaseError::fail(format!("{isa:?}: {e}")))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn gemm_matches_reference(
        k in 1usize..=300,
        o in 1usize..=37,
        act in any_activation(),
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        run(k, o, act, with_bias, seed)?;
    }
}

#[test]
fn partial_last_panel_and_short_k() {
    // O = 9: the second panel has one real row; K = 3 < UNROLL exercises only the tail.
    for act in ALL_ACTIVATIONS {
        run(3, 9, act, true, 7).unwrap();
        run(17, 9, act, false, 8).unwrap();
    }
}

#[test]
fn exact_values() {
    // W = [[1, 2], [3, 4]] (rows), x = [1, -1] -> [-1, -1]; bias [0.5, 2] -> [-0.5, 1].
    let w = pack_panel8(&[1.0, 2.0, 3.0, 4.0], 2, 2);
    let bias = [0.5, 2.0];
    let epi = Epilogue::new(Some(&bias), Activation::Relu);
    for &isa in Isa::available() {
        let mut y = [0.0; 2];
        (KernelTable::for_isa(isa).gemm)(&[1.0, -1.0], &w, &epi, &mut y);
        assert_eq!(y, [0.0, 1.0], "{isa:?}");
    }
}
