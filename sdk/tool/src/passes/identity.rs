//! Removing nodes that compute nothing: identity reshapes, full channel slices, identity
//! activations, and nodes whose results nobody reads.

use prunus_format::{Activation, Op, TensorId};

use super::producer;
use crate::IrModel;

/// Whether node `i` copies its single input unchanged.
fn is_identity(model: &IrModel, i: usize) -> bool {
    let node = &model.graph.nodes[i];
    let ([x], [y]) = (node.inputs.as_slice(), node.outputs.as_slice()) else {
        return false;
    };
    match node.op {
        Op::Reshape => model.shape(*x) == model.shape(*y),
        Op::SliceChannels { start, end } => start == 0 && model.shape(*x).get(1) == Some(&end),
        Op::Activation(Activation::None) => true,
        Op::Activation(Activation::Clip { min, max }) => {
            min == f32::NEG_INFINITY && max == f32::INFINITY
        }
        _ => false,
    }
}

/// Replaces every read of tensor `from` (node inputs and graph outputs) by `to`.
fn replace_uses(model: &mut IrModel, from: TensorId, to: TensorId) {
    for node in &mut model.graph.nodes {
        node.inputs
            .iter_mut()
            .filter(|t| **t == from)
            .for_each(|t| *t = to);
    }
    model
        .graph
        .outputs
        .iter_mut()
        .filter(|t| **t == from)
        .for_each(|t| *t = to);
}

/// Removes identity node `i` (`x → y`); returns whether it could. Readers of `y` read `x`
/// instead. When `y` is a graph output its name must survive, so the producer of `x` writes
/// `y` directly, unless `x` is a graph input or output itself (then the node stays).
fn bypass(model: &mut IrModel, i: usize) -> bool {
    let (x, y) = (
        model.graph.nodes[i].inputs[0],
        model.graph.nodes[i].outputs[0],
    );
    if !model.is_output(y) {
        model.graph.nodes.remove(i);
        replace_uses(model, y, x);
        return true;
    }
    if model.is_output(x) || model.graph.inputs.contains(&x) {
        return false;
    }
    let Some(p) = producer(model, x) else {
        return false;
    };
    model.graph.nodes.remove(i);
    for t in &mut model.graph.nodes[p].outputs {
        if *t == x {
            *t = y;
        }
    }
    replace_uses(model, x, y);
    true
}

/// Removes `Reshape`s to the input's own shape, `SliceChannels` covering all channels and
/// identity activations.
pub fn remove_identities(model: &mut IrModel) {
    let mut i = 0;
    while i < model.graph.nodes.len() {
        if !(is_identity(model, i) && bypass(model, i)) {
            i += 1;
        }
    }
}

/// Removes nodes none of whose outputs is read by another node or is a graph output.
pub fn remove_dead_nodes(model: &mut IrModel) {
    let mut live = vec![false; model.graph.tensors.len()];
    for &t in &model.graph.outputs {
        live[t as usize] = true;
    }
    let mut keep = vec![false; model.graph.nodes.len()];
    for (i, node) in model.graph.nodes.iter().enumerate().rev() {
        if node.outputs.iter().any(|&t| live[t as usize]) {
            keep[i] = true;
            node.inputs.iter().for_each(|&t| live[t as usize] = true);
        }
    }
    let mut flags = keep.into_iter();
    model.graph.nodes.retain(|_| flags.next().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::testutil::{conv1x1, kinds};

    #[test]
    fn identity_reshape_before_output_renames_the_producer_output() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let c = conv1x1(&mut m, "c", x, 2, 2, 1);
        let r = m
            .add_node_with_shape("out", Op::Reshape, &[c], Some(vec![1, 2, 4, 4]))
            .unwrap();
        let f = m
            .add_node_with_shape("flat", Op::Reshape, &[c], Some(vec![1, 32]))
            .unwrap();
        m.set_outputs(&[r, f]);
        remove_identities(&mut m);
        assert_eq!(kinds(&m), ["Conv1x1", "Reshape"]);
        assert_eq!(m.graph.nodes[0].outputs, vec![r]);
        assert_eq!(m.graph.nodes[1].inputs, vec![r]);
    }

    #[test]
    fn identity_on_a_graph_input_to_an_output_stays() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let r = m
            .add_node_with_shape("out", Op::Reshape, &[x], Some(vec![1, 2, 4, 4]))
            .unwrap();
        m.set_outputs(&[r]);
        remove_identities(&mut m);
        assert_eq!(kinds(&m), ["Reshape"]);
    }

    #[test]
    fn internal_identities_and_dead_nodes_go() {
        let mut m = IrModel::new("t", "t");
        let x = m.add_input("x", &[1, 2, 4, 4]);
        let s = m
            .add_node("s", Op::SliceChannels { start: 0, end: 2 }, &[x])
            .unwrap();
        let c = conv1x1(&mut m, "c", s, 2, 2, 1);
        let _dead = conv1x1(&mut m, "dead", c, 2, 2, 1);
        m.set_outputs(&[c]);
        remove_identities(&mut m);
        remove_dead_nodes(&mut m);
        assert_eq!(kinds(&m), ["Conv1x1"]);
        assert_eq!(m.graph.nodes[0].inputs, vec![x]);
    }
}
