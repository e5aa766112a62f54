//! Folding an explicit zero `Pad` into the convolution that reads it (TensorFlow exports
//! spell asymmetric "SAME" padding this way).

use prunus_format::Op;

use super::{producer, sole_consumer};
use crate::IrModel;

/// Folds `Pad { value: 0 }` into the following `Conv`'s padding when the conv is the pad's
/// only reader (convolution pads with zeros, so the result is identical).
pub fn fold_pad_into_conv(model: &mut IrModel) {
    let mut i = 0;
    while i < model.graph.nodes.len() {
        let node = &model.graph.nodes[i];
        let input = node.inputs.first().copied();
        let fold = match (&node.op, input.and_then(|t| producer(model, t))) {
            (Op::Conv(_), Some(p)) => match model.graph.nodes[p].op {
                Op::Pad { pads, value }
                    if value == 0.0
                        && sole_consumer(model, model.graph.nodes[p].outputs[0]) == Some(i) =>
                {
                    Some((p, pads))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((p, extra)) = fold else {
            i += 1;
            continue;
        };
        let source = model.graph.nodes[p].inputs[0];
        if let Op::Conv(c) = &mut model.graph.nodes[i].op {
            for (pad, add) in c.pads.iter_mut().zip(extra) {
                *pad = pad.saturating_add(add);
            }
        }
        model.graph.nodes[i].inputs[0] = source;
        model.graph.nodes.remove(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::{conv1x1, kinds};

    #[test]
    fn zero_pad_moves_into_the_conv() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let p = m
            .add_node(
                "pad",
                Op::Pad {
                    pads: [0, 0, 1, 1],
                    value: 0.0,
                },
                &[x],
            )
            .unwrap();
        let c = conv1x1(&mut m, "c", p, 2, 2, 1);
        let q = m
            .add_node(
                "pad7",
                Op::Pad {
                    pads: [1, 1, 1, 1],
                    value: 7.0,
                },
                &[x],
            )
            .unwrap();
        let d = conv1x1(&mut m, "d", q, 2, 2, 1);
        m.set_outputs(&[c, d]);
        fold_pad_into_conv(&mut m);
        assert_eq!(kinds(&m), ["Conv1x1", "Pad", "Conv1x1"]);
        let Op::Conv(conv) = &m.graph.nodes[0].op else {
            panic!()
        };
        assert_eq!(conv.pads, [0, 0, 1, 1]);
        assert_eq!(m.graph.nodes[0].inputs, vec![x]);
        assert_eq!(m.shape(c), &[1, 2, 5, 5]);
    }
}
