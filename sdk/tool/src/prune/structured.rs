//! Structured (channel) pruning: removes a set of dependency classes from the ONNX graph,
//! shrinking every coupled tensor — conv weights on both axes (grouped convs keep the same
//! relative channels in every group, depthwise convs lose groups), biases, BatchNorm
//! parameters, Gemm columns after `Flatten` (a channel's `H×W` block), per-channel
//! constants of elementwise ops, `Split` sizes, `Slice` bounds and channel-shuffle shapes.

use std::collections::HashMap;

use super::PruneError;
use super::depgraph::{DepGraph, channel_dim};
use super::onnx_graph::{Const, OnnxGraph, attr_i, node_name, op, set_attr_i, set_attr_ints};
use super::shapes::{norm_axis, slice_bounds, slice_params};

/// Gathers `index` along `axis` of a row-major tensor.
pub fn take(data: &[f32], dims: &[usize], axis: usize, index: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * index.len() * inner);
    for o in 0..outer {
        for &i in index {
            let start = (o * dims[axis] + i) * inner;
            out.extend_from_slice(&data[start..start + inner]);
        }
    }
    let mut nd = dims.to_vec();
    nd[axis] = index.len();
    (nd, out)
}

fn take_const(c: &Const, axis: usize, index: &[usize]) -> Const {
    match c.as_f32() {
        Some(v) => {
            let (d, v) = take(v, &c.dims, axis, index);
            Const::f32(d, v)
        }
        None => {
            let v: Vec<f32> = c.as_i64().iter().map(|&x| x as f32).collect();
            let (d, v) = take(&v, &c.dims, axis, index);
            Const::i64(d, v.into_iter().map(|x| x as i64).collect())
        }
    }
}

/// What structured pruning removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StructuredResult {
    /// Kept channel indices of every tensor that lost channels (by tensor name).
    pub kept: HashMap<String, Vec<usize>>,
    /// Kept output and input channel indices of every rewritten weight, by the weight's
    /// original name: `(out, in)`, `in` relative to one group.
    pub weights: HashMap<String, (Vec<usize>, Vec<usize>)>,
}

