//! Every [`Simd`] implementation this CPU supports against scalar arithmetic.

use super::*;
use crate::kernels::activation::test_support::*;
use proptest::prelude::*;
use prunus_format::Activation;

/// Element-wise ops over whole vectors of `a`, `b`, `c` (lengths multiple of LANES, plus a
/// partial tail handled with the partial loads and stores).
struct Ops<'a> {
    a: &'a [f32],
    b: &'a [f32],
    c: &'a [f32],
    act: Activation,
    /// fma, add, mul, max, min, act(a) outputs.
    out: [&'a mut [f32]; 6],
}

impl SimdKernel for Ops<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let l = S::LANES;
        let act = VecActivation::new(s, self.act);
        let [fma, add, mul, max, min, ac] = self.out;
        let mut i = 0;
        while i < self.a.len() {
            let full = i + l <= self.a.len();
            let ld = |x: &[f32]| {
                if full {
                    s.load(&x[i..])
                } else {
                    s.load_partial(&x[i..])
                }
            };
            let (a, b, c) = (ld(self.a), ld(self.b), ld(self.c));
            let results = [
                s.fma(a, b, c),
                s.add(a, b),
                s.mul(a, b),
                s.max(a, b),
                s.min(a, b),
                act.apply(s, a),
            ];
            for (v, out) in results.into_iter().zip([
                &mut *fma, &mut *add, &mut *mul, &mut *max, &mut *min, &mut *ac,
            ]) {
                if full {
                    s.store(v, &mut out[i..]);
                } else {
                    s.store_partial(v, &mut out[i..]);
                }
            }
            i += l;
        }
    }
}

fn check<S: Simd>(n: usize, act: Activation, seed: u64) -> Result<(), TestCaseError> {
    let Some(s) = S::detect() else {
        return Ok(());
    };
    let mut r = rng(seed);
    // Scaled so the activations reach their saturated ends.
    let a: Vec<f32> = fill(&mut r, n).into_iter().map(|v| v * 8.0).collect();
    let (b, c) = (fill(&mut r, n), fill(&mut r, n));
    let mut outs = vec![vec![f32::NAN; n]; 6];
    let mut slots = outs.iter_mut();
    let out = std::array::from_fn(|_| slots.next().map_or(&mut [][..], |v| &mut v[..]));
    s.vectorize(Ops {
        a: &a,
        b: &b,
        c: &c,
        act,
        out,
    });
    let want: [Vec<f32>; 6] = [
        (0..n).map(|i| b[i].mul_add(c[i], a[i])).collect(),
        (0..n).map(|i| a[i] + b[i]).collect(),
        (0..n).map(|i| a[i] * b[i]).collect(),
        (0..n).map(|i| a[i].max(b[i])).collect(),
        (0..n).map(|i| a[i].min(b[i])).collect(),
        (0..n).map(|i| act.apply(a[i])).collect(),
    ];
    for (k, (got, want)) in outs.iter().zip(&want).enumerate() {
        if k < 5 {
            // Exact: one IEEE operation each (the fma is fused on both sides).
            prop_assert_eq!(got, want, "{} op {}", std::any::type_name::<S>(), k);
        } else {
            assert_close(got, want)?;
        }
    }
    Ok(())
}

/// Runs `check` for every ISA of this target (skipped where the CPU lacks it).
fn check_all(n: usize, act: Activation, seed: u64) -> Result<(), TestCaseError> {
    #[cfg(target_arch = "x86_64")]
    {
        check::<Avx2>(n, act, seed)?;
        check::<Avx512>(n, act, seed)?;
    }
    #[cfg(target_arch = "aarch64")]
    check::<Neon>(n, act, seed)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn simd_ops_match_scalar(n in 0usize..70, act in any_activation(), seed in any::<u64>()) {
        check_all(n, act, seed)?;
    }
}

#[test]
fn every_activation_on_every_isa() {
    for act in ALL_ACTIVATIONS {
        check_all(37, act, 5).unwrap();
    }
}

