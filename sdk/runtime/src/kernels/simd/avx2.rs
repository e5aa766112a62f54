//! [`Simd`] for x86-64 AVX2 + FMA: 8 `f32` lanes in a `__m256`, 16 vector registers.

use core::arch::x86_64::*;

use super::{Simd, SimdKernel};

/// Token for AVX2 and FMA (Haswell and Zen onwards); see [`Simd`].
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    const REGISTERS: usize = 16;

    #[inline]
    fn detect() -> Option<Self> {
        (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx2(()))
    }

    #[inline]
    fn vectorize<K: SimdKernel>(self, kernel: K) -> K::Output {
        #[target_feature(enable = "avx2,fma")]
        fn entry<K: SimdKernel>(s: Avx2, kernel: K) -> K::Output {
            kernel.run(s)
        }
        // SAFETY: an `Avx2` token exists only when `detect` found AVX2 and FMA.
        unsafe { entry(self, kernel) }
    }

    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        // SAFETY: the token proves AVX is available.
        unsafe { _mm256_set1_ps(v) }
    }

    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        assert!(s.len() >= 8, "Avx2::load: slice shorter than 8");
        // SAFETY: AVX is available (token) and `s` holds at least 8 values (checked above);
        // `loadu` has no alignment requirement.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    #[inline(always)]
    fn store(self, v: __m256, s: &mut [f32]) {
        assert!(s.len() >= 8, "Avx2::store: slice shorter than 8");
        // SAFETY: AVX is available (token) and `s` holds at least 8 writable values.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }

    #[inline(always)]
    fn fma(self, acc: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves FMA is available.
        unsafe { _mm256_fmadd_ps(a, b, acc) }
    }

    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX is available.
        unsafe { _mm256_add_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX is available.
        unsafe { _mm256_mul_ps(a, b) }
    }

    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX is available. `maxps` returns `b` when either is NaN.
        unsafe { _mm256_max_ps(a, b) }
    }

    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX is available. `minps` returns `b` when either is NaN.
        unsafe { _mm256_min_ps(a, b) }
    }
}
