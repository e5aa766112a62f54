//! Channel dependency graph of an ONNX graph: which channels of which tensors must be
//! removed together.
//!
//! Every channel of every activation tensor is a *slot*; ops tie slots together with a
//! union-find: elementwise ops, BatchNorm and pooling tie a channel to itself, residual
//! `Add` and SE `Mul` tie their operands, `Concat`/`Split`/`Slice` tie through offsets,
//! depthwise convolutions tie input to output channel, grouped convolutions tie the same
//! relative channel of every group, `Flatten` ties a channel to its `H×W` block of columns,
//! and the channel shuffle (`Reshape [N,g,C/g,H,W] → Transpose [0,2,1,3,4] → Reshape`) ties
//! output channel `j` to input channel `(j mod g)·C/g + j div g` *and* the same relative
//! channel of every shuffle group (so the pruned tensor still shuffles the same way).
//! A resulting *class* is the unit of removal; it is prunable when some convolution or
//! Gemm produces it and no slot of it is a graph input/output or touched by an op the
//! tool cannot rewrite. Prunable classes that share a tensor form a *group*, the set of
//! coupled layers a ratio is applied to.

use std::collections::{HashMap, HashSet};

use super::PruneError;
use super::onnx_graph::{OnnxGraph, attr_i, attr_ints, op};
use super::shapes::{norm_axis, slice_bounds, slice_params};

/// A channel shuffle recognised in the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shuffle {
    /// The first `Reshape` (to `[N, g, C/g, H, W]`).
    pub reshape1: usize,
    /// The `Transpose`.
    pub transpose: usize,
    /// The second `Reshape` (back to `[N, C, H, W]`).
    pub reshape2: usize,
    /// Number of shuffle groups.
    pub groups: usize,
}

/// A set of channel slots removed together.
#[derive(Clone, Debug, Default)]
pub struct ChannelClass {
    /// `(tensor index in [DepGraph::tensors], channel)` of every slot.
    pub slots: Vec<(usize, usize)>,
    /// Produced by a Conv/Gemm/MatMul output channel.
    pub produced: bool,
    /// Touches a graph input/output or an op that cannot be rewritten.
    pub blocked: bool,
}

impl ChannelClass {
    /// Can be removed.
    pub fn prunable(&self) -> bool {
        self.produced && !self.blocked
    }
}

/// The channel dependency graph.
#[derive(Clone, Debug)]
pub struct DepGraph {
    /// Tensors that have channel slots, in graph order.
    pub tensors: Vec<String>,
    /// Tensor name → (index in `tensors`, first slot, channels).
    pub index: HashMap<String, (usize, usize, usize)>,
    /// Class of every slot.
    pub slot_class: Vec<usize>,
    /// The classes.
    pub classes: Vec<ChannelClass>,
    /// Prunable classes grouped by coupling (each sorted; groups in graph order).
    pub groups: Vec<Vec<usize>>,
    /// Channel shuffles, by the index of their first `Reshape`.
    pub shuffles: HashMap<usize, Shuffle>,
}

struct Uf {
    parent: Vec<usize>,
}

impl Uf {
    fn find(&mut self, mut a: usize) -> usize {
        while self.parent[a] != a {
            self.parent[a] = self.parent[self.parent[a]];
            a = self.parent[a];
        }
        a
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            self.parent[hi] = lo;
        }
    }
}

struct Builder<'g> {
    g: &'g OnnxGraph,
    index: HashMap<String, (usize, usize, usize)>,
    uf: Uf,
    blocked: Vec<bool>,
    produced: Vec<bool>,
}

impl Builder<'_> {
    fn slots(&self, t: &str) -> Option<(usize, usize)> {
        self.index.get(t).map(|&(_, b, c)| (b, c))
    }
    fn block(&mut self, t: &str) {
        if let Some((b, c)) = self.slots(t) {
            self.blocked[b..b + c].iter_mut().for_each(|x| *x = true);
        }
    }
    fn union_ch(&mut self, a: &str, ca: usize, b: &str, cb: usize) {
        if let (Some((ba, na)), Some((bb, nb))) = (self.slots(a), self.slots(b))
            && ca < na
            && cb < nb
        {
            self.uf.union(ba + ca, bb + cb);
        }
    }
    /// Ties channel c of `a` to channel c of `b`, or blocks both if counts differ.
    fn same(&mut self, a: &str, b: &str) {
        match (self.slots(a), self.slots(b)) {
            (Some((_, na)), Some((_, nb))) if na == nb => {
                (0..na).for_each(|c| self.union_ch(a, c, b, c))
            }
            _ => {
                self.block(a);
                self.block(b);
            }
        }
    }
    fn block_node(&mut self, i: usize) {
        let n = &self.g.nodes()[i];
        for t in n.input.iter().chain(&n.output) {
            self.block(t);
        }
    }
    fn is_const(&self, t: &str) -> bool {
        self.g.consts.contains_key(t)
    }
    fn chans(&self, t: &str) -> usize {
        self.slots(t).map(|s| s.1).unwrap_or(0)
    }
}

