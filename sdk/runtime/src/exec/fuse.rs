//! Residual adds fused into the producing pointwise convolution at session creation.
//!
//! `Add(conv_out, skip)` (either operand order) where `conv_out` comes from a flat 1x1
//! convolution (`groups == 1`, stride 1, no padding, more than one pixel, no activation of
//! its own) becomes one step: the convolution's epilogue computes
//! `act(acc + bias + skip)`, `act` being the Add's activation, and writes the Add's output
//! directly. `conv_out` is then never materialised. The sums are done in the order of the
//! unfused pair (`(acc + bias) + skip`; `+` commutes bitwise), so fused and unfused results
//! are identical.

use prunus_format::{Activation, BinaryKind, Graph, Op};

use super::conv_geom;

/// One fused residual add.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Residual {
    /// The convolution node.
    pub conv: usize,
    /// The Add node (it produces no step).
    pub add: usize,
    /// The Add's other operand, read by the convolution's epilogue.
    pub skip: u32,
    /// The Add's output, written by the convolution.
    pub out: u32,
    /// The Add's activation, applied by the convolution's epilogue.
    pub activation: Activation,
}

/// The residual adds of `graph` that fuse; `retain[t]` marks tensors that must stay
/// readable (a retained convolution output is not fused away).
pub fn residuals(graph: &Graph, retain: &[bool]) -> Vec<Residual> {
    let n = graph.tensors.len();
    let mut producer = vec![None; n];
    let mut consumers = vec![0usize; n];
    for (k, node) in graph.nodes.iter().enumerate() {
        for &t in &node.outputs {
            producer[t as usize] = Some(k);
        }
        for &t in &node.inputs {
            consumers[t as usize] += 1;
        }
    }
    for &t in &graph.outputs {
        consumers[t as usize] += 1;
    }
    let mut found = Vec::new();
    for (add, node) in graph.nodes.iter().enumerate() {
        let Op::Binary {
            kind: BinaryKind::Add,
            activation,
        } = node.op
        else {
            continue;
        };
        let [a, b] = node.inputs[..] else { continue };
        if a == b || graph.tensors[a as usize].shape != graph.tensors[b as usize].shape {
            continue;
        }
        let fusable = |t: u32, skip: u32| {
            let conv = producer[t as usize]?;
            let cn = &graph.nodes[conv];
            let Op::Conv(c) = &cn.op else { return None };
            let g = conv_geom(graph, cn, c);
            let flat = g.kernel == [1, 1]
                && g.stride == [1, 1]
                && g.pads == [0; 4]
                && g.groups == 1
                && g.out_h * g.out_w > 1;
            // The skip must be computed before the convolution runs.
            let skip_ready = producer[skip as usize].is_none_or(|p| p < conv);
            let sole_use = consumers[t as usize] == 1 && !retain[t as usize];
            (flat && c.activation == Activation::None && skip_ready && sole_use).then_some(
                Residual {
                    conv,
                    add,
                    skip,
                    out: node.outputs[0],
                    activation,
                },
            )
        };
        if let Some(r) = fusable(a, b).or_else(|| fusable(b, a)) {
            found.push(r);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlignedBytes, Model, Options, Retain};
    use prunus_format::builder::ModelBuilder;
    use prunus_format::{Conv, Encoding, TensorId};

    const C: u32 = 24;
    const HW: [u32; 2] = [9, 11];

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i * 7919 + seed * 104_729) % 10_007;
                // About a third zero, so that a sparse encoding skips columns.
                if h.is_multiple_of(3) {
                    0.0
                } else {
                    (h % 2001) as f32 / 2000.0 - 0.5
                }
            })
            .collect()
    }

    fn pointwise(
        b: &mut ModelBuilder,
        name: &str,
        x: TensorId,
        stride: u32,
        act: Activation,
    ) -> TensorId {
        let weight = b.add_weight(
            &format!("{name}.w"),
            &[C, C, 1, 1],
            values((C * C) as usize, 1),
        );
        let bias = Some(b.add_weight(&format!("{name}.b"), &[C], values(C as usize, 2)));
        let conv = Conv {
            weight,
            bias,
            kernel: [1, 1],
            stride: [stride; 2],
            pads: [0; 4],
            dilation: [1, 1],
            groups: 1,
            activation: act,
        };
        b.add_node(name, Op::Conv(conv), &[x]).unwrap()
    }

    fn add(
        b: &mut ModelBuilder,
        name: &str,
        x: TensorId,
        y: TensorId,
        act: Activation,
    ) -> TensorId {
        let op = Op::Binary {
            kind: BinaryKind::Add,
            activation: act,
        };
        b.add_node(name, op, &[x, y]).unwrap()
    }

    /// `relu(pw(s) + s)` with `s = hardswish(input)`, the Add's operands in either order.
    fn residual_block(swap: bool) -> ModelBuilder {
        let mut b = ModelBuilder::new("residual", "prunus runtime tests");
        let x = b.add_input("input", &[1, C, HW[0], HW[1]]);
        let s = b
            .add_node("s", Op::Activation(Activation::HardSwish), &[x])
            .unwrap();
        let pw = pointwise(&mut b, "pw", s, 1, Activation::None);
        let (l, r) = if swap { (s, pw) } else { (pw, s) };
        let out = add(&mut b, "add", l, r, Activation::Relu);
        b.set_outputs(&[out]);
        b
    }

    /// The block computed naively (f64 sums).
    fn naive(input: &[f32]) -> Vec<f32> {
        let hw = (HW[0] * HW[1]) as usize;
        let c = C as usize;
        let (w, bias) = (values(c * c, 1), values(c, 2));
        let s: Vec<f32> = input
            .iter()
            .map(|&v| Activation::HardSwish.apply(v))
            .collect();
        let mut y = vec![0.0; c * hw];
        for o in 0..c {
            for p in 0..hw {
                let acc: f64 = (0..c)
                    .map(|i| w[o * c + i] as f64 * s[i * hw + p] as f64)
                    .sum();
                y[o * hw + p] = Activation::Relu.apply(acc as f32 + bias[o] + s[o * hw + p]);
            }
        }
        y
    }

    #[test]
    fn fused_residual_equals_unfused_and_naive() {
        let input = values((C * HW[0] * HW[1]) as usize, 3);
        let want = naive(&input);
        for (swap, sparse) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut b = residual_block(swap);
            if sparse {
                b.graph.weights[0].encoding = Encoding::SparseBlocks {
                    block: 4,
                    index_bytes: 0,
                    nnz: 0,
                };
            }
            let bytes = AlignedBytes::new(&b.to_bytes(Default::default()).unwrap());
            let model = Model::from_bytes(bytes.as_bytes()).unwrap();
            let mut outs = Vec::new();
            // Retaining the convolution's output keeps the Add a separate step.
            for retain in [Retain::Outputs, Retain::Named(vec!["pw".into()])] {
                let fused = retain == Retain::Outputs;
                let mut session = model
                    .session(Options {
                        retain,
                        ..Default::default()
                    })
                    .unwrap();
                assert_eq!(session.report().fused_residuals, usize::from(fused));
                assert_eq!(session.report().sparse_layers, usize::from(sparse));
                session.run(&[&input]).unwrap();
                let out = session.output(0).unwrap().to_vec();
                for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{i}: {g} vs naive {w}"
                    );
                }
                outs.push(out);
            }
            let same = outs[0]
                .iter()
                .zip(&outs[1])
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "swap {swap}, sparse {sparse}: fused differs from unfused"
            );
        }
    }

    #[test]
    fn only_sole_use_flat_unactivated_convolutions_fuse() {
        let mut b = ModelBuilder::new("cases", "prunus runtime tests");
        let x = b.add_input("input", &[1, C, HW[0], HW[1]]);
        let s = b
            .add_node("s", Op::Activation(Activation::Relu), &[x])
            .unwrap();
        // Fuses: the graph input as the skip.
        let a = pointwise(&mut b, "a", s, 1, Activation::None);
        let fused = add(&mut b, "fused", a, x, Activation::None);
        // An activation of its own must come before the add: no fusion.
        let c = pointwise(&mut b, "c", fused, 1, Activation::Relu);
        let act = add(&mut b, "act", c, fused, Activation::None);
        // The convolution's output is also read elsewhere: no fusion.
        let d = pointwise(&mut b, "d", act, 1, Activation::None);
        let shared = add(&mut b, "shared", d, act, Activation::None);
        let twice = add(&mut b, "twice", d, shared, Activation::None);
        // The skip is computed after the convolution: no fusion.
        let e = pointwise(&mut b, "e", twice, 1, Activation::None);
        let late = b
            .add_node("late", Op::Activation(Activation::Relu), &[twice])
            .unwrap();
        let after = add(&mut b, "after", e, late, Activation::None);
        // Strided: no fusion.
        let f = pointwise(&mut b, "f", after, 2, Activation::None);
        let small = b
            .add_node("small", Op::Activation(Activation::Relu), &[f])
            .unwrap();
        let strided = add(&mut b, "strided", f, small, Activation::None);
        b.set_outputs(&[strided]);
        let found = residuals(&b.graph, &vec![false; b.graph.tensors.len()]);
        let node = |name: &str| b.graph.nodes.iter().position(|n| n.name == name).unwrap();
        assert_eq!(
            found,
            vec![Residual {
                conv: node("a"),
                add: node("fused"),
                skip: x,
                out: fused,
                activation: Activation::None,
            }]
        );
    }
}
