//! A small SIMD abstraction: one `f32` vector type per instruction set, so that every fast
//! kernel is written once, generic over [`Simd`], and instantiated per ISA.
//!
//! # The pattern
//!
//! An ISA is a zero-sized *token* type (`Avx2`, `Avx512` on x86-64, `Neon` on aarch64)
//! whose only constructor, [`Simd::detect`], checks the CPU at run time. Holding a token
//! proves the instructions exist, so its vector methods are safe to call. A kernel is a struct
//! implementing [`SimdKernel`], whose `run` and every helper it calls are
//! `#[inline(always)]` and generic over `S: Simd`; [`Simd::vectorize`] runs it inside a
//! `#[target_feature]` function of that ISA, where the whole body is inlined and compiled
//! for the ISA:
//!
//! ```
//! use prunus::kernels::simd::{Simd, SimdKernel};
//!
//! /// `y = a * x + y`.
//! struct Axpy<'a> { a: f32, x: &'a [f32], y: &'a mut [f32] }
//!
//! impl SimdKernel for Axpy<'_> {
//!     type Output = ();
//!     #[inline(always)]
//!     fn run<S: Simd>(self, s: S) {
//!         let a = s.splat(self.a);
//!         // Bounds are checked once here: both chunk iterators yield exactly LANES values,
//!         // so the checks inside load and store fold away.
//!         let (xs, ys) = (self.x.chunks_exact(S::LANES), self.y.chunks_exact_mut(S::LANES));
//!         for (x, y) in xs.zip(ys) {
//!             s.store(s.fma(s.load(y), a, s.load(x)), y);
//!         }
//!         // (a real kernel also handles the tail with load_partial / store_partial)
//!     }
//! }
//!
//! fn axpy<S: Simd>(a: f32, x: &[f32], y: &mut [f32]) {
//!     match S::detect() {
//!         Some(s) => s.vectorize(Axpy { a, x, y }),
//!         None => y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x),
//!     }
//! }
//! # let (x, mut y) = (vec![1.0; 20], vec![2.0; 20]);
//! # #[cfg(target_arch = "x86_64")]
//! # axpy::<prunus::kernels::simd::Avx2>(3.0, &x, &mut y);
//! ```
//!
//! A generic `fn kernel<S: Simd>(..)` like `axpy` above coerces to the kernel table's plain
//! `fn` pointer types, so the table holds `axpy::<Avx2>` directly; the detection inside
//! costs one cached atomic load per call and keeps the entry sound if called directly.
//!
//! Inside a kernel, build vector arrays with plain loops, not `std::array::from_fn` or
//! iterator closures over vectors: those are not `#[inline(always)]`, and a function left
//! out of line is compiled without the ISA and passes vectors through memory (measured: a
//! `from_fn` of broadcasts left as a call in a K loop made a kernel 2x slower).
//!
//! Kernels never need `unsafe`: loads and stores take slices and check their length, a
//! check LLVM removes when the slice was cut to a known length once at kernel entry (take
//! `&x[i..i + NV * S::LANES]` once, then load at constant offsets inside it).
//!
//! Only what the kernels need is here: splat (one value or each of an array), load/store (full and partial), fma, add, mul,
//! max, min, deinterleave (of two vectors, or while loading), a per-lane scalar fallback ([`Simd::map_lanes`], for Sigmoid) and loads/stores of several consecutive vectors at once ([`Simd::load_n`], [`Simd::store_n`]),
//! a prefetch hint ([`Simd::prefetch`]), and one hook for an ISA's own assembly micro-kernel
//! ([`Simd::panel_tile_8x3`], NEON's pointwise tile with its epilogue). The fused bias + activation epilogue
//! built on them is [`VecActivation`].

mod activation;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
mod neon_pointwise;

pub use activation::VecActivation;
#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2;
#[cfg(target_arch = "x86_64")]
pub use avx512::Avx512;
#[cfg(target_arch = "aarch64")]
pub use neon::Neon;

/// The most lanes any [`Simd`] implementation has (AVX-512: 16 f32); sizes the stack
/// buffers of the default partial loads.
pub const MAX_LANES: usize = 16;

