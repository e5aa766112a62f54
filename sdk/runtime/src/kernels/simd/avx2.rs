//! [`Simd`] for x86-64 AVX2 + FMA: 8 `f32` lanes in a `__m256`, 16 vector registers.
//! Partial loads and stores use lane masks (`vmaskmovps`) instead of a stack buffer.

use core::arch::x86_64::*;

use super::{Simd, SimdKernel};

/// Token for AVX2 and FMA (Haswell and Zen onwards); see [`Simd`].
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

impl Avx2 {
    /// Lane mask (sign bit set) of the first `min(n, 8)` lanes.
    #[inline(always)]
    fn mask(n: usize) -> __m256i {
        let n = n.min(8) as i32;
        // SAFETY: AVX2 is available wherever an `Avx2` token (the receiver of every caller)
        // exists.
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
}

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
    fn load_partial(self, s: &[f32]) -> __m256 {
        // SAFETY: AVX2 is available (token); `maskload` reads only the lanes whose mask is
        // set, the first `min(len, 8)`, and masked-off lanes do not fault.
        unsafe { _mm256_maskload_ps(s.as_ptr(), Self::mask(s.len())) }
    }

    #[inline(always)]
    fn store_partial(self, v: __m256, s: &mut [f32]) {
        // SAFETY: as `load_partial`: only the first `min(len, 8)` lanes are written.
        unsafe { _mm256_maskstore_ps(s.as_mut_ptr(), Self::mask(s.len()), v) }
    }

    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        // SAFETY: a prefetch is a hint: it never faults and reads nothing into the program,
        // whatever the address (SSE, implied by the token).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
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
    fn shift_in(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX2 is available. `t` = [a4..a7 | b0..b3]; `vpalignr`
        // per 128-bit half takes the last lane of `t`'s half and the first three of `b`'s.
        unsafe {
            let t = _mm256_castps_si256(_mm256_permute2f128_ps::<0x21>(a, b));
            _mm256_castsi256_ps(_mm256_alignr_epi8::<12>(_mm256_castps_si256(b), t))
        }
    }

    #[inline(always)]
    fn shift_out(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: the token proves AVX2 is available. `t` = [a4..a7 | b0..b3]; `vpalignr`
        // per 128-bit half takes the last three lanes of `a`'s half and the first of `t`'s.
        unsafe {
            let t = _mm256_castps_si256(_mm256_permute2f128_ps::<0x21>(a, b));
            _mm256_castsi256_ps(_mm256_alignr_epi8::<4>(t, _mm256_castps_si256(a)))
        }
    }

    #[inline(always)]
    fn deinterleave(self, a: __m256, b: __m256) -> (__m256, __m256) {
        // SAFETY: the token proves AVX2 is available. `shufps` works per 128-bit half:
        // [a0 a2 b0 b2 | a4 a6 b4 b6]; `vpermpd` (0, 2, 1, 3) puts the 64-bit pairs in order.
        unsafe {
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            let even = _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(even));
            let odd = _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(odd));
            (_mm256_castpd_ps(even), _mm256_castpd_ps(odd))
        }
    }

    #[inline(always)]
    fn interleave(self, a: __m256, b: __m256) -> (__m256, __m256) {
        // SAFETY: the token proves AVX is available. `unpck*ps` work per 128-bit half:
        // [a0 b0 a1 b1 | a4 b4 a5 b5] and [a2 b2 a3 b3 | a6 b6 a7 b7]; `vperm2f128` pairs
        // the low halves, then the high ones.
        unsafe {
            let lo = _mm256_unpacklo_ps(a, b);
            let hi = _mm256_unpackhi_ps(a, b);
            (
                _mm256_permute2f128_ps::<0x20>(lo, hi),
                _mm256_permute2f128_ps::<0x31>(lo, hi),
            )
        }
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
