//! Lowering of the convolutions and Gemms whose weight runs the sparse kernels.

use prunus_format::{Activation, Graph, Node, Op};

use super::{Residual, Step, WeightRef, conv_geom};
use crate::kernels::sparse::SparseSource;
use crate::kernels::{ConvGeom, KernelTable};
use crate::plan::Plan;

/// How a node reads a sparse weight with the sparse kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseUse {
    /// A convolution reading its input (or an im2col copy) through offsets.
    Conv(ConvGeom, SparseSource),
    /// A matrix-vector product; `groups` of a one-pixel pointwise convolution (1 for Gemm).
    Gemv {
        /// Groups.
        groups: usize,
    },
}

/// How the sparse kernels run `node`'s weight, or `None` when they do not cover the op
/// (depthwise convolutions, other ops): its weight is then decoded to dense.
pub fn sparse_use(graph: &Graph, node: &Node) -> Option<SparseUse> {
    match &node.op {
        Op::Conv(c) => {
            let g = conv_geom(graph, node, c);
            let depthwise = g.groups > 1 && g.groups == g.in_c && g.in_c == g.out_c;
            let source = SparseSource::for_conv(&g);
            if depthwise {
                None
            } else if source == SparseSource::Direct && g.out_h * g.out_w == 1 {
                Some(SparseUse::Gemv { groups: g.groups })
            } else {
                Some(SparseUse::Conv(g, source))
            }
        }
        Op::Gemm { .. } => Some(SparseUse::Gemv { groups: 1 }),
        _ => None,
    }
}

/// Lowers a Conv or Gemm node whose weight runs sparse (`index` in the session's sparse
/// indices, `values` its stored values) to its step; `parts` splits a convolution over
/// threads (1: one call); `residual` is the Add fused into the convolution, if any.
#[allow(clippy::too_many_arguments)] // the node, its sparse use and the session's choices
pub fn lower_sparse(
    graph: &Graph,
    plan: &Plan,
    table: &KernelTable,
    node: &Node,
    sparse: SparseUse,
    index: usize,
    values: WeightRef,
    bias: Option<WeightRef>,
    parts: usize,
    residual: Option<&Residual>,
) -> Step {
    let range = |id: u32| plan.range(graph, id);
    let x = range(node.inputs[0]);
    let y = range(residual.map_or(node.outputs[0], |r| r.out));
    let act = match (&node.op, residual) {
        (_, Some(r)) => r.activation,
        (Op::Conv(c), None) => c.activation,
        (Op::Gemm { activation, .. }, None) => *activation,
        _ => Activation::None,
    };
    match sparse {
        SparseUse::Conv(geom, source) => Step::SparseConv {
            f: table.sparse_conv,
            geom,
            source,
            index,
            values,
            bias,
            act,
            residual: residual.map(|r| range(r.skip)),
            parts,
            x,
            y,
        },
        SparseUse::Gemv { .. } => Step::SparseGemv {
            f: table.sparse_gemv,
            index,
            values,
            bias,
            act,
            x,
            y,
        },
    }
}
