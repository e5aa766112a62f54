//! Element-wise binary ops with broadcasting (`y = act(a op b)`) and per-channel
//! scale-and-shift (`y = act(x * scale[c] + shift[c])`).
//!
//! Both work in blocks of `BLOCK` values: the arithmetic pass over a block is one tight,
//! vectorisable loop per [`BinaryKind`], and the activation then runs over the same block
//! while it is still in L1, instead of a second pass over the whole (cache-cold) tensor.

use super::Broadcast;
use super::activation::activation_in_place;
use prunus_format::{Activation, BinaryKind};

/// Values per block: 1 KiB of output, far below L1 on every target board.
const BLOCK: usize = 256;

/// `y = act(a (kind) b)` with `b` broadcast against `a` as `bc` says; `a` and `y` have the
/// full shape `[C, hw]`.
pub fn binary(
    kind: BinaryKind,
    act: Activation,
    a: &[f32],
    b: &[f32],
    bc: Broadcast,
    y: &mut [f32],
) {
    debug_assert_eq!(a.len(), y.len(), "binary: a and y lengths differ");
    match bc {
        Broadcast::Full => {
            debug_assert_eq!(b.len(), a.len(), "binary: b is not full-shaped");
            let blocks = y
                .chunks_mut(BLOCK)
                .zip(a.chunks(BLOCK))
                .zip(b.chunks(BLOCK));
            for ((yb, ab), bb) in blocks {
                zip_op(kind, ab, bb, yb);
                activation_in_place(act, yb);
            }
        }
        Broadcast::PerChannel { hw } => {
            if hw == 0 {
                return; // empty tensor; chunks of size 0 are not allowed
            }
            debug_assert_eq!(
                a.len(),
                b.len() * hw,
                "binary: b is not one value per channel"
            );
            for ((yc, ac), &bv) in y.chunks_mut(hw).zip(a.chunks(hw)).zip(b) {
                for (yb, ab) in yc.chunks_mut(BLOCK).zip(ac.chunks(BLOCK)) {
                    scalar_op(kind, ab, bv, yb);
                    activation_in_place(act, yb);
                }
            }
        }
        Broadcast::Scalar => {
            debug_assert!(!b.is_empty(), "binary: scalar operand is empty");
            let Some(&bv) = b.first() else { return };
            for (yb, ab) in y.chunks_mut(BLOCK).zip(a.chunks(BLOCK)) {
                scalar_op(kind, ab, bv, yb);
                activation_in_place(act, yb);
            }
        }
    }
}

/// Per-channel `y = act(x * scale[c] + shift[c])` over `[C, hw]` with `C = scale.len()`.
pub fn scale_shift(
    hw: usize,
    scale: &[f32],
    shift: &[f32],
    act: Activation,
    x: &[f32],
    y: &mut [f32],
) {
    debug_assert_eq!(x.len(), y.len(), "scale_shift: x and y lengths differ");
    debug_assert_eq!(
        scale.len(),
        shift.len(),
        "scale_shift: scale and shift lengths differ"
    );
    debug_assert_eq!(x.len(), scale.len() * hw, "scale_shift: x is not [C, hw]");
    if hw == 0 {
        return;
    }
    let channels = y
        .chunks_mut(hw)
        .zip(x.chunks(hw))
        .zip(scale.iter().zip(shift));
    for ((yc, xc), (&s, &t)) in channels {
        for (yb, xb) in yc.chunks_mut(BLOCK).zip(xc.chunks(BLOCK)) {
            for (o, &v) in yb.iter_mut().zip(xb) {
                *o = v * s + t;
            }
            activation_in_place(act, yb);
        }
    }
}

/// `y[i] = a[i] (kind) b[i]`, one monomorphic loop per kind.
fn zip_op(kind: BinaryKind, a: &[f32], b: &[f32], y: &mut [f32]) {
    // `BinaryKind::X.apply` with a constant kind folds to the bare operator, so each arm is
    // the same arithmetic as the reference, without a per-element match.
    macro_rules! run {
        ($k:expr) => {
            for ((o, &u), &v) in y.iter_mut().zip(a).zip(b) {
                *o = $k.apply(u, v);
            }
        };
    }
    match kind {
        BinaryKind::Add => run!(BinaryKind::Add),
        BinaryKind::Sub => run!(BinaryKind::Sub),
        BinaryKind::Mul => run!(BinaryKind::Mul),
        BinaryKind::Div => run!(BinaryKind::Div),
    }
}

