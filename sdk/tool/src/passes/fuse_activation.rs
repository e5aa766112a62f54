//! Fusing standalone activations into the op that produces their input.

use prunus_format::{Activation, Op};

use super::{absorb, activation_mut, fusable_producer};
use crate::IrModel;

/// Fuses every standalone `Activation` node into its producer when the producer is a
/// `Conv`, `Gemm`, `Binary` or `ScaleShift` with no activation yet and the activation is
/// its only reader (and the intermediate is not a graph output). The fused node writes the
/// activation's output tensor.
pub fn fuse_activations(model: &mut IrModel) {
    let mut i = 0;
    while i < model.graph.nodes.len() {
        let Op::Activation(act) = model.graph.nodes[i].op else {
            i += 1;
            continue;
        };
        let target = fusable_producer(model, i).filter(|&p| {
            activation_mut(&mut model.graph.nodes[p].op).is_some_and(|a| *a == Activation::None)
        });
        match target {
            Some(p) => {
                if let Some(slot) = activation_mut(&mut model.graph.nodes[p].op) {
                    *slot = act;
                }
                absorb(model, p, i);
            }
            None => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use prunus_format::{BinaryKind, Op};

    use super::*;
    use crate::passes::testutil::{conv1x1, kinds};

    #[test]
    fn relu_fuses_into_conv_and_takes_its_name() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let c = conv1x1(&mut m, "c", x, 2, 4, 1);
        let r = m
            .add_node("relu_out", Op::Activation(Activation::Relu), &[c])
            .unwrap();
        m.set_outputs(&[r]);
        fuse_activations(&mut m);
        assert_eq!(kinds(&m), ["Conv1x1"]);
        let Op::Conv(conv) = &m.graph.nodes[0].op else {
            panic!()
        };
        assert_eq!(conv.activation, Activation::Relu);
        assert_eq!(m.tensor(m.graph.nodes[0].outputs[0]).name, "relu_out");
    }

    #[test]
    fn second_activation_or_shared_input_is_not_fused() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let a = m
            .add_node(
                "add",
                Op::Binary {
                    kind: BinaryKind::Add,
                    activation: Activation::None,
                },
                &[x, x],
            )
            .unwrap();
        let r1 = m
            .add_node("r1", Op::Activation(Activation::Relu), &[a])
            .unwrap();
        let r2 = m
            .add_node("r2", Op::Activation(Activation::Sigmoid), &[r1])
            .unwrap();
        let r3 = m
            .add_node("r3", Op::Activation(Activation::Sigmoid), &[x])
            .unwrap();
        m.set_outputs(&[r2, r3]);
        fuse_activations(&mut m);
        assert_eq!(kinds(&m), ["Add", "Activation", "Activation"]);
        assert!(matches!(
            m.graph.nodes[0].op,
            Op::Binary {
                activation: Activation::Relu,
                ..
            }
        ));
    }
}
