//! Folding a per-channel scale-shift (BatchNorm, constant Mul/Add) into the conv, gemm or
//! scale-shift that produces its input.

use prunus_format::{Activation, Op, WeightId};

use super::{absorb, exclusive_weight, fusable_producer};
use crate::IrModel;

/// Folds every `ScaleShift` whose input comes from a `Conv` or `Gemm` without fused
/// activation (and feeds nothing else, and is not a graph output) into that node's weights
/// and bias: `W'[o] = W[o] * s[o]`, `b'[o] = b[o] * s[o] + t[o]`. This is per output
/// channel, so it holds for depthwise and grouped convs too. Consecutive scale-shifts are
/// merged the same way. A scale-shift *before* a conv is left alone: with zero padding the
/// fold would be inexact at the borders.
pub fn fold_scale_shift(model: &mut IrModel) {
    let mut i = 0;
    while i < model.graph.nodes.len() {
        match fold_one(model, i) {
            Some(p) => absorb(model, p, i),
            None => i += 1,
        }
    }
}

/// Folds node `i` (if it is a foldable scale-shift) into its producer's weights; returns the
/// producer's index.
fn fold_one(model: &mut IrModel, i: usize) -> Option<usize> {
    let Op::ScaleShift {
        scale,
        shift,
        activation,
    } = model.graph.nodes[i].op.clone()
    else {
        return None;
    };
    let p = fusable_producer(model, i)?;
    let s = model.weights.get(scale as usize)?.clone();
    let t = model.weights.get(shift as usize)?.clone();
    let shift_name = model.graph.weights[shift as usize].name.clone();
    let (weight, bias) = match &model.graph.nodes[p].op {
        Op::Conv(c) if c.activation == Activation::None => (c.weight, c.bias),
        Op::Gemm {
            weight,
            bias,
            activation: Activation::None,
        } => (*weight, *bias),
        Op::ScaleShift {
            scale,
            shift,
            activation: Activation::None,
        } => (*scale, Some(*shift)),
        _ => return None,
    };
    let rows = *model.graph.weights[weight as usize].shape.first()? as usize;
    if rows != s.len() || rows != t.len() {
        return None;
    }
    let weight = exclusive_weight(model, p, weight);
    let per_row = model.weights[weight as usize].len() / rows;
    for (row, &k) in model.weights[weight as usize]
        .chunks_mut(per_row.max(1))
        .zip(&s)
    {
        row.iter_mut().for_each(|v| *v *= k);
    }
    let bias = match bias {
        Some(b) => {
            let b = exclusive_weight(model, p, b);
            for ((v, &k), &add) in model.weights[b as usize].iter_mut().zip(&s).zip(&t) {
                *v = *v * k + add;
            }
            b
        }
        None => model.add_weight(&shift_name, &[rows as u32], t),
    };
    set_weights(&mut model.graph.nodes[p].op, weight, bias, activation);
    Some(p)
}

/// Points a conv/gemm/scale-shift at its new weight and bias and sets its activation.
fn set_weights(op: &mut Op, w: WeightId, b: WeightId, act: Activation) {
    match op {
        Op::Conv(c) => {
            c.weight = w;
            c.bias = Some(b);
            c.activation = act;
        }
        Op::Gemm {
            weight,
            bias,
            activation,
        } => {
            *weight = w;
            *bias = Some(b);
            *activation = act;
        }
        Op::ScaleShift {
            scale,
            shift,
            activation,
        } => {
            *scale = w;
            *shift = b;
            *activation = act;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use prunus_format::Op;

    use super::*;
    use crate::passes::testutil::{conv1x1, kinds, scale_shift};

    #[test]
    fn folds_into_depthwise_conv_per_output_channel() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let c = conv1x1(&mut m, "dw", x, 2, 2, 2);
        let y = scale_shift(&mut m, "bn", c, vec![2.0, 3.0], vec![1.0, -1.0]);
        m.set_outputs(&[y]);
        fold_scale_shift(&mut m);
        assert_eq!(kinds(&m), ["Conv1x1"]);
        let Op::Conv(conv) = &m.graph.nodes[0].op else {
            panic!()
        };
        assert_eq!(m.weights[conv.weight as usize], vec![2.0, 6.0]);
        assert_eq!(
            m.weights[conv.bias.unwrap() as usize],
            vec![0.5 * 2.0 + 1.0, 0.5 * 3.0 - 1.0]
        );
        assert_eq!(
            m.graph.nodes[0].outputs,
            vec![y],
            "the fused conv writes the BN output"
        );
    }

    #[test]
    fn keeps_scale_shift_when_conv_output_is_shared_or_an_output() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let c = conv1x1(&mut m, "c", x, 2, 2, 1);
        let y = scale_shift(&mut m, "bn", c, vec![2.0, 3.0], vec![1.0, -1.0]);
        m.set_outputs(&[c, y]);
        fold_scale_shift(&mut m);
        assert_eq!(kinds(&m), ["Conv1x1", "ScaleShift"]);
    }

    #[test]
    fn does_not_fold_backwards_into_a_following_conv() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let s = scale_shift(&mut m, "pre", x, vec![2.0, 3.0], vec![1.0, -1.0]);
        let c = conv1x1(&mut m, "c", s, 2, 2, 1);
        m.set_outputs(&[c]);
        fold_scale_shift(&mut m);
        assert_eq!(kinds(&m), ["ScaleShift", "Conv1x1"]);
    }

    #[test]
    fn merges_consecutive_scale_shifts_and_copies_shared_weights() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let a = scale_shift(&mut m, "a", x, vec![2.0, 3.0], vec![1.0, -1.0]);
        let b = scale_shift(&mut m, "b", a, vec![10.0, 10.0], vec![0.0, 1.0]);
        // A second reader of a's weights must keep seeing the original values.
        let Op::ScaleShift { scale, shift, .. } = m.graph.nodes[0].op.clone() else {
            panic!()
        };
        let other = m
            .add_node(
                "other",
                Op::ScaleShift {
                    scale,
                    shift,
                    activation: Activation::None,
                },
                &[x],
            )
            .unwrap();
        m.set_outputs(&[b, other]);
        fold_scale_shift(&mut m);
        assert_eq!(kinds(&m), ["ScaleShift", "ScaleShift"]);
        let Op::ScaleShift { scale, shift, .. } = m.graph.nodes[0].op.clone() else {
            panic!()
        };
        assert_eq!(m.weights[scale as usize], vec![20.0, 30.0]);
        assert_eq!(m.weights[shift as usize], vec![10.0, -9.0]);
        let Op::ScaleShift { scale, .. } = m.graph.nodes[1].op.clone() else {
            panic!()
        };
        assert_eq!(m.weights[scale as usize], vec![2.0, 3.0]);
    }
}
