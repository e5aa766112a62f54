//! Sparse matrix-vector product: fully connected layers, and pointwise convolutions of a
//! one-pixel plane (offsets then include the group's first input).

use super::SparseRows;
use crate::kernels::Epilogue;

/// Independent partial sums per row (hides the add latency of one long chain).
const CHAINS: usize = 4;

/// `y[o] = act(bias[o] + sum over block(o)'s stored columns k of value(k, o) * x[offset(k)])`,
/// `y` being the rows of `w`'s blocks. The same code for every ISA: per stored column it
/// gathers one input and streams `block` values.
pub fn sparse_gemv(w: &SparseRows, x: &[f32], epi: &Epilogue, y: &mut [f32]) {
    w.check(y.len(), 1, x.len());
    assert!(
        epi.bias.is_none_or(|b| b.len() == y.len()),
        "sparse gemv: bias length"
    );
    match w.block {
        1 => run::<1>(w, x, epi, y),
        2 => run::<2>(w, x, epi, y),
        _ => run::<4>(w, x, epi, y),
    }
}

fn run<const R: usize>(w: &SparseRows, x: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let vals = w.values.as_chunks::<R>().0;
    for (b, yb) in y.chunks_mut(R).enumerate() {
        let (k0, k1) = (w.starts[b] as usize, w.starts[b + 1] as usize);
        let (offs, vals) = (&w.offsets[k0..k1], &vals[k0..k1]);
        let mut acc = [[0.0f32; R]; CHAINS];
        let (oq, o_tail) = offs.as_chunks::<CHAINS>();
        let (vq, v_tail) = vals.as_chunks::<CHAINS>();
        for (oq, vq) in oq.iter().zip(vq) {
            for ((accc, &o), wv) in acc.iter_mut().zip(oq).zip(vq) {
                // SAFETY: `check` found every offset of these blocks below `x.len()`.
                let xv = unsafe { *x.get_unchecked(o as usize) };
                for (a, &wr) in accc.iter_mut().zip(wv) {
                    *a += wr * xv;
                }
            }
        }
        for (&o, wv) in o_tail.iter().zip(v_tail) {
            // SAFETY: as above.
            let xv = unsafe { *x.get_unchecked(o as usize) };
            for (a, &wr) in acc[0].iter_mut().zip(wv) {
                *a += wr * xv;
            }
        }
        for (r, d) in yb.iter_mut().enumerate() {
            let sum = acc.iter().map(|c| c[r]).fold(0.0, |s, v| s + v);
            let bias = epi.bias.map_or(0.0, |bias| bias[b * R + r]);
            *d = epi.activation.apply(sum + bias);
        }
    }
}
