//! SIMD fully connected layer (matrix-vector product) on
//! [`Panel8`](prunus_format::Layout::Panel8) weights, generic over [`Simd`].
//!
//! Output channels are the vector dimension: a panel's 8 weights of input `k` are one
//! 8-lane vector (two of 4 lanes on NEON), multiplied by `x[k]` broadcast. The loop over
//! `k` is unrolled by `U` into independent accumulators so that `U * 8 / LANES` FMA chains
//! (8) hide the FMA latency; they are summed at the end, then bias and activation.
//! Memory-bound (each weight is used once): the point is to stream the panels at full
//! bandwidth. ISAs with more than 8 lanes use their 8-lane sibling.

use prunus_format::layout::PANEL;

use super::portable;
use crate::kernels::Epilogue;
use crate::kernels::simd::{Simd, SimdKernel, VecActivation};

/// `y = act(W x + bias)` with `x: [K]`, `w: Panel8 [O, K]`, `y: [O]`. AVX-512 runs the
/// AVX2 instantiation (a panel is 8 wide); CPUs without `S` run the portable kernel.
pub fn gemm_simd<S: Simd>(x: &[f32], w: &[f32], epi: &Epilogue, y: &mut [f32]) {
    let (k, o) = (x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if S::LANES > PANEL {
        return gemm_simd::<crate::kernels::simd::Avx2>(x, w, epi, y);
    }
    match S::detect() {
        Some(s) if S::LANES <= PANEL && PANEL.is_multiple_of(S::LANES) && k > 0 => {
            assert_eq!(
                w.len(),
                o.div_ceil(PANEL) * PANEL * k,
                "gemm: weight length"
            );
            assert!(epi.bias.is_none_or(|b| b.len() == o), "gemm: bias length");
            s.vectorize(Gemv { x, w, epi, y })
        }
        _ => portable::gemm(x, w, epi, y),
    }
}

/// A checked matrix-vector product.
struct Gemv<'a> {
    x: &'a [f32],
    w: &'a [f32],
    epi: &'a Epilogue<'a>,
    y: &'a mut [f32],
}

impl SimdKernel for Gemv<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        // P vectors per panel, U = LANES unrolled inputs: 8 accumulator chains either way.
        match S::LANES {
            4 => self.panels::<S, 2, 4>(s),
            _ => self.panels::<S, 1, 8>(s),
        }
    }
}

impl Gemv<'_> {
    #[inline(always)]
    fn panels<S: Simd, const P: usize, const U: usize>(self, s: S) {
        let Gemv { x, w, epi, y } = self;
        let (k, l) = (x.len(), S::LANES);
        debug_assert_eq!(P * l, PANEL, "gemv: vectors per panel");
        let act = VecActivation::new(s, epi.activation);
        let panels = w.as_chunks::<PANEL>().0.chunks_exact(k);
        for (p, (wp, yp)) in panels.zip(y.chunks_mut(PANEL)).enumerate() {
            let mut acc = [[s.zero(); P]; U];
            let (wq, w_tail) = wp.as_chunks::<U>();
            let (xq, x_tail) = x.as_chunks::<U>();
            for (wq, xq) in wq.iter().zip(xq) {
                for ((accu, wcol), &xv) in acc.iter_mut().zip(wq).zip(xq) {
                    let xb = s.splat(xv);
                    for (j, a) in accu.iter_mut().enumerate() {
                        *a = s.fma(*a, s.load(&wcol[j * l..]), xb);
                    }
                }
            }
            for (wcol, &xv) in w_tail.iter().zip(x_tail) {
                let xb = s.splat(xv);
                for (j, a) in acc[0].iter_mut().enumerate() {
                    *a = s.fma(*a, s.load(&wcol[j * l..]), xb);
                }
            }
            let mut sum = acc[0];
            for accu in &acc[1..] {
                for (t, &a) in sum.iter_mut().zip(accu) {
                    *t = s.add(*t, a);
                }
            }
            let mut bias = [0.0f32; PANEL];
            if let Some(b) = epi.bias {
                bias[..yp.len()].copy_from_slice(&b[p * PANEL..p * PANEL + yp.len()]);
            }
            for (j, t) in sum.iter_mut().enumerate() {
                *t = s.add(*t, s.load(&bias[j * l..]));
            }
            act.apply_all(s, &mut sum);
            // The last panel may have fewer than 8 real rows: only those are written.
            for (j, &t) in sum.iter().enumerate() {
                if let Some(dst) = yp.get_mut(j * l..) {
                    s.store_partial(t, dst);
                }
            }
        }
    }
}
