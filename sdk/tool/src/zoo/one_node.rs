//! One node of a zoo graph run on its own by the runtime crate ([`prunus`]), for
//! calibration: the node becomes a one-node model whose graph inputs are the node's input
//! tensors and whose weights are copies of the node's weights, packed, opened and run once
//! per calibration image.
//!
//! Sessions are pinned to the portable scalar kernels (whatever `PRUNUS_ISA` says), which
//! reduce in a fixed order: the same images and weights give the same values on every
//! platform.

use prunus::{AlignedBytes, Isa, Options};
use prunus_format::{Node, Op, TensorId, WriteOptions};

use crate::ir::{BuildError, IrModel, remap_weights};

/// Runs `op` in place of the op of `node` (a node of `model`) as a one-node model, once
/// per item of `inputs` (the values of the node's inputs, in order): the output of each.
pub(crate) fn run<'a>(
    model: &IrModel,
    node: &Node,
    op: &Op,
    inputs: impl IntoIterator<Item = Vec<&'a [f32]>>,
) -> Result<Vec<Vec<f32>>, BuildError> {
    let fail = |e: &dyn std::fmt::Display| failure(node, format!("calibration run: {e}"));
    let bytes = one_node(model, node, op)?
        .to_bytes(WriteOptions::default())
        .map_err(|e| fail(&e))?;
    let bytes = AlignedBytes::new(&bytes);
    let runtime = prunus::Model::from_bytes(bytes.as_bytes()).map_err(|e| fail(&e))?;
    let options = Options {
        isa: Some(Isa::Scalar),
        ..Options::default()
    };
    let mut session = runtime.session(options).map_err(|e| fail(&e))?;
    inputs
        .into_iter()
        .map(|values| {
            session.run(&values).map_err(|e| fail(&e))?;
            Ok(session.output(0).map_err(|e| fail(&e))?.to_vec())
        })
        .collect()
}

/// A model of `op` alone (in place of the op of `node`, a node of `model`): the node's
/// input tensors are its graph inputs, the weights `op` reads (copied from `model`, which
/// must hold their values) its only weights, the node's output its graph output.
fn one_node(model: &IrModel, node: &Node, op: &Op) -> Result<IrModel, BuildError> {
    let mut one = IrModel::new(&model.graph.metadata.name, "prunus zoo calibration");
    let inputs: Vec<TensorId> = node
        .inputs
        .iter()
        .enumerate()
        .map(|(i, &t)| one.add_input(&format!("calibration.input{i}"), model.shape(t)))
        .collect();
    let mut op = op.clone();
    let mut map = vec![0; model.graph.weights.len()];
    for id in op.weight_ids() {
        let (info, data) = (
            &model.graph.weights[id as usize],
            &model.weights[id as usize],
        );
        let numel: usize = info.shape.iter().map(|&d| d as usize).product();
        if data.len() != numel {
            let reason = format!("weight '{}' has no calibrated values", info.name);
            return Err(failure(node, reason));
        }
        map[id as usize] = one.add_weight(&info.name, &info.shape, data.clone());
    }
    remap_weights(&mut op, &map);
    let shape = model.shape(node.outputs[0]).to_vec();
    let out = one.add_node_with_shape(&node.name, op, &inputs, Some(shape))?;
    one.set_outputs(&[out]);
    Ok(one)
}

/// A [`BuildError`] of `node`.
pub(crate) fn failure(node: &Node, reason: String) -> BuildError {
    BuildError {
        node: node.name.clone(),
        op: node.op.kind_name(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use prunus_format::{Activation, Conv};

    use super::*;

    /// A one-node run reads the node's own weights (renumbered: not the model's first
    /// ones) and its inputs in order: `y = relu(2 a - b + 0.5)` for a 1x1 conv after a
    /// concat of `[a, b]`.
    #[test]
    fn runs_with_the_nodes_inputs_and_weights() {
        let mut model = IrModel::new("t", "test");
        let (a, b) = (
            model.add_input("a", &[1, 1, 1, 2]),
            model.add_input("b", &[1, 1, 1, 2]),
        );
        model.add_weight("unused", &[3], vec![9.0; 3]);
        let cat = model.add_node("cat", Op::Concat, &[a, b]).expect("concat");
        let weight = model.add_weight("w", &[1, 2, 1, 1], vec![2.0, -1.0]);
        let bias = model.add_weight("b", &[1], vec![0.5]);
        let conv = Conv {
            weight,
            bias: Some(bias),
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            dilation: [1, 1],
            groups: 1,
            activation: Activation::Relu,
        };
        model
            .add_node("conv", Op::Conv(conv), &[cat])
            .expect("conv");
        let (concat, conv) = (&model.graph.nodes[0], &model.graph.nodes[1]);
        let pairs = [[[1.0f32, 3.0], [-2.0, 1.0]], [[1.0, 3.0], [10.0, 0.0]]];
        let cats = run(
            &model,
            concat,
            &concat.op,
            pairs.iter().map(|p| vec![&p[0][..], &p[1][..]]),
        )
        .expect("concat run");
        assert_eq!(cats, [[1.0, 3.0, -2.0, 1.0], [1.0, 3.0, 10.0, 0.0]]);
        let ys = run(
            &model,
            conv,
            &conv.op,
            cats.iter().map(|c| vec![c.as_slice()]),
        )
        .expect("conv run");
        assert_eq!(ys, [[4.5, 5.5], [0.0, 6.5]]);
        let one = one_node(&model, conv, &conv.op).expect("one-node model");
        assert_eq!(one.weights, [vec![2.0, -1.0], vec![0.5]]);
        // An op without its bias copies only the weight.
        let Op::Conv(c) = &conv.op else {
            unreachable!()
        };
        let bare = Op::Conv(Conv {
            bias: None,
            ..c.clone()
        });
        assert_eq!(
            one_node(&model, conv, &bare).expect("bare").weights,
            [vec![2.0, -1.0]]
        );
    }

    #[test]
    fn missing_weight_values_are_an_error() {
        let mut model = IrModel::new("t", "test");
        let x = model.add_input("x", &[1, 2]);
        let weight = model.add_weight("w", &[0], Vec::new());
        model.graph.weights[weight as usize].shape = vec![3, 2];
        let op = Op::Gemm {
            weight,
            bias: None,
            activation: Activation::None,
        };
        model.add_node("fc", op, &[x]).expect("gemm");
        let node = &model.graph.nodes[0];
        let err = run(&model, node, &node.op, [vec![&[1.0f32, 2.0][..]]]).expect_err("no values");
        assert!(
            err.to_string().contains("'w' has no calibrated values"),
            "{err}"
        );
    }
}