#[test]
fn relu_maps_nan_to_zero() {
    struct Relu<'a>(&'a mut [f32]);
    impl SimdKernel for Relu<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            let act = VecActivation::new(s, Activation::Relu);
            let v = act.apply(s, s.load_partial(self.0));
            s.store_partial(v, self.0);
        }
    }
    fn go<S: Simd>() {
        if let Some(s) = S::detect() {
            let mut v = [f32::NAN, -1.0, 2.0];
            s.vectorize(Relu(&mut v));
            assert_eq!(v, [0.0, 0.0, 2.0], "{}", std::any::type_name::<S>());
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        go::<Avx2>();
        go::<Avx512>();
    }
    #[cfg(target_arch = "aarch64")]
    go::<Neon>();
}

#[test]
fn shift_in_and_out_move_lanes_by_one() {
    struct Shift<'a>(&'a [f32], &'a mut [f32]);
    impl SimdKernel for Shift<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            let l = S::LANES;
            let v = s.shift_in(s.load(self.0), s.load(&self.0[l..]));
            s.store(v, self.1);
            let v = s.shift_out(s.load(self.0), s.load(&self.0[l..]));
            s.store(v, &mut self.1[l..]);
        }
    }
    fn go<S: Simd>() {
        if let Some(s) = S::detect() {
            let l = S::LANES;
            let ab: Vec<f32> = (0..2 * l).map(|i| i as f32 + 0.25).collect();
            let mut out = vec![f32::NAN; 2 * l];
            s.vectorize(Shift(&ab, &mut out));
            let name = std::any::type_name::<S>();
            assert_eq!(out[..l], ab[l - 1..2 * l - 1], "shift_in {name}");
            assert_eq!(out[l..], ab[1..l + 1], "shift_out {name}");
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        go::<Avx2>();
        go::<Avx512>();
    }
    #[cfg(target_arch = "aarch64")]
    go::<Neon>();
}

#[test]
fn deinterleave_splits_even_and_odd_lanes() {
    struct Split<'a> {
        pairs: &'a [f32],
        even: &'a mut [f32],
        odd: &'a mut [f32],
    }
    impl SimdKernel for Split<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            let l = S::LANES;
            let (e, o) = s.deinterleave(s.load(self.pairs), s.load(&self.pairs[l..]));
            s.store(e, self.even);
            s.store(o, self.odd);
            let (e, o) = s.load_deinterleaved(self.pairs);
            s.store(e, &mut self.even[l..]);
            s.store(o, &mut self.odd[l..]);
        }
    }
    fn go<S: Simd>() {
        if let Some(s) = S::detect() {
            let l = S::LANES;
            let pairs: Vec<f32> = (0..2 * l).map(|i| i as f32 * 1.5 - 7.0).collect();
            // Each output twice: from deinterleave, then from load_deinterleaved.
            let (mut even, mut odd) = (vec![f32::NAN; 2 * l], vec![f32::NAN; 2 * l]);
            s.vectorize(Split {
                pairs: &pairs,
                even: &mut even,
                odd: &mut odd,
            });
            let want_even: Vec<f32> = pairs.iter().step_by(2).copied().collect();
            let want_odd: Vec<f32> = pairs.iter().skip(1).step_by(2).copied().collect();
            let (want_even, want_odd) = (want_even.repeat(2), want_odd.repeat(2));
            assert_eq!(even, want_even, "{}", std::any::type_name::<S>());
            assert_eq!(odd, want_odd, "{}", std::any::type_name::<S>());
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        go::<Avx2>();
        go::<Avx512>();
    }
    #[cfg(target_arch = "aarch64")]
    go::<Neon>();
}

#[test]
fn load_deinterleaved4_splits_four_phases() {
    struct Split4<'a>(&'a [f32], &'a mut [f32]);
    impl SimdKernel for Split4<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            let l = S::LANES;
            for (p, v) in s.load_deinterleaved4(self.0).into_iter().enumerate() {
                s.store(v, &mut self.1[p * l..]);
            }
        }
    }
    fn go<S: Simd>() {
        if let Some(s) = S::detect() {
            let l = S::LANES;
            let x: Vec<f32> = (0..4 * l).map(|i| i as f32 * 0.75 - 9.0).collect();
            let mut out = vec![f32::NAN; 4 * l];
            s.vectorize(Split4(&x, &mut out));
            let want: Vec<f32> = (0..4)
                .flat_map(|p| x.iter().skip(p).step_by(4).copied())
                .collect();
            assert_eq!(out, want, "{}", std::any::type_name::<S>());
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        go::<Avx2>();
        go::<Avx512>();
    }
    #[cfg(target_arch = "aarch64")]
    go::<Neon>();
}

