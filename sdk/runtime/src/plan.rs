//! Activation memory planning: one arena per session, sized once from tensor lifetimes.
//!
//! Some tensors share memory by construction (no copy ever happens for them):
//! - a `Reshape` output is its input;
//! - a `SliceChannels` output is a channel range of its input (CHW is contiguous per channel);
//! - a `Concat` input computed by an op is written straight into its channel range of the
//!   concat output, so the concat itself copies nothing for it.
//!
//! A residual `Add` fused into its convolution (`Residual`) is planned as that
//! convolution reading the skip tensor and writing the Add's output: the skip lives until
//! the convolution runs, never shares memory with the output (the kernels could read each
//! residual value before writing the same element, but the planner does not rely on it),
//! and the convolution's own output is never materialised.
//!
//! Each chain of such aliases ends in a root buffer whose lifetime is the union of its
//! members'. Roots are placed greedily, largest first, at the lowest offset that does not
//! overlap a root alive at the same time (the classic offset-calculation heuristic).

use prunus_format::{Graph, Op};

use crate::exec::Residual;

/// Offsets are multiples of this many `f32`s (64 bytes).
pub const ALIGN_ELEMS: usize = 16;

/// Where every tensor lives in the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Element offset of each tensor in the arena.
    pub offsets: Vec<usize>,
    /// Arena length in `f32` elements.
    pub arena_len: usize,
    /// Whether each tensor still holds its value after a run.
    pub retained: Vec<bool>,
    /// Whether each tensor lives inside another tensor's buffer (alias or in-place concat).
    pub aliased: Vec<bool>,
}

impl Plan {
    /// Element range of tensor `id` in the arena.
    pub fn range(&self, graph: &Graph, id: u32) -> std::ops::Range<usize> {
        let start = self.offsets[id as usize];
        start..start + graph.tensors[id as usize].numel()
    }
}

/// Channel-plane size (H*W) of an NCHW tensor, or 1 for 2-D tensors.
pub fn plane(shape: &[u32]) -> usize {
    shape.iter().skip(2).map(|&d| d as usize).product()
}

/// For each tensor, the tensor whose buffer it lives in and the element offset there.
fn homes(graph: &Graph) -> Vec<Option<(usize, usize)>> {
    let n = graph.tensors.len();
    let mut home: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut computed = vec![false; n];
    for node in &graph.nodes {
        let out = node.outputs[0] as usize;
        let input = node.inputs[0] as usize;
        match node.op {
            Op::Reshape => home[out] = Some((input, 0)),
            Op::SliceChannels { start, .. } => {
                let hw = plane(&graph.tensors[input].shape);
                home[out] = Some((input, start as usize * hw));
            }
            Op::Concat => {
                let mut offset = 0;
                for &part in &node.inputs {
                    let part = part as usize;
                    if computed[part] && home[part].is_none() && part != out {
                        home[part] = Some((out, offset));
                    }
                    offset += graph.tensors[part].numel();
                }
                computed[out] = true;
            }
            _ => node
                .outputs
                .iter()
                .for_each(|&o| computed[o as usize] = true),
        }
    }
    home
}

/// Plans the arena for `graph`; `retain[t]` keeps tensor `t` alive to the end of a run;
/// `fused` are the residual adds run by their convolutions.
pub fn plan(graph: &Graph, retain: &[bool], fused: &[Residual]) -> Plan {
    let n = graph.tensors.len();
    let home = homes(graph);
    let mut root = vec![0usize; n];
    let mut rel = vec![0usize; n];
    for t in 0..n {
        let (mut r, mut off) = (t, 0);
        while let Some((parent, o)) = home[r] {
            off += o;
            r = parent;
        }
        root[t] = r;
        rel[t] = off;
    }

    // Lifetimes in steps: graph inputs are defined at 0, node k runs at k + 1.
    let end = graph.nodes.len() + 1;
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    let mut touch = |t: usize, step: usize| {
        let r = root[t];
        first[r] = first[r].min(step);
        last[r] = last[r].max(if retain[t] { end } else { step });
    };
    for &t in &graph.inputs {
        touch(t as usize, 0);
    }
    let mut absorbed = vec![false; graph.nodes.len()];
    let mut by_conv = vec![None; graph.nodes.len()];
    for r in fused {
        absorbed[r.add] = true;
        by_conv[r.conv] = Some(r);
    }
    for (k, node) in graph.nodes.iter().enumerate() {
        match by_conv[k] {
            _ if absorbed[k] => {}
            Some(r) => {
                for &t in node.inputs.iter().chain([&r.skip, &r.out]) {
                    touch(t as usize, k + 1);
                }
            }
            None => {
                for &t in node.inputs.iter().chain(&node.outputs) {
                    touch(t as usize, k + 1);
                }
            }
        }
    }
    for &t in &graph.outputs {
        touch(t as usize, end);
    }

    let mut roots: Vec<usize> = (0..n)
        .filter(|&t| root[t] == t && first[t] != usize::MAX)
        .collect();
    let size = |t: usize| graph.tensors[t].numel().div_ceil(ALIGN_ELEMS) * ALIGN_ELEMS;
    roots.sort_by_key(|&t| (std::cmp::Reverse(size(t)), first[t], t));
    let mut placed: Vec<(usize, usize, usize)> = Vec::new(); // (offset, size, root)
    let mut base = vec![0usize; n];
    let mut arena_len = 0;
    for &t in &roots {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&(_, _, r)| first[r] <= last[t] && first[t] <= last[r])
            .map(|&(o, s, _)| (o, s))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (o, s) in busy {
            if o >= offset + size(t) {
                break;
            }
            offset = offset.max(o + s);
        }
        base[t] = offset;
        arena_len = arena_len.max(offset + size(t));
        placed.push((offset, size(t), t));
    }

    let retained = (0..n).map(|t| last[root[t]] == end).collect();
    Plan {
        offsets: (0..n).map(|t| base[root[t]] + rel[t]).collect(),
        arena_len,
        retained,
        aliased: home.iter().map(Option::is_some).collect(),
    }
}
