//! Graph passes on [`crate::IrModel`]: BatchNorm folding, activation fusion, clean-up.
//!
//! [`optimize`] runs them in a fixed order; each pass is a small function that rewrites the
//! graph in place and keeps the node order topological. Fusing a chain keeps the *last*
//! tensor of the chain (the fused node writes it), so intermediate names the user can still
//! see are the ones a reader of the source model expects at that point.

mod fold_scale_shift;
mod fuse_activation;
mod hard_swish;
mod identity;
mod pad;

pub use fold_scale_shift::fold_scale_shift;
pub use fuse_activation::fuse_activations;
pub use hard_swish::{fuse_hard_sigmoid_chains, fuse_hard_swish};
pub use identity::{remove_dead_nodes, remove_identities};
pub use pad::fold_pad_into_conv;

use prunus_format::{Activation, Op, TensorId, WeightId};

use crate::IrModel;

/// Runs every pass: identity removal, h-sigmoid/h-swish recognition, scale-shift folding
/// into the producing conv/gemm, activation fusion, pad folding, dead-node removal and
/// finally [`IrModel::compact`].
pub fn optimize(model: &mut IrModel) {
    remove_identities(model);
    fuse_hard_sigmoid_chains(model);
    fuse_hard_swish(model);
    fold_scale_shift(model);
    fuse_activations(model);
    fold_pad_into_conv(model);
    remove_dead_nodes(model);
    model.compact();
}

/// Index of the node writing tensor `t`.
pub(crate) fn producer(model: &IrModel, t: TensorId) -> Option<usize> {
    model
        .graph
        .nodes
        .iter()
        .position(|n| n.outputs.contains(&t))
}

/// The only node reading `t`, when exactly one node does and `t` is not a graph output
/// (so the tensor may disappear in a fusion).
pub(crate) fn sole_consumer(model: &IrModel, t: TensorId) -> Option<usize> {
    if model.is_output(t) {
        return None;
    }
    match model.consumers(t).as_slice() {
        [only] => Some(*only),
        _ => None,
    }
}

/// The single input of node `i` when its producer's output feeds only node `i`: returns the
/// producer's index.
pub(crate) fn fusable_producer(model: &IrModel, i: usize) -> Option<usize> {
    let node = model.graph.nodes.get(i)?;
    let [input] = node.inputs.as_slice() else {
        return None;
    };
    let p = producer(model, *input)?;
    (sole_consumer(model, *input) == Some(i) && model.graph.nodes[p].outputs.len() == 1)
        .then_some(p)
}

/// Node `producer` takes over the outputs of node `consumer`, which is removed: the fused
/// node writes the last tensor of the chain.
pub(crate) fn absorb(model: &mut IrModel, producer: usize, consumer: usize) {
    let outputs = model.graph.nodes[consumer].outputs.clone();
    model.graph.nodes[producer].outputs = outputs;
    model.graph.nodes.remove(consumer);
}

/// The fused activation slot of ops that have one.
pub(crate) fn activation_mut(op: &mut Op) -> Option<&mut Activation> {
    match op {
        Op::Conv(c) => Some(&mut c.activation),
        Op::Gemm { activation, .. }
        | Op::Binary { activation, .. }
        | Op::ScaleShift { activation, .. } => Some(activation),
        _ => None,
    }
}

/// The values of weight `w` for writing by node `node`: copied to a fresh weight first when
/// another node also reads `w`.
pub(crate) fn exclusive_weight(model: &mut IrModel, node: usize, w: WeightId) -> WeightId {
    let shared = model
        .graph
        .nodes
        .iter()
        .enumerate()
        .any(|(i, n)| i != node && n.op.weight_ids().contains(&w));
    if !shared {
        return w;
    }
    let info = model.graph.weights[w as usize].clone();
    let data = model.weights[w as usize].clone();
    model.add_weight(&info.name, &info.shape, data)
}

/// `Some((scale, shift))` when a scale-shift uses one value for every channel.
pub(crate) fn uniform_scale_shift(model: &IrModel, op: &Op) -> Option<(f32, f32)> {
    let Op::ScaleShift {
        scale,
        shift,
        activation: Activation::None,
    } = op
    else {
        return None;
    };
    let uniform = |w: &WeightId| {
        let v = model.weights.get(*w as usize)?;
        let first = *v.first()?;
        v.iter().all(|&x| x == first).then_some(first)
    };
    Some((uniform(scale)?, uniform(shift)?))
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Small IR graphs for the pass tests.
    use prunus_format::{Activation, Conv, Op, TensorId};

    use crate::IrModel;

    /// A 1x1 conv (`c` in, `o` out) with weights `1..` and bias `0.5`s.
    pub fn conv1x1(
        m: &mut IrModel,
        name: &str,
        x: TensorId,
        c: u32,
        o: u32,
        groups: u32,
    ) -> TensorId {
        let n = (o * c / groups) as usize;
        let w = m.add_weight(
            &format!("{name}.w"),
            &[o, c / groups, 1, 1],
            (1..=n).map(|v| v as f32).collect(),
        );
        let b = m.add_weight(&format!("{name}.b"), &[o], vec![0.5; o as usize]);
        let op = Op::Conv(Conv {
            weight: w,
            bias: Some(b),
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            dilation: [1, 1],
            groups,
            activation: Activation::None,
        });
        m.add_node(name, op, &[x]).unwrap()
    }

    /// A scale-shift with the given per-channel values.
    pub fn scale_shift(
        m: &mut IrModel,
        name: &str,
        x: TensorId,
        scale: Vec<f32>,
        shift: Vec<f32>,
    ) -> TensorId {
        let c = scale.len() as u32;
        let s = m.add_weight(&format!("{name}.s"), &[c], scale);
        let t = m.add_weight(&format!("{name}.t"), &[c], shift);
        m.add_node(
            name,
            Op::ScaleShift {
                scale: s,
                shift: t,
                activation: Activation::None,
            },
            &[x],
        )
        .unwrap()
    }

    /// Op kind names of the graph's nodes, in order.
    pub fn kinds(m: &IrModel) -> Vec<&'static str> {
        m.graph.nodes.iter().map(|n| n.op.kind_name()).collect()
    }
}
