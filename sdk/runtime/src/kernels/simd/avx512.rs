//! [`Simd`] for x86-64 AVX-512F: 16 `f32` lanes in a `__m512`, 32 vector registers.
//! Partial loads and stores use masks instead of a stack buffer.

use core::arch::x86_64::*;

use super::{Simd, SimdKernel};

/// Token for AVX-512F (with FMA, which every AVX-512 CPU has); see [`Simd`].
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

impl Avx512 {
    /// Mask of the first `min(n, 16)` lanes.
    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        if n >= 16 { !0 } else { (1u16 << n) - 1 }
    }
}

impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    const REGISTERS: usize = 32;

    #[inline]
    fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma"))
            .then_some(Avx512(()))
    }

    #[inline]
    fn vectorize<K: SimdKernel>(self, kernel: K) -> K::Output {
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn entry<K: SimdKernel>(s: Avx512, kernel: K) -> K::Output {
            kernel.run(s)
        }
        // SAFETY: an `Avx512` token exists only when `detect` found AVX-512F and FMA
        // (AVX-512F implies AVX2).
        unsafe { entry(self, kernel) }
    }

    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        // SAFETY: the token proves AVX-512F is available.
        unsafe { _mm512_set1_ps(v) }
    }

    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        assert!(s.len() >= 16, "Avx512::load: slice shorter than 16");
        // SAFETY: AVX-512F is available (token) and `s` holds at least 16 values.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }

    #[inline(always)]
    fn store(self, v: __m512, s: &mut [f32]) {
        assert!(s.len() >= 16, "Avx512::store: slice shorter than 16");
        // SAFETY: AVX-512F is available (token) and `s` holds at least 16 writable values.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }

    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> __m512 {
        // SAFETY: AVX-512F is available (token); the mask selects only the first
        // `min(len, 16)` lanes, and masked-off lanes are not accessed (no fault).
        unsafe { _mm512_maskz_loadu_ps(Self::mask(s.len()), s.as_ptr()) }
    }

    #[inline(always)]
    fn store_partial(self, v: __m512, s: &mut [f32]) {
        // SAFETY: as `load_partial`: only the first `min(len, 16)` lanes are written.
        unsafe { _mm512_mask_storeu_ps(s.as_mut_ptr(), Self::mask(s.len()), v) }
    }

    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        // SAFETY: a prefetch is a hint: it never faults and reads nothing into the program,
        // whatever the address (SSE, implied by the token).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    #[inline(always)]
    fn fma(self, acc: __m512, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available.
        unsafe { _mm512_fmadd_ps(a, b, acc) }
    }

    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available.
        unsafe { _mm512_add_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available.
        unsafe { _mm512_mul_ps(a, b) }
    }

    #[inline(always)]
    fn shift_in(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available. `valignd` shifts the 32 lanes
        // `b ++ a` right by 15: lane 15 of `a`, then lanes 0..15 of `b`.
        unsafe {
            _mm512_castsi512_ps(_mm512_alignr_epi32::<15>(
                _mm512_castps_si512(b),
                _mm512_castps_si512(a),
            ))
        }
    }

    #[inline(always)]
    fn shift_out(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available. `valignd` shifts the 32 lanes
        // `b ++ a` right by 1: lanes 1..16 of `a`, then lane 0 of `b`.
        unsafe {
            _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                _mm512_castps_si512(b),
                _mm512_castps_si512(a),
            ))
        }
    }

    #[inline(always)]
    fn deinterleave(self, a: __m512, b: __m512) -> (__m512, __m512) {
        // SAFETY: the token proves AVX-512F is available. Index i < 16 picks lane i of
        // `a`, 16 + i lane i of `b`.
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            (
                _mm512_permutex2var_ps(a, even, b),
                _mm512_permutex2var_ps(a, odd, b),
            )
        }
    }

    #[inline(always)]
    fn interleave(self, a: __m512, b: __m512) -> (__m512, __m512) {
        // SAFETY: the token proves AVX-512F is available. Index i < 16 picks lane i of
        // `a`, 16 + i lane i of `b`.
        unsafe {
            let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            let hi =
                _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            (
                _mm512_permutex2var_ps(a, lo, b),
                _mm512_permutex2var_ps(a, hi, b),
            )
        }
    }

    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available. Returns `b` when either is NaN.
        unsafe { _mm512_max_ps(a, b) }
    }

    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: the token proves AVX-512F is available. Returns `b` when either is NaN.
        unsafe { _mm512_min_ps(a, b) }
    }
}