/// One instruction set's `f32` vector, as a zero-sized token that proves (by existing) the
/// CPU supports it. All methods are `#[inline(always)]`; call them only from code that runs
/// under [`Simd::vectorize`], or they compile to calls without the ISA's instructions.
pub trait Simd: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// A vector of [`Simd::LANES`] `f32` values.
    type V: Copy;
    /// `f32` lanes per vector.
    const LANES: usize;
    /// Vector registers of the ISA (16 for AVX2, 32 for AVX-512 and NEON): kernels size
    /// their register tiles from it.
    const REGISTERS: usize;

    /// The token, if this CPU supports the ISA (cached run-time detection).
    fn detect() -> Option<Self>;

    /// Runs `kernel` compiled for this ISA: calls [`SimdKernel::run`] from a
    /// `#[target_feature]` function, into which the kernel body is inlined.
    fn vectorize<K: SimdKernel>(self, kernel: K) -> K::Output;

    /// Every lane `v`.
    fn splat(self, v: f32) -> Self::V;

    /// `[splat(w[0]), .., splat(w[N - 1])]`. NEON loads the values as vectors and
    /// duplicates lanes, which LLVM folds into by-element FMAs (`fmla v, v, v.s[i]`): one
    /// load per 4 weights instead of one per weight.
    #[inline(always)]
    fn splat_each<const N: usize>(self, w: &[f32; N]) -> [Self::V; N] {
        let mut out = [self.zero(); N];
        for (o, &v) in out.iter_mut().zip(w) {
            *o = self.splat(v);
        }
        out
    }

    /// Every lane zero.
    #[inline(always)]
    fn zero(self) -> Self::V {
        self.splat(0.0)
    }

    /// Loads `s[..LANES]` (unaligned). Panics if `s` is shorter: cut `s` to a known length
    /// once, outside the loop, so the check folds away.
    fn load(self, s: &[f32]) -> Self::V;

    /// Stores `v` to `s[..LANES]` (unaligned). Panics if `s` is shorter.
    fn store(self, v: Self::V, s: &mut [f32]);

    /// Loads `min(s.len(), LANES)` values; the other lanes are zero. For tails only.
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> Self::V {
        let n = s.len().min(Self::LANES);
        let mut buf = [0.0f32; MAX_LANES];
        buf[..n].copy_from_slice(&s[..n]);
        self.load(&buf)
    }

    /// Stores the first `min(s.len(), LANES)` lanes of `v` to `s`. For tails only.
    #[inline(always)]
    fn store_partial(self, v: Self::V, s: &mut [f32]) {
        let n = s.len().min(Self::LANES);
        let mut buf = [0.0f32; MAX_LANES];
        self.store(v, &mut buf);
        s[..n].copy_from_slice(&buf[..n]);
    }

    /// Hints the CPU to fetch the cache line holding `p` into L1 (x86 `prefetcht0`; a no-op
    /// elsewhere). Never dereferences `p`: any address, even one past an allocation (made
    /// with `wrapping_add`), is allowed.
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        let _ = p;
    }

    /// This ISA's pointwise micro-kernel in assembly, if it has one: stores the 8 x
    /// `3 * LANES` tile
    /// `y[r * plane + col + i] = act(sum_k w[k][r] * x[k * plane + col + i] + bias[r] +
    /// residual[r * plane + col + i])` over the `K = w.len()` columns of one
    /// [`Panel8`](prunus_format::Layout::Panel8) panel, rounding as the generic tile and
    /// epilogue of the pointwise kernels do, and returns `true`. `false` (the default):
    /// nothing done, use the generic tile. NEON has one (`neon_pointwise.rs`).
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
        let _ = (x, plane, col, w, epi, y);
        false
    }

    /// `acc + a * b`, fused (one rounding).
    fn fma(self, acc: Self::V, a: Self::V, b: Self::V) -> Self::V;

    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;

    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;

    /// Lane-wise maximum. A NaN lane of `a` against a number in `b` yields the number on
    /// every ISA (as `f32::max`), so `max(v, 0)` maps NaN to 0; other NaN cases may differ.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;

    /// Lane-wise minimum; NaN as for [`Simd::max`].
    fn min(self, a: Self::V, b: Self::V) -> Self::V;

    /// The even and the odd lanes of the `2 * LANES` values `a ++ b`:
    /// `([a0, a2, .., b0, b2, ..], [a1, a3, .., b1, b3, ..])`. De-interleaves stride-2
    /// input columns with two shuffles (AVX-512 `vpermt2ps`, AVX2 `vshufps` + `vpermpd`,
    /// NEON `uzp1`/`uzp2`).
    fn deinterleave(self, a: Self::V, b: Self::V) -> (Self::V, Self::V);

    /// The inverse of [`Simd::deinterleave`]: the lanes of `a` and `b` alternating,
    /// `a0, b0, a1, b1, ..`, the first `LANES` of them in the first vector and the rest in
    /// the second (NEON `zip1`/`zip2`, AVX2 `vunpcklps`/`vunpckhps` + `vperm2f128`, AVX-512
    /// `vpermt2ps`).
    fn interleave(self, a: Self::V, b: Self::V) -> (Self::V, Self::V);

    /// `b` moved up one lane, with the last lane of `a` in lane 0:
    /// `[a[LANES - 1], b0, .., b[LANES - 2]]` (NEON `ext`, AVX-512 `valignd`, AVX2
    /// `vperm2f128` + `vpalignr`). Shifts a vector of a row left by one column.
    fn shift_in(self, a: Self::V, b: Self::V) -> Self::V;

    /// `a` moved down one lane, with the first lane of `b` in the last lane:
    /// `[a1, .., a[LANES - 1], b0]` (NEON `ext`, AVX-512 `valignd`, AVX2 `vperm2f128` +
    /// `vpalignr`). Shifts a vector of a row right by one column.
    fn shift_out(self, a: Self::V, b: Self::V) -> Self::V;

    /// [`Simd::deinterleave`] of the vectors at `s[..LANES]` and `s[LANES..2 * LANES]`
    /// (NEON: one `ld2`). Panics if `s` is shorter than `2 * LANES`.
    #[inline(always)]
    fn load_deinterleaved(self, s: &[f32]) -> (Self::V, Self::V) {
        let s = &s[..2 * Self::LANES];
        self.deinterleave(self.load(s), self.load(&s[Self::LANES..]))
    }

    /// The four phases of the `4 * LANES` values `s[..4 * LANES]`: phase `p` holds `s[p]`,
    /// `s[p + 4]`, .. (NEON: one `ld4`; elsewhere two rounds of [`Simd::deinterleave`]).
    /// Panics if `s` is shorter than `4 * LANES`.
    #[inline(always)]
    fn load_deinterleaved4(self, s: &[f32]) -> [Self::V; 4] {
        let s = &s[..4 * Self::LANES];
        let (e0, o0) = self.load_deinterleaved(s);
        let (e1, o1) = self.load_deinterleaved(&s[2 * Self::LANES..]);
        let (p0, p2) = self.deinterleave(e0, e1);
        let (p1, p3) = self.deinterleave(o0, o1);
        [p0, p1, p2, p3]
    }

    /// Applies a scalar function to each lane (through memory): the fallback for what has
    /// no vector form here (Sigmoid's `exp`).
    #[inline(always)]
    fn map_lanes(self, v: Self::V, f: impl Fn(f32) -> f32) -> Self::V {
        let mut buf = [0.0f32; MAX_LANES];
        self.store(v, &mut buf);
        for lane in &mut buf[..Self::LANES] {
            *lane = f(*lane);
        }
        self.load(&buf)
    }

    /// The `N` consecutive vectors at `s[..N * LANES]`, with one bounds check (NEON:
    /// `vld1q_f32_x4` per 4 vectors, which LLVM emits as `ldp` pairs). Panics if `s` is
    /// shorter.
    #[inline(always)]
    fn load_n<const N: usize>(self, s: &[f32]) -> [Self::V; N] {
        let s = &s[..N * Self::LANES];
        std::array::from_fn(|v| self.load(&s[v * Self::LANES..]))
    }

    /// Stores the `N` vectors `vs` to `s[..N * LANES]`, with one bounds check (NEON:
    /// `vst1q_f32_x4` per 4 vectors). Panics if `s` is shorter.
    #[inline(always)]
    fn store_n<const N: usize>(self, vs: [Self::V; N], s: &mut [f32]) {
        let s = &mut s[..N * Self::LANES];
        for (&v, c) in vs.iter().zip(s.chunks_exact_mut(Self::LANES)) {
            self.store(v, c);
        }
    }
}

