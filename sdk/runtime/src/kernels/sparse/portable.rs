//! The portable sparse convolution: the SIMD kernel's order of work (pixel blocks, output
//! blocks, chunks of pixels accumulated per stored column) in plain Rust, with chunks of
//! fixed length the compiler can vectorise for the build's baseline target.

use super::{SparseConv, SparseRows, SparseSource, check_conv};
use crate::kernels::Epilogue;
use crate::kernels::im2col::im2col_block;

/// Pixels per accumulated chunk.
const CHUNK: usize = 16;

/// Sparse convolution (see [`SparseConv`]), plain Rust.
pub fn sparse_conv(c: &SparseConv, x: &[f32], epi: &Epilogue, y: &mut [f32], scratch: &mut [f32]) {
    let rows = check_conv(c, x, epi, y, scratch);
    match c.weights.block {
        1 => run::<1>(c, x, epi, y, scratch, rows),
        2 => run::<2>(c, x, epi, y, scratch, rows),
        _ => run::<4>(c, x, epi, y, scratch, rows),
    }
}

fn run<const R: usize>(
    c: &SparseConv,
    x: &[f32],
    epi: &Epilogue,
    y: &mut [f32],
    scratch: &mut [f32],
    rows: usize,
) {
    let g = c.geom;
    let out_hw = g.out_h * g.out_w;
    match c.source {
        SparseSource::Direct => {
            for b in 0..c.weights.blocks() {
                block::<R>(&c.weights, b, x, 0, epi, rows, y, out_hw, 0..out_hw);
            }
        }
        SparseSource::Im2col { pixels } => {
            for p0 in (0..out_hw).step_by(pixels) {
                let n = pixels.min(out_hw - p0);
                im2col_block(g, x, p0, n, pixels, scratch);
                for b in 0..c.weights.blocks() {
                    block::<R>(&c.weights, b, scratch, p0, epi, rows, y, out_hw, p0..p0 + n);
                }
            }
        }
    }
}

/// Block `b` over output pixels `cols`, reading `src` at `offset + pixel - shift`.
#[allow(clippy::too_many_arguments)] // one block's inputs, all distinct
fn block<const R: usize>(
    w: &SparseRows,
    b: usize,
    src: &[f32],
    shift: usize,
    epi: &Epilogue,
    rows: usize,
    y: &mut [f32],
    plane: usize,
    cols: std::ops::Range<usize>,
) {
    let (k0, k1) = (w.starts[b] as usize, w.starts[b + 1] as usize);
    let offs = &w.offsets[k0..k1];
    let vals = &w.values.as_chunks::<R>().0[k0..k1];
    let o0 = b * R;
    let real = R.min(rows - o0);
    let mut col = cols.start;
    while col < cols.end {
        let n = CHUNK.min(cols.end - col);
        let mut acc = [[0.0f32; CHUNK]; R];
        for (wv, &o) in vals.iter().zip(offs) {
            let at = o as usize + col - shift;
            let xs = &src[at..at + n];
            for (accr, &wr) in acc.iter_mut().zip(wv) {
                for (a, &xv) in accr.iter_mut().zip(xs) {
                    *a += wr * xv;
                }
            }
        }
        for (r, accr) in acc.iter().enumerate().take(real) {
            let o = o0 + r;
            let bias = epi.bias.map_or(0.0, |bias| bias[o]);
            let at = o * plane + col..o * plane + col + n;
            let yr = &mut y[at.clone()];
            match epi.residual {
                Some(res) => {
                    for ((d, &a), &rv) in yr.iter_mut().zip(accr).zip(&res[at]) {
                        *d = epi.activation.apply(a + bias + rv);
                    }
                }
                None => {
                    for (d, &a) in yr.iter_mut().zip(accr) {
                        *d = epi.activation.apply(a + bias);
                    }
                }
            }
        }
        col += n;
    }
}