impl DepGraph {
    /// Builds the dependency graph of `g`.
    pub fn build(g: &OnnxGraph) -> Result<Self, PruneError> {
        let consumers = g.consumers();
        let nodes = g.nodes();
        let const_uses = g.const_uses();
        // Channel shuffles first: their 5-D intermediates get no slots.
        let mut shuffles = HashMap::new();
        let mut no_slot = HashSet::new();
        for (i, n) in nodes.iter().enumerate() {
            if let Some(s) = detect_shuffle(g, &consumers, i) {
                no_slot.insert(n.output[0].clone());
                no_slot.insert(nodes[s.transpose].output[0].clone());
                shuffles.insert(i, s);
            }
        }
        let mut tensors = Vec::new();
        let mut index = HashMap::new();
        let mut total = 0;
        let names = g
            .inputs
            .iter()
            .chain(nodes.iter().flat_map(|n| n.output.iter()));
        for name in names {
            let Some(shape) = g.shapes.get(name) else {
                continue;
            };
            if shape.len() < 2 || no_slot.contains(name) || index.contains_key(name) {
                continue;
            }
            index.insert(name.clone(), (tensors.len(), total, shape[1]));
            tensors.push(name.clone());
            total += shape[1];
        }
        let mut b = Builder {
            g,
            index,
            uf: Uf {
                parent: (0..total).collect(),
            },
            blocked: vec![false; total],
            produced: vec![false; total],
        };
        for t in g.inputs.iter().chain(&g.outputs) {
            b.block(t);
        }
        let in_shuffle: HashSet<usize> = shuffles
            .values()
            .flat_map(|s| [s.transpose, s.reshape2])
            .collect();
        for (i, n) in nodes.iter().enumerate() {
            if in_shuffle.contains(&i) {
                continue;
            }
            if let Some(s) = shuffles.get(&i) {
                let x = &n.input[0];
                let y = &nodes[s.reshape2].output[0];
                let c = b.chans(x);
                let per = c / s.groups;
                for j in 0..c {
                    b.union_ch(y, j, x, (j % s.groups) * per + j / s.groups);
                }
                for a in 0..per {
                    for k in 1..s.groups {
                        b.union_ch(x, a, x, k * per + a);
                    }
                }
                continue;
            }
            let x = n.input.first().cloned().unwrap_or_default();
            let y = n.output.first().cloned().unwrap_or_default();
            let shared = |t: &str| const_uses.get(t).copied().unwrap_or(0) > 1;
            match op(n) {
                "Relu" | "Clip" | "LeakyRelu" | "HardSigmoid" | "HardSwish" | "Sigmoid"
                | "Tanh" | "Identity" | "Elu" | "Softplus" | "Neg" | "Abs" | "MaxPool"
                | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" => {
                    if n.input
                        .iter()
                        .skip(1)
                        .all(|t| t.is_empty() || b.is_const(t))
                    {
                        b.same(&x, &y)
                    } else {
                        b.block_node(i)
                    }
                }
                "Dropout" => {
                    b.same(&x, &y);
                    n.output.iter().skip(1).for_each(|t| b.block(t));
                }
                "BatchNormalization" => {
                    if n.input.iter().skip(1).all(|t| b.is_const(t) && !shared(t))
                        && n.output.len() == 1
                    {
                        b.same(&x, &y)
                    } else {
                        b.block_node(i)
                    }
                }
                "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => {
                    let ys = g.shape(&y)?.to_vec();
                    for t in &n.input {
                        if b.is_const(t) {
                            if shared(t)
                                && channel_dim(&g.consts[t].dims, ys.len()) == Some(ys[1])
                                && ys[1] > 1
                            {
                                b.block_node(i);
                            }
                            continue;
                        }
                        let s = g.shape(t)?;
                        if s.len() == ys.len() && s[1] == ys[1] {
                            b.same(t, &y);
                        } else if channel_dim(s, ys.len()).unwrap_or(1) != 1 || s.len() > ys.len() {
                            b.block_node(i);
                        }
                    }
                }
                "Conv" => {
                    let w = n.input.get(1).cloned().unwrap_or_default();
                    let bias_ok = n
                        .input
                        .get(2)
                        .is_none_or(|t| t.is_empty() || (b.is_const(t) && !shared(t)));
                    if !b.is_const(&w) || shared(&w) || !bias_ok {
                        b.block_node(i);
                        continue;
                    }
                    let wd = g.consts[&w].dims.clone();
                    let grp = attr_i(n, "group").unwrap_or(1).max(1) as usize;
                    if let Some((base, c)) = b.slots(&y) {
                        b.produced[base..base + c]
                            .iter_mut()
                            .for_each(|p| *p = true);
                    }
                    let (co, cig) = (wd[0], wd[1]);
                    if grp == 1 {
                    } else if cig == 1 {
                        let m = co / grp;
                        for k in 0..grp {
                            for r in 0..m {
                                b.union_ch(&x, k, &y, k * m + r);
                            }
                        }
                    } else {
                        let cog = co / grp;
                        for k in 1..grp {
                            (0..cig).for_each(|r| b.union_ch(&x, r, &x, k * cig + r));
                            (0..cog).for_each(|r| b.union_ch(&y, r, &y, k * cog + r));
                        }
                    }
                }
                "Gemm" | "MatMul" => {
                    let w = n.input.get(1).cloned().unwrap_or_default();
                    let c_ok = n
                        .input
                        .get(2)
                        .is_none_or(|t| t.is_empty() || (b.is_const(t) && !shared(t)));
                    if !b.is_const(&w)
                        || shared(&w)
                        || !c_ok
                        || attr_i(n, "transA").unwrap_or(0) != 0
                    {
                        b.block_node(i);
                        continue;
                    }
                    if let Some((base, c)) = b.slots(&y) {
                        b.produced[base..base + c]
                            .iter_mut()
                            .for_each(|p| *p = true);
                    }
                }
                "Concat" => {
                    let rank = g.shape(&y)?.len();
                    if norm_axis(attr_i(n, "axis").unwrap_or(0), rank) == Some(1) {
                        let mut off = 0;
                        for t in &n.input {
                            if b.is_const(t) {
                                b.block_node(i);
                                break;
                            }
                            for c in 0..b.chans(t) {
                                b.union_ch(t, c, &y, off + c);
                            }
                            off += b.chans(t);
                        }
                    } else {
                        n.input.iter().for_each(|t| b.same(t, &y));
                    }
                }
                "Split" => {
                    let rank = g.shape(&x)?.len();
                    if norm_axis(attr_i(n, "axis").unwrap_or(0), rank) == Some(1) {
                        let mut off = 0;
                        for t in &n.output {
                            for c in 0..b.chans(t) {
                                b.union_ch(t, c, &x, off + c);
                            }
                            off += b.chans(t);
                        }
                    } else {
                        n.output.iter().for_each(|t| b.same(&x, t));
                    }
                }
                "Slice" => {
                    let s = g.shape(&x)?.to_vec();
                    match slice_params(n, &g.consts, &s) {
                        Ok(params) => match params.iter().find(|p| p.0 == 1) {
                            None => b.same(&x, &y),
                            Some(&(_, st, en, step)) => match slice_bounds(s[1], st, en, step) {
                                Some((first, 1, count)) => (0..count)
                                    .for_each(|c| b.union_ch(&y, c, &x, first as usize + c)),
                                _ => b.block_node(i),
                            },
                        },
                        Err(_) => b.block_node(i),
                    }
                }
                "Flatten" | "Reshape" => {
                    let s = g.shape(&x)?.to_vec();
                    let o = g.shape(&y)?.to_vec();
                    let flatten_axis = if op(n) == "Flatten" {
                        attr_i(n, "axis").unwrap_or(1)
                    } else {
                        1
                    };
                    if s == o {
                        b.same(&x, &y);
                    } else if flatten_axis == 1 && s.len() >= 2 && o.len() == 2 && o[0] == s[0] {
                        let hw: usize = s[2..].iter().product();
                        for c in 0..s[1] {
                            (0..hw).for_each(|p| b.union_ch(&y, c * hw + p, &x, c));
                        }
                    } else {
                        b.block_node(i);
                    }
                }
                _ => b.block_node(i),
            }
        }
        // Classes.
        let mut root_class = HashMap::new();
        let mut classes: Vec<ChannelClass> = Vec::new();
        let mut slot_class = vec![0; total];
        for (ti, t) in tensors.iter().enumerate() {
            let (_, base, c) = b.index[t];
            for ch in 0..c {
                let r = b.uf.find(base + ch);
                let id = *root_class.entry(r).or_insert_with(|| {
                    classes.push(ChannelClass::default());
                    classes.len() - 1
                });
                let class = &mut classes[id];
                class.slots.push((ti, ch));
                class.produced |= b.produced[base + ch];
                class.blocked |= b.blocked[base + ch];
                slot_class[base + ch] = id;
            }
        }
        // Groups: prunable classes that share a tensor.
        let mut guf = Uf {
            parent: (0..classes.len()).collect(),
        };
        for t in &tensors {
            let (_, base, c) = b.index[t];
            let mut first = None;
            for ch in 0..c {
                let id = slot_class[base + ch];
                if classes[id].prunable() {
                    match first {
                        None => first = Some(id),
                        Some(f) => guf.union(f, id),
                    }
                }
            }
        }
        let mut group_of: HashMap<usize, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (id, class) in classes.iter().enumerate() {
            if class.prunable() {
                let r = guf.find(id);
                let gi = *group_of.entry(r).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[gi].push(id);
            }
        }
        Ok(DepGraph {
            tensors,
            index: b.index,
            slot_class,
            classes,
            groups,
            shuffles,
        })
    }

    /// The class of channel `c` of tensor `t`.
    pub fn class_of(&self, t: &str, c: usize) -> Option<usize> {
        self.index
            .get(t)
            .filter(|&&(_, _, n)| c < n)
            .map(|&(_, b, _)| self.slot_class[b + c])
    }

    /// Channels of `t` that survive when `removed[class]` classes are removed (all of them
    /// for tensors without slots).
    pub fn kept(&self, t: &str, removed: &[bool]) -> Option<Vec<usize>> {
        self.index.get(t).map(|&(_, b, n)| {
            (0..n)
                .filter(|&c| !removed[self.slot_class[b + c]])
                .collect()
        })
    }

    /// Number of channels (slots) of class `id` in tensor `t`.
    pub fn multiplicity(&self, id: usize) -> HashMap<usize, usize> {
        let mut m = HashMap::new();
        for &(t, _) in &self.classes[id].slots {
            *m.entry(t).or_insert(0) += 1;
        }
        m
    }
}

