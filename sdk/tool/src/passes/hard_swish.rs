//! Recognising h-sigmoid and h-swish written with elementary ops.
//!
//! Exporters spell `hardsigmoid(x) = relu6(x + 3) / 6` as `Add(3) → Clip(0, 6) → Div(6)`
//! (after lowering: scale-shift → clip → scale-shift) and `hardswish(x)` as
//! `x * HardSigmoid(x)` or `x * relu6(x + 3) / 6`. These passes turn each spelling into
//! one activation node, which activation fusion then moves into the producing conv.

use prunus_format::{Activation, BinaryKind, Op, TensorId};

use super::{producer, sole_consumer, uniform_scale_shift};
use crate::IrModel;

/// Tolerance when matching the constants 1/6 and 0.5.
const EPS: f32 = 1e-5;

/// `s2 * clip(s1 * x + b1, lo, hi) + b2` as a hard sigmoid `clamp(alpha * x + beta, 0, 1)`
/// when the clip range maps onto `[0, 1]`.
fn as_hard_sigmoid(
    (s1, b1): (f32, f32),
    (lo, hi): (f32, f32),
    (s2, b2): (f32, f32),
) -> Option<Activation> {
    let maps_to_unit = s2 > 0.0 && (s2 * lo + b2).abs() < EPS && (s2 * hi + b2 - 1.0).abs() < EPS;
    maps_to_unit.then_some(Activation::HardSigmoid {
        alpha: s1 * s2,
        beta: s2 * b1 + b2,
    })
}

fn is_hswish_gate(act: Activation) -> bool {
    matches!(act, Activation::HardSigmoid { alpha, beta }
        if (alpha - 1.0 / 6.0).abs() < EPS && (beta - 0.5).abs() < EPS)
}

/// The node writing `t` when `t` feeds only `reader`.
fn private_producer(model: &IrModel, t: TensorId, reader: usize) -> Option<usize> {
    (sole_consumer(model, t) == Some(reader))
        .then(|| producer(model, t))
        .flatten()
}

/// For a scale-shift node `d` reading a clip reading a scale-shift, each the only reader of
/// the previous: `(first scale-shift, clip, hard sigmoid)`.
fn hard_sigmoid_chain(model: &IrModel, d: usize) -> Option<(usize, usize, Activation)> {
    let nodes = &model.graph.nodes;
    let second = uniform_scale_shift(model, &nodes[d].op)?;
    let c = private_producer(model, *nodes[d].inputs.first()?, d)?;
    let Op::Activation(Activation::Clip { min, max }) = nodes[c].op else {
        return None;
    };
    let a = private_producer(model, *nodes[c].inputs.first()?, c)?;
    let first = uniform_scale_shift(model, &nodes[a].op)?;
    Some((a, c, as_hard_sigmoid(first, (min, max), second)?))
}

/// Replaces every `ScaleShift → Clip → ScaleShift` chain (uniform scale-shifts, private
/// intermediates) that computes a hard sigmoid by one `Activation::HardSigmoid` node writing
/// the chain's last tensor.
pub fn fuse_hard_sigmoid_chains(model: &mut IrModel) {
    let mut d = 0;
    while d < model.graph.nodes.len() {
        let Some((a, c, act)) = hard_sigmoid_chain(model, d) else {
            d += 1;
            continue;
        };
        let outputs = model.graph.nodes[d].outputs.clone();
        let first = &mut model.graph.nodes[a];
        first.op = Op::Activation(act);
        first.outputs = outputs;
        // d > c > a: remove the later ones first.
        model.graph.nodes.remove(d);
        model.graph.nodes.remove(c);
        d = a + 1;
    }
}

/// `Binary Mul` node `m` of `x` and a private gate computed from `x`: the gate's node.
fn gate_of(model: &IrModel, m: usize, gate_ok: impl Fn(&Op) -> bool) -> Option<(TensorId, usize)> {
    let node = &model.graph.nodes[m];
    let Op::Binary {
        kind: BinaryKind::Mul,
        activation: Activation::None,
    } = node.op
    else {
        return None;
    };
    let [p, q] = node.inputs.as_slice() else {
        return None;
    };
    [(*p, *q), (*q, *p)].into_iter().find_map(|(x, g)| {
        let h = private_producer(model, g, m)?;
        let gate = &model.graph.nodes[h];
        (gate.inputs.as_slice() == [x] && gate_ok(&gate.op)).then_some((x, h))
    })
}

/// Replaces `Mul(x, HardSigmoid{1/6, 1/2}(x))` (either operand order) and
/// `Mul(x, Clip(x * s1 + b1)) * s2` forming the same function by one
/// `Activation::HardSwish` node writing the `Mul`'s (or the final scale's) output.
pub fn fuse_hard_swish(model: &mut IrModel) {
    let mut m = 0;
    while m < model.graph.nodes.len() {
        let direct = gate_of(
            model,
            m,
            |op| matches!(op, Op::Activation(a) if is_hswish_gate(*a)),
        );
        if let Some((x, h)) = direct {
            let node = &mut model.graph.nodes[m];
            node.op = Op::Activation(Activation::HardSwish);
            node.inputs = vec![x];
            model.graph.nodes.remove(h);
            m = h;
            continue;
        }
        if let Some((x, a, c, d)) = scaled_relu6_product(model, m) {
            let outputs = model.graph.nodes[d].outputs.clone();
            let node = &mut model.graph.nodes[m];
            node.op = Op::Activation(Activation::HardSwish);
            node.inputs = vec![x];
            node.outputs = outputs;
            let mut gone = [a, c, d];
            gone.sort_unstable();
            for i in gone.into_iter().rev() {
                model.graph.nodes.remove(i);
            }
            m = gone[0];
            continue;
        }
        m += 1;
    }
}

