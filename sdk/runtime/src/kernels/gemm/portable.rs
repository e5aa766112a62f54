//! Portable fully connected layer (matrix-vector product) on
//! [`Panel8`](prunus_format::Layout::Panel8) weights: `y[o] = act(sum_k w[o, k] * x[k] +
//! bias[o])`.
//!
//! A panel holds 8 output rows interleaved per input, so one `[f32; 8]` weight load feeds 8
//! accumulators (one vector of 8, or two of 4). The loop over `k` is unrolled by 4 into
//! independent accumulator sets: a single set would serialise on the add latency.

use crate::kernels::Epilogue;
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
