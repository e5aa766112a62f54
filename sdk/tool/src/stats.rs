//! Parameter and multiply-accumulate counts of a graph, per node and in total.

use prunus_format::{Graph, Node, Op};

/// Counts for one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Weight elements the node reads (weights + biases + scale/shift).
    pub params: u64,
    /// Multiply-accumulates of one inference (convolutions and Gemm).
    pub macs: u64,
}

/// Counts for one node of `graph`.
pub fn node_stats(graph: &Graph, node: &Node) -> NodeStats {
    let params = node
        .op
        .weight_ids()
        .iter()
        .map(|&w| graph.weights[w as usize].numel() as u64)
        .sum();
    let out_numel = graph.tensors[node.outputs[0] as usize].numel() as u64;
    let macs = match &node.op {
        Op::Conv(c) => {
            let w = &graph.weights[c.weight as usize].shape;
            let per_output: u64 = w[1..].iter().map(|&d| d as u64).product();
            out_numel * per_output
        }
        Op::Gemm { weight, .. } => graph.weights[*weight as usize].numel() as u64,
        _ => 0,
    };
    NodeStats { params, macs }
}

/// Totals over all nodes of `graph`.
pub fn graph_stats(graph: &Graph) -> NodeStats {
    graph.nodes.iter().fold(NodeStats::default(), |acc, node| {
        let s = node_stats(graph, node);
        NodeStats {
            params: acc.params + s.params,
            macs: acc.macs + s.macs,
        }
    })
}
