//! [`Simd`] for aarch64 NEON (Advanced SIMD): 4 `f32` lanes in a `float32x4_t`, 32 vector
//! registers. NEON is part of the aarch64 baseline; detection still runs for uniformity.

use core::arch::aarch64::*;

use super::{PanelEpilogue, Simd, SimdKernel};

/// Token for aarch64 NEON; see [`Simd`].
#[derive(Clone, Copy, Debug)]
pub struct Neon(());

impl Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;
    const REGISTERS: usize = 32;

    #[inline]
    fn detect() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Neon(()))
    }

    #[inline]
    fn vectorize<K: SimdKernel>(self, kernel: K) -> K::Output {
        #[target_feature(enable = "neon")]
        fn entry<K: SimdKernel>(s: Neon, kernel: K) -> K::Output {
            kernel.run(s)
        }
        // SAFETY: a `Neon` token exists only when `detect` found NEON.
        unsafe { entry(self, kernel) }
    }

    #[inline(always)]
    fn panel_tile_8x3(
        self,
        x: &[f32],
        plane: usize,
        col: usize,
        w: &[[f32; 8]],
        epi: &PanelEpilogue,
        y: &mut [f32],
    ) -> bool {
        super::neon_pointwise::panel_tile_8x12(x, plane, col, w, epi, y);
        true
    }

    #[inline(always)]
    fn splat(self, v: f32) -> float32x4_t {
        // SAFETY: the token proves NEON is available.
        unsafe { vdupq_n_f32(v) }
    }

    #[inline(always)]
    fn splat_each<const N: usize>(self, w: &[f32; N]) -> [float32x4_t; N] {
        let mut out = [self.zero(); N];
        let (quads, tail) = w.as_chunks::<4>();
        for (dst, quad) in out.chunks_exact_mut(4).zip(quads) {
            // SAFETY: NEON is available (token); `quad` is 4 readable values.
            let v = unsafe { vld1q_f32(quad.as_ptr()) };
            // SAFETY: NEON is available; lane indices are constants below 4.
            unsafe {
                dst[0] = vdupq_laneq_f32::<0>(v);
                dst[1] = vdupq_laneq_f32::<1>(v);
                dst[2] = vdupq_laneq_f32::<2>(v);
                dst[3] = vdupq_laneq_f32::<3>(v);
            }
        }
        let rest = &mut out[N - tail.len()..];
        if let ([d0, d1], [_, _]) = (&mut *rest, tail) {
            // A pair (blocks of 2): one 64-bit load, lanes used by element.
            // SAFETY: NEON is available (token); `tail` is 2 readable values; lane indices
            // are constants below 2.
            unsafe {
                let v = vld1_f32(tail.as_ptr());
                *d0 = vdupq_lane_f32::<0>(v);
                *d1 = vdupq_lane_f32::<1>(v);
            }
        } else {
            for (dst, &t) in rest.iter_mut().zip(tail) {
                *dst = self.splat(t);
            }
        }
        out
    }

    #[inline(always)]
    fn load(self, s: &[f32]) -> float32x4_t {
        assert!(s.len() >= 4, "Neon::load: slice shorter than 4");
        // SAFETY: NEON is available (token) and `s` holds at least 4 values; `vld1q_f32`
        // needs only element alignment.
        unsafe { vld1q_f32(s.as_ptr()) }
    }

    #[inline(always)]
    fn store(self, v: float32x4_t, s: &mut [f32]) {
        assert!(s.len() >= 4, "Neon::store: slice shorter than 4");
        // SAFETY: NEON is available (token) and `s` holds at least 4 writable values.
        unsafe { vst1q_f32(s.as_mut_ptr(), v) }
    }

    #[inline(always)]
    fn fma(self, acc: float32x4_t, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON (with fused multiply-add, always in aarch64).
        unsafe { vfmaq_f32(acc, a, b) }
    }

    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON is available.
        unsafe { vaddq_f32(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON is available.
        unsafe { vmulq_f32(a, b) }
    }

    #[inline(always)]
    fn shift_in(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON is available.
        unsafe { vextq_f32::<3>(a, b) }
    }

    #[inline(always)]
    fn shift_out(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON is available.
        unsafe { vextq_f32::<1>(a, b) }
    }

    #[inline(always)]
    fn deinterleave(self, a: float32x4_t, b: float32x4_t) -> (float32x4_t, float32x4_t) {
        // SAFETY: the token proves NEON is available.
        unsafe { (vuzp1q_f32(a, b), vuzp2q_f32(a, b)) }
    }

    #[inline(always)]
    fn interleave(self, a: float32x4_t, b: float32x4_t) -> (float32x4_t, float32x4_t) {
        // SAFETY: the token proves NEON is available.
        unsafe { (vzip1q_f32(a, b), vzip2q_f32(a, b)) }
    }

    #[inline(always)]
    fn load_deinterleaved(self, s: &[f32]) -> (float32x4_t, float32x4_t) {
        assert!(
            s.len() >= 8,
            "Neon::load_deinterleaved: slice shorter than 8"
        );
        // SAFETY: NEON is available (token) and `s` holds at least 8 values.
        let v = unsafe { vld2q_f32(s.as_ptr()) };
        (v.0, v.1)
    }

    #[inline(always)]
    fn load_deinterleaved4(self, s: &[f32]) -> [float32x4_t; 4] {
        assert!(
            s.len() >= 16,
            "Neon::load_deinterleaved4: slice shorter than 16"
        );
        // SAFETY: NEON is available (token) and `s` holds at least 16 values.
        let v = unsafe { vld4q_f32(s.as_ptr()) };
        [v.0, v.1, v.2, v.3]
    }

    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON is available. `fmaxnm` returns the number when one
        // operand is NaN.
        unsafe { vmaxnmq_f32(a, b) }
    }

    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: the token proves NEON is available. `fminnm` returns the number when one
        // operand is NaN.
        unsafe { vminnmq_f32(a, b) }
    }

    #[inline(always)]
    fn load_n<const N: usize>(self, s: &[f32]) -> [float32x4_t; N] {
        let s = &s[..N * 4];
        let mut out = [self.zero(); N];
        let (quads, rest) = out.as_chunks_mut::<4>();
        let (src4, tail) = s.as_chunks::<16>();
        for (q, src) in quads.iter_mut().zip(src4) {
            // SAFETY: NEON is available (token); `src` is 16 readable values.
            let v = unsafe { vld1q_f32_x4(src.as_ptr()) };
            *q = [v.0, v.1, v.2, v.3];
        }
        match rest {
            [a, b, c] => {
                // SAFETY: NEON is available; `tail` holds 12 readable values.
                let v = unsafe { vld1q_f32_x3(tail.as_ptr()) };
                (*a, *b, *c) = (v.0, v.1, v.2);
            }
            [a, b] => {
                // SAFETY: NEON is available; `tail` holds 8 readable values.
                let v = unsafe { vld1q_f32_x2(tail.as_ptr()) };
                (*a, *b) = (v.0, v.1);
            }
            [a] => *a = self.load(tail),
            _ => {}
        }
        out
    }

    #[inline(always)]
    fn store_n<const N: usize>(self, vs: [float32x4_t; N], s: &mut [f32]) {
        let s = &mut s[..N * 4];
        let (quads, rest) = vs.as_chunks::<4>();
        let (dst4, tail) = s.as_chunks_mut::<16>();
        for (q, dst) in quads.iter().zip(dst4) {
            // SAFETY: NEON is available (token); `dst` is 16 writable values.
            unsafe { vst1q_f32_x4(dst.as_mut_ptr(), float32x4x4_t(q[0], q[1], q[2], q[3])) };
        }
        match *rest {
            // SAFETY: NEON is available; `tail` holds 12 writable values.
            [a, b, c] => unsafe { vst1q_f32_x3(tail.as_mut_ptr(), float32x4x3_t(a, b, c)) },
            // SAFETY: NEON is available; `tail` holds 8 writable values.
            [a, b] => unsafe { vst1q_f32_x2(tail.as_mut_ptr(), float32x4x2_t(a, b)) },
            [a] => self.store(a, tail),
            _ => {}
        }
    }
}