/// `Mul(x, Clip(ScaleShift(x)))` at node `m` followed by a private uniform scale-shift `d`
/// that together compute `x * hardsigmoid_{1/6, 1/2}(x)`: `(x, scale-shift, clip, d)`.
fn scaled_relu6_product(model: &IrModel, m: usize) -> Option<(TensorId, usize, usize, usize)> {
    let node = &model.graph.nodes[m];
    let Op::Binary {
        kind: BinaryKind::Mul,
        activation: Activation::None,
    } = node.op
    else {
        return None;
    };
    let [p, q] = node.inputs.as_slice() else {
        return None;
    };
    let out = *node.outputs.first()?;
    let d = sole_consumer(model, out)?;
    let second = uniform_scale_shift(model, &model.graph.nodes[d].op)?;
    [(*p, *q), (*q, *p)].into_iter().find_map(|(x, g)| {
        let c = private_producer(model, g, m)?;
        let Op::Activation(Activation::Clip { min, max }) = model.graph.nodes[c].op else {
            return None;
        };
        let a = private_producer(model, *model.graph.nodes[c].inputs.first()?, c)?;
        let first = uniform_scale_shift(model, &model.graph.nodes[a].op)?;
        let gate = as_hard_sigmoid(first, (min, max), second)?;
        (model.graph.nodes[a].inputs.as_slice() == [x] && is_hswish_gate(gate))
            .then_some((x, a, c, d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::{kinds, scale_shift};

    fn act(m: &mut IrModel, name: &str, a: Activation, x: TensorId) -> TensorId {
        m.add_node(name, Op::Activation(a), &[x]).unwrap()
    }

    fn mul(m: &mut IrModel, name: &str, a: TensorId, b: TensorId) -> TensorId {
        m.add_node(
            name,
            Op::Binary {
                kind: BinaryKind::Mul,
                activation: Activation::None,
            },
            &[a, b],
        )
        .unwrap()
    }

    #[test]
    fn add3_clip_div6_is_a_hard_sigmoid() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 1, 1]);
        let a = scale_shift(&mut m, "add3", x, vec![1.0; 2], vec![3.0; 2]);
        let c = act(&mut m, "clip", Activation::Clip { min: 0.0, max: 6.0 }, a);
        let d = scale_shift(&mut m, "div6", c, vec![1.0 / 6.0; 2], vec![0.0; 2]);
        m.set_outputs(&[d]);
        fuse_hard_sigmoid_chains(&mut m);
        assert_eq!(kinds(&m), ["Activation"]);
        let Op::Activation(Activation::HardSigmoid { alpha, beta }) = m.graph.nodes[0].op else {
            panic!()
        };
        assert!((alpha - 1.0 / 6.0).abs() < 1e-7 && (beta - 0.5).abs() < 1e-7);
        assert_eq!(m.graph.nodes[0].outputs, vec![d]);
    }

    #[test]
    fn x_times_hard_sigmoid_is_hard_swish_in_either_order() {
        for swap in [false, true] {
            let mut m = IrModel::new("t", "t");
            let x = m.add_input("x", &[1, 2, 3, 3]);
            let h = act(
                &mut m,
                "hs",
                Activation::HardSigmoid {
                    alpha: 1.0 / 6.0,
                    beta: 0.5,
                },
                x,
            );
            let y = if swap {
                mul(&mut m, "y", h, x)
            } else {
                mul(&mut m, "y", x, h)
            };
            m.set_outputs(&[y]);
            fuse_hard_swish(&mut m);
            assert_eq!(kinds(&m), ["Activation"]);
            assert_eq!(m.graph.nodes[0].op, Op::Activation(Activation::HardSwish));
            assert_eq!(
                (
                    m.graph.nodes[0].inputs.clone(),
                    m.graph.nodes[0].outputs.clone()
                ),
                (vec![x], vec![y])
            );
        }
    }

    #[test]
    fn other_hard_sigmoids_or_shared_gates_stay() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 3, 3]);
        let h = act(
            &mut m,
            "hs",
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            x,
        );
        let y = mul(&mut m, "y", x, h);
        let h2 = act(
            &mut m,
            "hs2",
            Activation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            },
            x,
        );
        let y2 = mul(&mut m, "y2", x, h2);
        m.set_outputs(&[y, y2, h2]);
        fuse_hard_swish(&mut m);
        assert_eq!(kinds(&m), ["Activation", "Mul", "Activation", "Mul"]);
    }

    #[test]
    fn x_times_relu6_of_x_plus_3_over_6_is_hard_swish() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 3, 3]);
        let a = scale_shift(&mut m, "add3", x, vec![1.0; 2], vec![3.0; 2]);
        let c = act(&mut m, "clip", Activation::Clip { min: 0.0, max: 6.0 }, a);
        let p = mul(&mut m, "mul", x, c);
        let d = scale_shift(&mut m, "div6", p, vec![1.0 / 6.0; 2], vec![0.0; 2]);
        m.set_outputs(&[d]);
        fuse_hard_swish(&mut m);
        assert_eq!(kinds(&m), ["Activation"]);
        assert_eq!(m.graph.nodes[0].op, Op::Activation(Activation::HardSwish));
        assert_eq!(m.graph.nodes[0].outputs, vec![d]);
    }
}