#[test]
fn interleave_alternates_lanes_and_inverts_deinterleave() {
    struct Zip<'a> {
        a: &'a [f32],
        b: &'a [f32],
        zipped: &'a mut [f32],
        back: &'a mut [f32],
    }
    impl SimdKernel for Zip<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            let l = S::LANES;
            let (lo, hi) = s.interleave(s.load(self.a), s.load(self.b));
            s.store(lo, self.zipped);
            s.store(hi, &mut self.zipped[l..]);
            let (a, b) = s.deinterleave(lo, hi);
            s.store(a, self.back);
            s.store(b, &mut self.back[l..]);
        }
    }
    fn go<S: Simd>() {
        if let Some(s) = S::detect() {
            let l = S::LANES;
            let a: Vec<f32> = (0..l).map(|i| i as f32 + 0.25).collect();
            let b: Vec<f32> = (0..l).map(|i| -(i as f32) - 100.0).collect();
            let (mut zipped, mut back) = (vec![f32::NAN; 2 * l], vec![f32::NAN; 2 * l]);
            s.vectorize(Zip {
                a: &a,
                b: &b,
                zipped: &mut zipped,
                back: &mut back,
            });
            let want: Vec<f32> = a.iter().zip(&b).flat_map(|(&x, &y)| [x, y]).collect();
            assert_eq!(zipped, want, "{}", std::any::type_name::<S>());
            assert_eq!(back, [a, b].concat(), "{}", std::any::type_name::<S>());
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        go::<Avx2>();
        go::<Avx512>();
    }
    #[cfg(target_arch = "aarch64")]
    go::<Neon>();
}

#[test]
fn load_n_and_store_n_move_consecutive_vectors() {
    /// Copies `src` to `dst` with `load_n::<N>` / `store_n::<N>` for N = 1..=9.
    struct Move<'a> {
        src: &'a [f32],
        dst: &'a mut [f32],
    }
    impl SimdKernel for Move<'_> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, s: S) {
            fn one<S: Simd, const N: usize>(s: S, src: &[f32], dst: &mut [f32], at: &mut usize) {
                let vs = s.load_n::<N>(&src[*at..]);
                s.store_n(vs, &mut dst[*at..]);
                *at += N * S::LANES;
            }
            let (src, dst, mut at) = (self.src, self.dst, 0);
            one::<S, 1>(s, src, dst, &mut at);
            one::<S, 2>(s, src, dst, &mut at);
            one::<S, 3>(s, src, dst, &mut at);
            one::<S, 4>(s, src, dst, &mut at);
            one::<S, 5>(s, src, dst, &mut at);
            one::<S, 6>(s, src, dst, &mut at);
            one::<S, 7>(s, src, dst, &mut at);
            one::<S, 8>(s, src, dst, &mut at);
            one::<S, 9>(s, src, dst, &mut at);
        }
    }
    fn go<S: Simd>() {
        if let Some(s) = S::detect() {
            // 45 vectors, then one that must stay untouched.
            let n = 45 * S::LANES;
            let src: Vec<f32> = (0..n + S::LANES).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut dst = vec![f32::NAN; n + S::LANES];
            s.vectorize(Move {
                src: &src,
                dst: &mut dst,
            });
            assert_eq!(dst[..n], src[..n], "{}", std::any::type_name::<S>());
            assert!(
                dst[n..].iter().all(|v| v.is_nan()),
                "{}",
                std::any::type_name::<S>()
            );
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        go::<Avx2>();
        go::<Avx512>();
    }
    #[cfg(target_arch = "aarch64")]
    go::<Neon>();
}