/// `y[i] = a[i] (kind) b`, one monomorphic loop per kind.
fn scalar_op(kind: BinaryKind, a: &[f32], b: f32, y: &mut [f32]) {
    macro_rules! run {
        ($k:expr) => {
            for (o, &u) in y.iter_mut().zip(a) {
                *o = $k.apply(u, b);
            }
        };
    }
    match kind {
        BinaryKind::Add => run!(BinaryKind::Add),
        BinaryKind::Sub => run!(BinaryKind::Sub),
        BinaryKind::Mul => run!(BinaryKind::Mul),
        BinaryKind::Div => run!(BinaryKind::Div),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::*;
    use proptest::prelude::*;
    use rand::Rng;

    /// Direct definition: element `c * hw + p` of `a` pairs with the broadcast `b` value.
    fn naive_binary(
        kind: BinaryKind,
        act: Activation,
        a: &[f32],
        b: &[f32],
        bc: Broadcast,
    ) -> Vec<f32> {
        (0..a.len())
            .map(|i| {
                let bv = match bc {
                    Broadcast::Full => b[i],
                    Broadcast::PerChannel { hw } => b[i / hw],
                    Broadcast::Scalar => b[0],
                };
                let r = match kind {
                    BinaryKind::Add => a[i] + bv,
                    BinaryKind::Sub => a[i] - bv,
                    BinaryKind::Mul => a[i] * bv,
                    BinaryKind::Div => a[i] / bv,
                };
                act.apply(r)
            })
            .collect()
    }

    fn any_kind() -> impl Strategy<Value = BinaryKind> {
        prop_oneof![
            Just(BinaryKind::Add),
            Just(BinaryKind::Sub),
            Just(BinaryKind::Mul),
            Just(BinaryKind::Div),
        ]
    }

    /// Operand values bounded away from zero so `Div` stays finite and well-conditioned.
    fn divisor_safe(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let m = rng.gen_range(0.5f32..2.0);
                if rng.gen_bool(0.5) { m } else { -m }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn binary_matches_reference(
            kind in any_kind(),
            act in any_activation(),
            c in 1usize..=37,
            h in 1usize..=23,
            w in 1usize..=23,
            which in 0u8..3,
            seed in any::<u64>(),
        ) {
            let hw = h * w;
            let mut r = rng(seed);
            let a = fill(&mut r, c * hw);
            let (bc, blen) = match which {
                0 => (Broadcast::Full, c * hw),
                1 => (Broadcast::PerChannel { hw }, c),
                _ => (Broadcast::Scalar, 1),
            };
            let b = divisor_safe(&mut r, blen);
            let want = naive_binary(kind, act, &a, &b, bc);
            let mut y = vec![f32::NAN; c * hw];
            binary(kind, act, &a, &b, bc, &mut y);
            assert_close(&y, &want)?;
        }

        #[test]
        fn scale_shift_matches_reference(
            act in any_activation(),
            c in 1usize..=37,
            hw in 1usize..=600,
            seed in any::<u64>(),
        ) {
            let mut r = rng(seed);
            let x = fill(&mut r, c * hw);
            let scale = fill(&mut r, c);
            let shift = fill(&mut r, c);
            let want: Vec<f32> = (0..c * hw)
                .map(|i| act.apply(x[i] * scale[i / hw] + shift[i / hw]))
                .collect();
            let mut y = vec![f32::NAN; c * hw];
            scale_shift(hw, &scale, &shift, act, &x, &mut y);
            assert_close(&y, &want)?;
        }
    }

    #[test]
    fn per_channel_uses_the_channel_value_across_block_boundaries() {
        // hw > BLOCK so each channel spans several blocks; the channel value must not drift.
        let hw = BLOCK * 2 + 3;
        let a = vec![1.0f32; 2 * hw];
        let mut y = vec![0.0; 2 * hw];
        let bc = Broadcast::PerChannel { hw };
        binary(
            BinaryKind::Sub,
            Activation::Relu,
            &a,
            &[0.25, 3.0],
            bc,
            &mut y,
        );
        assert!(y[..hw].iter().all(|&v| v == 0.75));
        assert!(y[hw..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn scalar_div_with_activation() {
        let a = [2.0f32, -4.0, 8.0];
        let mut y = [0.0; 3];
        let act = Activation::Clip {
            min: -1.0,
            max: 3.0,
        };
        binary(BinaryKind::Div, act, &a, &[2.0], Broadcast::Scalar, &mut y);
        assert_eq!(y, [1.0, -1.0, 3.0]);
    }
}