/// The size of the channel axis (axis 1 of a rank-`rank` output) in a right-aligned
/// broadcast operand of shape `dims`, `None` when the operand does not reach that axis.
pub fn channel_dim(dims: &[usize], rank: usize) -> Option<usize> {
    (rank >= 2 && dims.len() + 1 >= rank).then(|| dims[dims.len() + 1 - rank])
}

fn detect_shuffle(
    g: &OnnxGraph,
    consumers: &HashMap<&str, Vec<usize>>,
    i: usize,
) -> Option<Shuffle> {
    let nodes = g.nodes();
    let n = &nodes[i];
    if op(n) != "Reshape" {
        return None;
    }
    let x = g.shapes.get(n.input.first()?)?;
    let y = g.shapes.get(n.output.first()?)?;
    if x.len() != 4
        || y.len() != 5
        || y[0] != x[0]
        || y[1] * y[2] != x[1]
        || y[3..] != x[2..]
        || y[1] < 2
    {
        return None;
    }
    let only = |t: &str| match consumers.get(t).map(Vec::as_slice) {
        Some([c]) => Some(*c),
        _ => None,
    };
    let t = only(&n.output[0])?;
    if op(&nodes[t]) != "Transpose" || attr_ints(&nodes[t], "perm")? != [0, 2, 1, 3, 4] {
        return None;
    }
    let r2 = only(nodes[t].output.first()?)?;
    if op(&nodes[r2]) != "Reshape" || g.shapes.get(nodes[r2].output.first()?)? != x {
        return None;
    }
    if g.outputs
        .iter()
        .any(|o| *o == n.output[0] || *o == nodes[t].output[0])
    {
        return None;
    }
    Some(Shuffle {
        reshape1: i,
        transpose: t,
        reshape2: r2,
        groups: y[1],
    })
}