/// The epilogue of [`Simd::panel_tile_8x3`]: what follows the 8 rows' sums.
#[derive(Clone, Copy, Debug)]
pub struct PanelEpilogue<'a> {
    /// The rows' biases, if any.
    pub bias: Option<&'a [f32; 8]>,
    /// The residual's 8 planes, laid out as the output's, added after the bias.
    pub residual: Option<&'a [f32]>,
    /// The activation, last.
    pub act: PanelActivation,
}

/// The activations [`Simd::panel_tile_8x3`] applies (the others run the generic tile).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PanelActivation {
    /// Identity.
    None,
    /// `max(v, 0)`, NaN-ignoring as [`Simd::max`].
    Relu,
    /// `min(max(v, lo), hi)`, NaN-ignoring as [`Simd::max`]: Clip.
    Clamp {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `v * min(max(v / 6 + 1 / 2, 0), 1)` as [`VecActivation`] computes it.
    HardSwish,
}

impl PanelActivation {
    /// The form of `act` an assembly tile applies, if it has one.
    pub fn of(act: prunus_format::Activation) -> Option<Self> {
        use prunus_format::Activation as A;
        match act {
            A::None => Some(Self::None),
            A::Relu => Some(Self::Relu),
            A::Clip { min, max } => Some(Self::Clamp { lo: min, hi: max }),
            A::HardSwish => Some(Self::HardSwish),
            _ => None,
        }
    }
}

/// A kernel body generic over the ISA, run by [`Simd::vectorize`]. Implement `run` with
/// `#[inline(always)]` (and every function it calls), so that it is compiled inside the
/// ISA's `#[target_feature]` entry.
pub trait SimdKernel {
    /// What the kernel returns.
    type Output;

    /// The body, with the ISA token.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

#[cfg(test)]
mod tests;

/// `acc[r][v] += w[r] * xv[v]`: the FMAs of one weight column (`R` output channels) into a
/// register tile of `R` x `NV` vectors.
#[inline(always)]
pub fn outer_fma<S: Simd, const R: usize, const NV: usize>(
    s: S,
    acc: &mut [[S::V; NV]; R],
    w: &[f32; R],
    xv: [S::V; NV],
) {
    let wb = s.splat_each(w);
    for (accr, &wb) in acc.iter_mut().zip(&wb) {
        for (a, &x) in accr.iter_mut().zip(&xv) {
            *a = s.fma(*a, wb, x);
        }
    }
}
