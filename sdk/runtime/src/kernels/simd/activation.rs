//! The fused epilogue's activation on vectors: every [`Activation`] variant, with its
//! parameters splatted once per kernel call.
//!
//! Results match [`Activation::apply`] to within an ulp or two: HardSwish multiplies by
//! 1/6 instead of dividing by 6, and HardSigmoid / LeakyRelu use a fused multiply-add.
//! Sigmoid runs the scalar `apply` per lane.

use prunus_format::Activation;

use super::Simd;

/// An [`Activation`] prepared for vectors of `S`.
#[derive(Clone, Copy, Debug)]
pub struct VecActivation<S: Simd> {
    act: Activation,
    /// Clip: lower bound; HardSigmoid and LeakyRelu: alpha.
    a: S::V,
    /// Clip: upper bound; HardSigmoid: beta.
    b: S::V,
}

impl<S: Simd> VecActivation<S> {
    /// Splats the parameters of `act`.
    #[inline(always)]
    pub fn new(s: S, act: Activation) -> Self {
        let (a, b) = match act {
            Activation::Clip { min, max } => (min, max),
            Activation::HardSigmoid { alpha, beta } => (alpha, beta),
            Activation::LeakyRelu { alpha } => (alpha, 0.0),
            _ => (0.0, 0.0),
        };
        VecActivation {
            act,
            a: s.splat(a),
            b: s.splat(b),
        }
    }

    /// The activation this applies.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// `act(v)` for one vector (one `match` per call: prefer [`Self::apply_all`] on tiles).
    #[inline(always)]
    pub fn apply(&self, s: S, v: S::V) -> S::V {
        let mut one = [v];
        self.apply_all(s, &mut one);
        one[0]
    }

    /// `act(v)` for every vector of `vs`, in place; the `match` on the variant is outside
    /// the loop.
    #[inline(always)]
    pub fn apply_all(&self, s: S, vs: &mut [S::V]) {
        let (a, b) = (self.a, self.b);
        let zero = s.zero();
        match self.act {
            Activation::None => {}
            Activation::Relu => {
                for v in vs {
                    *v = s.max(*v, zero);
                }
            }
            Activation::Clip { .. } => {
                for v in vs {
                    *v = s.min(s.max(*v, a), b);
                }
            }
            Activation::HardSigmoid { .. } => {
                let one = s.splat(1.0);
                for v in vs {
                    *v = s.min(s.max(s.fma(b, a, *v), zero), one);
                }
            }
            Activation::HardSwish => {
                let (one, sixth, half) = (s.splat(1.0), s.splat(1.0 / 6.0), s.splat(0.5));
                for v in vs {
                    let gate = s.min(s.max(s.fma(half, sixth, *v), zero), one);
                    *v = s.mul(*v, gate);
                }
            }
            Activation::Sigmoid => {
                for v in vs {
                    *v = s.map_lanes(*v, |x| Activation::Sigmoid.apply(x));
                }
            }
            // x > 0 ? x : alpha x  ==  max(x, 0) + alpha * min(x, 0), exactly.
            Activation::LeakyRelu { .. } => {
                for v in vs {
                    *v = s.fma(s.max(*v, zero), a, s.min(*v, zero));
                }
            }
        }
    }
}
