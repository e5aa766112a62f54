//! Lowering of the dense 3x3 stride-1 convolutions that run Winograd F(4x4, 3x3).

use prunus_format::{Conv, Graph, Node, Op};

use super::{Step, WeightRef, conv_geom};
use crate::kernels::winograd::{WinogradFn, applies};
use crate::kernels::{ConvGeom, KernelTable};
use crate::plan::Plan;

/// The geometry and op of `node` if it is a convolution the table's Winograd kernel runs
/// (`None` without the kernel, for other shapes, and for a convolution with a fused
/// residual, which only the pointwise kernels read).
pub fn winograd_conv<'g>(
    graph: &'g Graph,
    table: &KernelTable,
    node: &'g Node,
    fused_residual: bool,
) -> Option<(WinogradFn, ConvGeom, &'g Conv)> {
    let (f, Op::Conv(c)) = (table.winograd?, &node.op) else {
        return None;
    };
    let geom = conv_geom(graph, node, c);
    (applies(&geom) && !fused_residual).then_some((f, geom, c))
}

/// The step of a convolution [`winograd_conv`] accepted; `weight` holds its transformed
/// weights, `parts` splits it over threads (1: one call).
pub fn lower_winograd(
    graph: &Graph,
    plan: &Plan,
    node: &Node,
    (f, geom, c): (WinogradFn, ConvGeom, &Conv),
    weight: WeightRef,
    bias: Option<WeightRef>,
    parts: usize,
) -> Step {
    Step::Winograd {
        f,
        geom,
        weight,
        bias,
        act: c.activation,
        parts,
        x: plan.range(graph, node.inputs[0]),
        y: plan.range(graph, node.outputs[0]),
    }
}