/// Removes the classes marked in `removed` (indexed by class id) from a copy of `g`.
pub fn apply(
    g: &OnnxGraph,
    dep: &DepGraph,
    removed: &[bool],
) -> Result<(OnnxGraph, StructuredResult), PruneError> {
    if removed.len() != dep.classes.len() {
        return Err(PruneError::Model(
            "selection length differs from the class count".into(),
        ));
    }
    if let Some(id) = (0..removed.len()).find(|&i| removed[i] && !dep.classes[i].prunable()) {
        return Err(PruneError::Model(format!(
            "channel class {id} is not prunable"
        )));
    }
    let mut result = StructuredResult::default();
    let mut kept: HashMap<&str, Vec<usize>> = HashMap::new();
    for t in &dep.tensors {
        let k = dep.kept(t, removed).unwrap_or_default();
        if k.is_empty() {
            return Err(PruneError::Model(format!(
                "pruning would remove every channel of '{t}'"
            )));
        }
        if k.len() != dep.index[t].2 {
            result.kept.insert(t.clone(), k.clone());
        }
        kept.insert(t.as_str(), k);
    }
    let all = |t: &str| -> Vec<usize> {
        (0..g.shapes.get(t).and_then(|s| s.get(1)).copied().unwrap_or(0)).collect()
    };
    let kept_of = |t: &str| kept.get(t).cloned().unwrap_or_else(|| all(t));
    let mut out = g.clone();
    let uses = g.const_uses();
    for (i, n) in g.nodes().iter().enumerate() {
        let x = n.input.first().cloned().unwrap_or_default();
        let y = n.output.first().cloned().unwrap_or_default();
        let err = |reason: String| PruneError::Node {
            node: node_name(n),
            reason,
        };
        match op(n) {
            "Conv" => {
                let w = &g.consts[&n.input[1]];
                let (ko, ki) = (kept_of(&y), kept_of(&x));
                let grp = attr_i(n, "group").unwrap_or(1).max(1) as usize;
                let (co, cig) = (w.dims[0], w.dims[1]);
                let (rel_in, new_group) = if grp == 1 {
                    (ki.clone(), 1)
                } else if cig == 1 {
                    (vec![0], ki.len())
                } else {
                    let rel: Vec<usize> = ki.iter().copied().filter(|&c| c < cig).collect();
                    (rel, grp)
                };
                if ko.len() == co && rel_in.len() == cig && new_group == grp {
                    continue;
                }
                let w1 = take_const(w, 0, &ko);
                let w2 = take_const(&w1, 1, &rel_in);
                out.set_node_const(i, 1, w2, &uses);
                if let Some(bn) = n.input.get(2).filter(|b| !b.is_empty()) {
                    out.set_node_const(i, 2, take_const(&g.consts[bn], 0, &ko), &uses);
                }
                if new_group != grp {
                    set_attr_i(&mut out.nodes_mut()[i], "group", new_group as i64);
                }
                result.weights.insert(n.input[1].clone(), (ko, rel_in));
            }
            "BatchNormalization" => {
                let k = kept_of(&x);
                if k.len() == all(&x).len() {
                    continue;
                }
                for s in 1..5 {
                    out.set_node_const(i, s, take_const(&g.consts[&n.input[s]], 0, &k), &uses);
                }
            }
            "Gemm" | "MatMul" => {
                let (ko, ki) = (kept_of(&y), kept_of(&x));
                let w = &g.consts[&n.input[1]];
                let trans_b = op(n) == "Gemm" && attr_i(n, "transB").unwrap_or(0) != 0;
                let (ao, ai) = if trans_b { (0, 1) } else { (1, 0) };
                if ko.len() == w.dims[ao] && ki.len() == w.dims[ai] {
                    continue;
                }
                let nw = take_const(&take_const(w, ao, &ko), ai, &ki);
                out.set_node_const(i, 1, nw, &uses);
                if let Some(cn) = n.input.get(2).filter(|c| !c.is_empty()) {
                    let c = &g.consts[cn];
                    if let Some(ax) = c
                        .dims
                        .len()
                        .checked_sub(1)
                        .filter(|&a| c.dims[a] == w.dims[ao] && c.dims[a] > 1)
                    {
                        out.set_node_const(i, 2, take_const(c, ax, &ko), &uses);
                    }
                }
                result.weights.insert(n.input[1].clone(), (ko, ki));
            }
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => {
                let ys = g.shape(&y)?;
                let k = kept_of(&y);
                if k.len() == ys[1] || ys[1] <= 1 {
                    continue;
                }
                for (s, t) in n.input.iter().enumerate() {
                    if let Some(c) = g.consts.get(t)
                        && channel_dim(&c.dims, ys.len()) == Some(ys[1])
                    {
                        let ax = c.dims.len() + 1 - ys.len();
                        out.set_node_const(i, s, take_const(c, ax, &k), &uses);
                    }
                }
            }
            "Split" => {
                let rank = g.shape(&x)?.len();
                if norm_axis(attr_i(n, "axis").unwrap_or(0), rank) != Some(1) {
                    continue;
                }
                let sizes: Vec<i64> = n.output.iter().map(|t| kept_of(t).len() as i64).collect();
                let node = &mut out.nodes_mut()[i];
                node.attribute.retain(|a| {
                    a.name.as_deref() != Some("num_outputs") && a.name.as_deref() != Some("split")
                });
                if n.input.len() > 1
                    || g.model.opset_import.iter().any(|o| {
                        o.domain.as_deref().unwrap_or("").is_empty() && o.version.unwrap_or(0) >= 13
                    })
                {
                    let c = Const::i64(vec![sizes.len()], sizes);
                    out.set_node_const(i, 1, c, &uses);
                } else {
                    set_attr_ints(&mut out.nodes_mut()[i], "split", sizes);
                }
            }
            "Slice" => {
                let s = g.shape(&x)?.to_vec();
                let params = slice_params(n, &g.consts, &s)?;
                let Some(&(_, st, en, step)) = params.iter().find(|p| p.0 == 1) else {
                    continue;
                };
                let (first, _, _) =
                    slice_bounds(s[1], st, en, step).ok_or_else(|| err("step 0".into()))?;
                let ki = kept_of(&x);
                let new_start = ki.iter().filter(|&&c| (c as i64) < first).count() as i64;
                let new_end = new_start + kept_of(&y).len() as i64;
                if n.input.len() < 3 {
                    return Err(err(
                        "attribute-form Slice (opset < 10) on channels is not supported".into(),
                    ));
                }
                let pos = params.iter().position(|p| p.0 == 1).unwrap_or(0);
                let mut starts: Vec<i64> = params.iter().map(|p| p.1).collect();
                let mut ends: Vec<i64> = params.iter().map(|p| p.2).collect();
                starts[pos] = new_start;
                ends[pos] = new_end;
                out.set_node_const(i, 1, Const::i64(vec![starts.len()], starts), &uses);
                out.set_node_const(i, 2, Const::i64(vec![ends.len()], ends), &uses);
            }
            "Reshape" => {
                let c_new = |t: &str| kept_of(t).len();
                let target: Option<Vec<i64>> = if let Some(s) = dep.shuffles.get(&i) {
                    let xs = g.shape(&x)?;
                    let c = c_new(&x);
                    if c % s.groups != 0 {
                        return Err(err(format!(
                            "{c} channels left is not a multiple of {} shuffle groups",
                            s.groups
                        )));
                    }
                    Some(vec![
                        xs[0] as i64,
                        s.groups as i64,
                        (c / s.groups) as i64,
                        xs[2] as i64,
                        xs[3] as i64,
                    ])
                } else if let Some(s) = dep.shuffles.values().find(|s| s.reshape2 == i) {
                    let x0 = &g.nodes()[s.reshape1].input[0];
                    let xs = g.shape(x0)?;
                    Some(vec![
                        xs[0] as i64,
                        c_new(x0) as i64,
                        xs[2] as i64,
                        xs[3] as i64,
                    ])
                } else {
                    let ys = g.shape(&y)?;
                    let c = c_new(&y);
                    (ys.len() >= 2 && c != ys[1]).then(|| {
                        let mut v: Vec<i64> = ys.iter().map(|&d| d as i64).collect();
                        v[1] = c as i64;
                        v
                    })
                };
                if let Some(t) = target {
                    out.set_node_const(i, 1, Const::i64(vec![t.len()], t), &uses);
                }
            }
            _ => {}
        }
    }
    out.propagate_shapes()?;
    Ok((out, result))
}
