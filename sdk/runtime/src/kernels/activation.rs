//! Element-wise activations: standalone (`y = act(x)`) and in place on a kernel's output.
//!
//! [`Activation::apply`] matches on the variant for every value; inside a loop LLVM may or
//! may not hoist that match, and if it does not the loop cannot be vectorised. So every loop
//! here is instantiated once per variant (see `specialise!`), each instance calling `apply`
//! on a value whose variant is known at compile time: the match folds away and the results
//! stay bit-identical to the reference `apply`.

use prunus_format::Activation;

/// Runs `$body` with `$a` bound to a copy of `$act` whose variant is a compile-time
/// constant, so `$a.apply(v)` inside `$body` inlines to branch-free code.
macro_rules! specialise {
    ($act:expr, |$a:ident| $body:expr) => {
        match $act {
            Activation::None => {
                let $a = Activation::None;
                $body
            }
            Activation::Relu => {
                let $a = Activation::Relu;
                $body
            }
            Activation::Clip { min, max } => {
                let $a = Activation::Clip { min, max };
                $body
            }
            Activation::HardSigmoid { alpha, beta } => {
                let $a = Activation::HardSigmoid { alpha, beta };
                $body
            }
            Activation::HardSwish => {
                let $a = Activation::HardSwish;
                $body
            }
            Activation::Sigmoid => {
                let $a = Activation::Sigmoid;
                $body
            }
            Activation::LeakyRelu { alpha } => {
                let $a = Activation::LeakyRelu { alpha };
                $body
            }
        }
    };
}

/// `y = act(x)` element-wise; `x` and `y` have the same length.
pub fn activation(act: Activation, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len(), "activation: x and y lengths differ");
    specialise!(act, |a| {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = a.apply(v);
        }
    })
}

/// `y = act(y)` element-wise, in place. Kernels call it on a freshly written (L1-hot) row
/// or block of their output, which keeps their accumulation loops free of the activation.
pub fn activation_in_place(act: Activation, y: &mut [f32]) {
    if act == Activation::None {
        return;
    }
    specialise!(act, |a| {
        for v in y.iter_mut() {
            *v = a.apply(*v);
        }
    })
}

/// Shared helpers for the kernels' property tests: random data, activation strategies and
/// the tolerance check.
#[cfg(test)]
pub(crate) mod test_support {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use prunus_format::Activation;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Every [`Activation`] variant, with parameters where it has them.
    pub fn any_activation() -> impl Strategy<Value = Activation> {
        prop_oneof![
            Just(Activation::None),
            Just(Activation::Relu),
            (-1.0f32..0.0, 0.0f32..1.0).prop_map(|(min, max)| Activation::Clip { min, max }),
            (0.05f32..0.5, 0.2f32..0.8)
                .prop_map(|(alpha, beta)| Activation::HardSigmoid { alpha, beta }),
            Just(Activation::HardSwish),
            Just(Activation::Sigmoid),
            (0.0f32..0.5).prop_map(|alpha| Activation::LeakyRelu { alpha }),
        ]
    }

    /// One of each variant, for exhaustive loops in named tests.
    pub const ALL_ACTIVATIONS: [Activation; 7] = [
        Activation::None,
        Activation::Relu,
        Activation::Clip {
            min: -0.5,
            max: 0.5,
        },
        Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Activation::HardSwish,
        Activation::Sigmoid,
        Activation::LeakyRelu { alpha: 0.1 },
    ];

    /// A deterministic generator for test data, seeded by proptest (so failures replay).
    pub fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    /// `n` values uniform in `[-1, 1)`: small enough that f32 accumulation error stays far
    /// below the tolerance, signed so every activation sees both branches.
    pub fn fill(rng: &mut StdRng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    /// `|got - want| <= 1e-4 * max(1, |want|)` for every element (NaN always fails, so an
    /// output left unwritten in a NaN-filled buffer is caught).
    pub fn assert_close(got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
        prop_assert_eq!(got.len(), want.len(), "length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let tol = 1e-4 * w.abs().max(1.0);
            prop_assert!((g - w).abs() <= tol, "index {}: got {}, want {}", i, g, w);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use proptest::prelude::*;

    /// The math definition of each variant, written independently of `Activation::apply`
    /// (hence the explicit comparisons instead of `clamp`).
    #[allow(clippy::manual_clamp)]
    fn naive(act: Activation, x: f32) -> f32 {
        match act {
            Activation::None => x,
            Activation::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            Activation::Clip { min, max } => {
                if x < min {
                    min
                } else if x > max {
                    max
                } else {
                    x
                }
            }
            Activation::HardSigmoid { alpha, beta } => {
                let v = alpha * x + beta;
                if v < 0.0 {
                    0.0
                } else if v > 1.0 {
                    1.0
                } else {
                    v
                }
            }
            Activation::HardSwish => {
                let v = x / 6.0 + 0.5;
                x * if v < 0.0 {
                    0.0
                } else if v > 1.0 {
                    1.0
                } else {
                    v
                }
            }
            Activation::Sigmoid => (1.0 / (1.0 + (-(x as f64)).exp())) as f32,
            Activation::LeakyRelu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn activation_matches_reference(
            act in any_activation(), n in 0usize..1000, seed in any::<u64>(), scale in 1.0f32..10.0
        ) {
            // Scaled so HardSwish / HardSigmoid / Clip reach both saturated ends.
            let x: Vec<f32> = fill(&mut rng(seed), n).into_iter().map(|v| v * scale).collect();
            let want: Vec<f32> = x.iter().map(|&v| naive(act, v)).collect();
            let mut y = vec![f32::NAN; n];
            activation(act, &x, &mut y);
            assert_close(&y, &want)?;
            let mut z = x.clone();
            activation_in_place(act, &mut z);
            assert_close(&z, &want)?;
        }
    }

    #[test]
    fn known_values() {
        let x = [-12.0f32, -1.0, 0.0, 1.0, 3.0, 12.0];
        let check = |act, want: [f32; 6]| {
            let mut y = [0.0; 6];
            activation(act, &x, &mut y);
            for (g, w) in y.iter().zip(want) {
                assert!((g - w).abs() <= 1e-6, "{act:?}: got {y:?}, want {want:?}");
            }
        };
        check(Activation::Relu, [0.0, 0.0, 0.0, 1.0, 3.0, 12.0]);
        check(
            Activation::Clip { min: 0.0, max: 6.0 },
            [0.0, 0.0, 0.0, 1.0, 3.0, 6.0],
        );
        check(
            Activation::HardSwish,
            [-0.0, -1.0 / 3.0, 0.0, 2.0 / 3.0, 3.0, 12.0],
        );
        check(
            Activation::LeakyRelu { alpha: 0.5 },
            [-6.0, -0.5, 0.0, 1.0, 3.0, 12.0],
        );
        let mut y = [0.0; 6];
        activation(Activation::Sigmoid, &x, &mut y);
        assert_eq!(y[2], 0.5);
        assert!(y[0] < 1e-5 && y[5] > 1.0 - 1e-5);
    }

    #[test]
    fn in_place_none_is_identity() {
        let mut y = [1.5f32, -2.0, f32::INFINITY];
        activation_in_place(Activation::None, &mut y);
        assert_eq!(y, [1.5, -2.0, f32::INFINITY]);
    }
}
