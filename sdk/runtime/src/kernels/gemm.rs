//! Fully connected layer (matrix-vector product) on [`Panel8`](prunus_format::Layout::Panel8)
//! weights: `y[o] = act(sum_k w[o, k] * x[k] + bias[o])`.
//!
//! A panel holds 8 output rows interleaved per input, so one `[f32; 8]` weight load feeds 8
//! accumulators (one vector of 8, or two of 4). The loop over `k` is unrolled by 4 into
//! independent accumulator sets: a single set would serialise on the add latency.

use super::Epilogue;
use prunus_format::layout::PANEL;

/// Independent accumulator sets (unroll factor over `k`).
const UNROLL: usize = 4;

/// `y = act(W x + bias)` with `x: [K]`, `w: Panel8 [O, K]` (`ceil(O/8) * 8 * K` values),
/// `y: [O]`; `K = x.len()`, `O = y.len()`.
pub fn gemm(x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let (k, o) = (x.len(), y.len());
    debug_assert_eq!(
        w.len(),
        o.div_ceil(PANEL) * PANEL * k,
        "gemm: weight length"
    );
    debug_assert!(epi.bias.is_none_or(|b| b.len() == o), "gemm: bias length");
    let act = epi.activation;
    for (p, yp) in y.chunks_mut(PANEL).enumerate() {
        let acc = if k == 0 {
            [0.0; PANEL]
        } else {
            panel_dot(&w[p * PANEL * k..(p + 1) * PANEL * k], x)
        };
        let bias = epi.bias.map(|b| &b[p * PANEL..p * PANEL + yp.len()]);
        // `yp` is shorter than 8 for the last partial panel: only its rows are written.
        for (r, out) in yp.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b[r]);
            *out = act.apply(acc[r] + b);
        }
    }
}

/// The 8 dot products of one panel (`K * 8` values) with `x`.
#[inline(always)]
fn panel_dot(panel: &[f32], x: &[f32]) -> [f32; PANEL] {
    let (cols, _) = panel.as_chunks::<PANEL>();
    let (cols4, cols_tail) = cols.as_chunks::<UNROLL>();
    let (x4, x_tail) = x.as_chunks::<UNROLL>();
    let mut acc = [[0.0f32; PANEL]; UNROLL];
    for (wq, xq) in cols4.iter().zip(x4) {
        for u in 0..UNROLL {
            for r in 0..PANEL {
                acc[u][r] += wq[u][r] * xq[u];
            }
        }
    }
    for (wc, &xv) in cols_tail.iter().zip(x_tail) {
        for r in 0..PANEL {
            acc[0][r] += wc[r] * xv;
        }
    }
    let mut sum = [0.0f32; PANEL];
    for a in &acc {
        for r in 0..PANEL {
            sum[r] += a[r];
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::*;
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
        let mut y = vec![f32::NAN; o];
        gemm(
            &x,
            &w,
            &Epilogue {
                bias,
                activation: act,
            },
            &mut y,
        );
        assert_close(&y, &want)
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
        let mut y = [0.0; 2];
        let bias = [0.5, 2.0];
        let epi = Epilogue {
            bias: Some(&bias),
            activation: Activation::Relu,
        };
        gemm(&[1.0, -1.0], &w, &epi, &mut y);
        assert_eq!(y, [0.0, 1.0]);
    }
}
