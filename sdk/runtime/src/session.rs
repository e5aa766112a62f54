//! A session: one planned activation arena and the resolved steps of a model. Running it
//! allocates nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ndarray::{ArrayViewD, IxDyn};
use prunus_format::layout::{layouts_by_use, matrix_dims, pack_panel8};
use prunus_format::sparse::{SparseView, sparse_matrix_dims};
use prunus_format::{Encoding, Layout, Node, Op, WeightId};

use crate::affinity::{self, CpuMask};
use crate::error::Error;
use crate::exec::{
    Residual, SparseUse, Step, WeightRef, conv_geom, kxk_im2col, lower, lower_sparse,
    lower_winograd, residuals, sparse_use, winograd_conv,
};
use crate::kernels::sparse::SparseIndex;
use crate::kernels::split::{sparse_parts, winograd_parts};
use crate::kernels::winograd;
use crate::kernels::{Isa, KernelTable};
use crate::model::Model;
use crate::options::{Options, Retain};
use crate::plan::{Plan, plan};
use crate::thread_pool::ThreadPool;

/// What session creation did beyond planning: reported so that a repack is never silent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// Bytes of weights widened or repacked into session memory (f16 files, sparse weights
    /// decoded to dense for ops the sparse kernels do not cover, sparse values not aligned
    /// for in-place reads, Winograd-transformed 3x3 weights); 0 when every kernel reads the
    /// file in place.
    pub repacked_bytes: usize,
    /// Weights that were widened or repacked.
    pub repacked_weights: usize,
    /// Convolutions and Gemms that run the sparse kernels.
    pub sparse_layers: usize,
    /// Bytes of the sparse layers' input offsets (computed at creation, in session memory).
    pub sparse_index_bytes: usize,
    /// Bytes of the scratch buffer (the sparse convolutions' im2col, the Winograd blocks).
    pub scratch_bytes: usize,
    /// Residual adds fused into the convolution that produces one of their operands.
    pub fused_residuals: usize,
    /// Activation arena size in bytes.
    pub arena_bytes: usize,
    /// Sum of all activation tensor sizes in bytes (what the arena would be without reuse).
    pub unshared_bytes: usize,
}

/// A runnable instance of a [`Model`]: owns the activation memory; use one per thread.
#[derive(Debug)]
pub struct Session<'a> {
    model: Model<'a>,
    options: Options,
    isa: Isa,
    plan: Plan,
    steps: Vec<(usize, Step)>,
    owned: Vec<Vec<f32>>,
    sparse: Vec<SparseIndex>,
    scratch: Vec<f32>,
    arena: Vec<f32>,
    names: HashMap<String, u32>,
    report: SessionReport,
    /// Worker threads when `Options::threads > 1`.
    pool: Option<ThreadPool>,
    /// The cores `Options::affinity` chose, if it restricts anything.
    pin: Option<CpuMask>,
}

fn widen(model: &Model, id: WeightId) -> Vec<f32> {
    let info = &model.graph().weights[id as usize];
    let bytes = model.weight_bytes(id);
    match info.encoding {
        Encoding::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        // Only reached for an f32 weight whose bytes cannot be viewed in place (sparse
        // weights are decoded by `SessionWeights`).
        _ => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    }
}

impl<'a> Session<'a> {
    pub(crate) fn new(model: Model<'a>, options: Options) -> Result<Self, Error> {
        let isa = Isa::select(options.isa)?;
        let table = KernelTable::for_isa(isa);
        let graph = model.graph();
        let names: HashMap<String, u32> = graph
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i as u32))
            .collect();
        let mut retain = vec![false; graph.tensors.len()];
        match &options.retain {
            Retain::Outputs => {}
            Retain::All => retain.iter_mut().for_each(|r| *r = true),
            Retain::Named(list) => {
                for name in list {
                    let id = names
                        .get(name)
                        .ok_or_else(|| Error::NoSuchTensor(name.clone()))?;
                    retain[*id as usize] = true;
                }
            }
        }
        let fused = residuals(graph, &retain);
        let plan = plan(graph, &retain, &fused);
        let mut absorbed = vec![false; graph.nodes.len()];
        let mut by_conv: Vec<Option<&Residual>> = vec![None; graph.nodes.len()];
        for r in &fused {
            absorbed[r.add] = true;
            by_conv[r.conv] = Some(r);
        }

        let mut weights = SessionWeights {
            model: &model,
            owned: Vec::new(),
            refs: Vec::with_capacity(graph.weights.len()),
            sparse: Vec::new(),
            im2col_packed: vec![false; graph.weights.len()],
            scratch_len: 0,
            report: SessionReport::default(),
        };
        for (id, info) in graph.weights.iter().enumerate() {
            let id = id as WeightId;
            debug_assert!(matches!(info.layout, Layout::RowMajor | Layout::Panel8));
            let r = match info.encoding {
                Encoding::SparseBlocks { .. } => None,
                _ if model.weight_f32(id).is_some() => Some(WeightRef::Mapped(id)),
                _ => Some(weights.own(widen(&model, id))),
            };
            weights.refs.push(r);
        }
        let mut steps = Vec::new();
        for (k, node) in graph.nodes.iter().enumerate() {
            // A fused Add runs in its convolution's step (profiles count it there).
            if absorbed[k] {
                continue;
            }
            let residual = by_conv[k];
            if let Some(step) =
                weights.lower_sparse(&plan, &table, node, options.threads, residual)?
            {
                steps.push((k, step));
                continue;
            }
            weights.decode_dense(node)?;
            let threads = options.threads;
            if let Some(step) = weights.lower_winograd(&plan, &table, node, residual, threads) {
                steps.push((k, step));
                continue;
            }
            weights.pack_for_im2col(&table, node);
            let refs = &weights.refs;
            let weight = |id: WeightId| refs[id as usize].unwrap_or(WeightRef::Mapped(id));
            for step in lower(graph, &plan, &table, &weight, node, residual) {
                weights.scratch_len = weights.scratch_len.max(step.scratch_len());
                steps.push((k, step));
            }
        }
        let SessionWeights {
            owned,
            sparse,
            scratch_len,
            mut report,
            ..
        } = weights;
        report.fused_residuals = fused.len();
        report.arena_bytes = plan.arena_len * 4;
        report.unshared_bytes = graph.tensors.iter().map(|t| t.numel() * 4).sum();
        report.scratch_bytes = scratch_len * 4;
        let arena = vec![0.0; plan.arena_len];
        let pin = affinity::cpus_for(options.affinity, affinity::SYSFS_CPUS.as_ref())
            .map(|cpus| CpuMask::of(&cpus));
        let pool = (options.threads > 1).then(|| ThreadPool::pinned(options.threads, pin));
        Ok(Session {
            model,
            options,
            isa,
            plan,
            steps,
            owned,
            sparse,
            scratch: vec![0.0; scratch_len],
            arena,
            names,
            report,
            pool,
            pin,
        })
    }

    /// The model this session runs.
    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// The options the session was created with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The instruction set whose kernels this session runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Memory and repacking done at creation.
    pub fn report(&self) -> &SessionReport {
        &self.report
    }

    /// Runs the model on `inputs` (one flat NCHW slice per graph input, in order).
    pub fn run(&mut self, inputs: &[&[f32]]) -> Result<(), Error> {
        self.run_with(inputs, &mut |_| {})
    }

    /// Runs the model on `ndarray` inputs (standard layout), one per graph input.
    pub fn run_arrays(&mut self, inputs: &[ArrayViewD<'_, f32>]) -> Result<(), Error> {
        let mut slices: [&[f32]; 8] = [&[]; 8];
        if inputs.len() > slices.len() {
            return Err(Error::InputCount {
                expected: self.model.graph().inputs.len(),
                got: inputs.len(),
            });
        }
        for (index, (slot, array)) in slices.iter_mut().zip(inputs).enumerate() {
            *slot = array.as_slice().ok_or(Error::NotContiguous { index })?;
        }
        self.run(&slices[..inputs.len()])
    }

    /// Runs like [`Session::run`] and calls `on_node(node_index, elapsed)` after each step
    /// (for per-layer profiles; a node may report several steps).
    pub fn run_profiled(
        &mut self,
        inputs: &[&[f32]],
        mut on_node: impl FnMut(usize, Duration),
    ) -> Result<(), Error> {
        let mut last = Instant::now();
        self.run_with(inputs, &mut |node| {
            let now = Instant::now();
            on_node(node, now - last);
            last = now;
        })
    }

    fn run_with(&mut self, inputs: &[&[f32]], after: &mut dyn FnMut(usize)) -> Result<(), Error> {
        let graph = self.model.graph();
        if inputs.len() != graph.inputs.len() {
            return Err(Error::InputCount {
                expected: graph.inputs.len(),
                got: inputs.len(),
            });
        }
        for (index, (&id, data)) in graph.inputs.iter().zip(inputs).enumerate() {
            let range = self.plan.range(graph, id);
            if data.len() != range.len() {
                let t = &graph.tensors[id as usize];
                return Err(Error::InputSize {
                    index,
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    expected: range.len(),
                    got: data.len(),
                });
            }
            self.arena[range].copy_from_slice(data);
        }
        let _pinned = self.pin.as_ref().and_then(affinity::pin);
        let model = &self.model;
        let owned = &self.owned;
        let resolve = |r: WeightRef| -> &[f32] {
            match r {
                // Alignment and length were checked when the session was created.
                WeightRef::Mapped(id) => bytemuck::cast_slice(model.weight_bytes(id)),
                WeightRef::Owned(i) => &owned[i],
                // Alignment and length were checked when the session was created.
                WeightRef::MappedPrefix { id, len } => {
                    bytemuck::cast_slice(&model.weight_bytes(id)[..len * 4])
                }
            }
        };
        for (node, step) in &self.steps {
            step.run(
                &mut self.arena,
                &resolve,
                &self.sparse,
                &mut self.scratch,
                self.pool.as_ref(),
            );
            after(*node);
        }
        Ok(())
    }

    /// Output `index` of the last run, flat.
    pub fn output(&self, index: usize) -> Result<&[f32], Error> {
        let graph = self.model.graph();
        let id = *graph.outputs.get(index).ok_or(Error::OutputIndex {
            index,
            count: graph.outputs.len(),
        })?;
        Ok(&self.arena[self.plan.range(graph, id)])
    }

    /// Output `index` of the last run with its shape.
    pub fn output_view(&self, index: usize) -> Result<ArrayViewD<'_, f32>, Error> {
        let data = self.output(index)?;
        Ok(self.view(self.model.graph().outputs[index], data))
    }

    /// Any retained tensor (see [`Retain`]) of the last run, by its source-model name, flat.
    pub fn tensor(&self, name: &str) -> Result<&[f32], Error> {
        let id = *self
            .names
            .get(name)
            .ok_or_else(|| Error::NoSuchTensor(name.to_string()))?;
        if !self.plan.retained[id as usize] {
            return Err(Error::NotRetained(name.to_string()));
        }
        Ok(&self.arena[self.plan.range(self.model.graph(), id)])
    }

    /// Like [`Session::tensor`], with the tensor's shape.
    pub fn tensor_view(&self, name: &str) -> Result<ArrayViewD<'_, f32>, Error> {
        let data = self.tensor(name)?;
        Ok(self.view(self.names[name], data))
    }

    fn view<'s>(&self, id: u32, data: &'s [f32]) -> ArrayViewD<'s, f32> {
        let shape: Vec<usize> = self.model.graph().tensors[id as usize]
            .shape
            .iter()
            .map(|&d| d as usize)
            .collect();
        ArrayViewD::from_shape(IxDyn(&shape), data).expect("plan ranges match tensor shapes")
    }
}

/// The weights of a session being created: where each dense one is read from, the sparse
/// indices, and what creation copied.
struct SessionWeights<'m, 'a> {
    model: &'m Model<'a>,
    owned: Vec<Vec<f32>>,
    /// Dense form of each weight (`None` for a sparse weight not decoded).
    refs: Vec<Option<WeightRef>>,
    sparse: Vec<SparseIndex>,
    /// Weights already packed by [`SessionWeights::pack_for_im2col`] (a weight two such
    /// convolutions share is packed once).
    im2col_packed: Vec<bool>,
    /// Largest scratch of any step (sparse im2col, Winograd blocks, gathered strided
    /// input), in values.
    scratch_len: usize,
    report: SessionReport,
}

impl SessionWeights<'_, '_> {
    /// Keeps `values` in session memory (counted as repacked).
    fn own(&mut self, values: Vec<f32>) -> WeightRef {
        self.report.repacked_bytes += values.len() * 4;
        self.report.repacked_weights += 1;
        self.owned.push(values);
        WeightRef::Owned(self.owned.len() - 1)
    }

    /// The sparse view of weight `id`.
    fn view(&self, id: WeightId) -> Result<SparseView<'_>, Error> {
        let info = &self.model.graph().weights[id as usize];
        let invalid = |reason: String| Error::SparseWeight {
            name: info.name.clone(),
            reason,
        };
        let (rows, cols) = sparse_matrix_dims(&info.shape)
            .ok_or_else(|| invalid(format!("shape {:?} is not a matrix", info.shape)))?;
        SparseView::new(self.model.weight_bytes(id), rows, cols, info.encoding).map_err(invalid)
    }

    /// The step of a Conv or Gemm `node` whose weight is sparse and which the sparse kernels
    /// cover (checking every column index); `None` for every other node. `residual` is
    /// the Add fused into the node.
    fn lower_sparse(
        &mut self,
        plan: &Plan,
        table: &KernelTable,
        node: &Node,
        threads: usize,
        residual: Option<&Residual>,
    ) -> Result<Option<Step>, Error> {
        let graph = self.model.graph();
        let (id, bias) = match &node.op {
            Op::Conv(c) => (c.weight, c.bias),
            Op::Gemm { weight, bias, .. } => (*weight, *bias),
            _ => return Ok(None),
        };
        let info = &graph.weights[id as usize];
        let Encoding::SparseBlocks { .. } = info.encoding else {
            return Ok(None);
        };
        let Some(sparse) = sparse_use(graph, node) else {
            return Ok(None);
        };
        let view = self.view(id)?;
        let invalid = |reason: String| Error::SparseWeight {
            name: info.name.clone(),
            reason,
        };
        let (index, parts, scratch) = match sparse {
            SparseUse::Conv(g, source) => {
                let index = SparseIndex::for_conv(&view, &g, source).map_err(invalid)?;
                let macs = view.nnz() * view.block() * g.out_h * g.out_w;
                let parts = sparse_parts(index.blocks(), macs, threads);
                (index, parts, parts * source.scratch_len(&g))
            }
            SparseUse::Gemv { groups } => {
                (SparseIndex::for_gemv(&view, groups).map_err(invalid)?, 1, 0)
            }
        };
        let value_bytes = view.value_bytes();
        let values = match bytemuck::try_cast_slice::<u8, f32>(value_bytes) {
            Ok(v) => WeightRef::MappedPrefix { id, len: v.len() },
            Err(_) => {
                let copy = view.values();
                self.own(copy)
            }
        };
        self.report.sparse_layers += 1;
        self.report.sparse_index_bytes += index.bytes();
        self.scratch_len = self.scratch_len.max(scratch);
        self.sparse.push(index);
        let bias = bias.map(|b| self.refs[b as usize].unwrap_or(WeightRef::Mapped(b)));
        let step = lower_sparse(
            graph,
            plan,
            table,
            node,
            sparse,
            self.sparse.len() - 1,
            values,
            bias,
            parts,
            residual,
        );
        Ok(Some(step))
    }

    /// The Winograd step of a dense convolution `node` the table's Winograd kernel runs,
    /// its weights transformed into session memory, split over `threads`; `None` for every
    /// other node (and for one with a fused `residual`).
    fn lower_winograd(
        &mut self,
        plan: &Plan,
        table: &KernelTable,
        node: &Node,
        residual: Option<&Residual>,
        threads: usize,
    ) -> Option<Step> {
        let graph = self.model.graph();
        let conv = winograd_conv(graph, table, node, residual.is_some())?;
        let (_, geom, c) = conv;
        let dense = match self.refs[c.weight as usize]? {
            WeightRef::Mapped(id) => self.model.weight_f32(id)?,
            WeightRef::Owned(i) => &self.owned[i],
            WeightRef::MappedPrefix { .. } => return None,
        };
        let weight = self.own(winograd::pack_weights(&geom, dense));
        let parts = winograd_parts(&geom, threads);
        self.scratch_len = self.scratch_len.max(parts * winograd::scratch_len(&geom));
        let bias = c
            .bias
            .map(|b| self.refs[b as usize].unwrap_or(WeightRef::Mapped(b)));
        Some(lower_winograd(graph, plan, node, conv, weight, bias, parts))
    }

    /// Packs the OIHW weight of a convolution that runs on its patches ([`kxk_im2col`]) as
    /// the Panel8 `[out_c, taps]` matrix the pointwise kernel reads, once.
    fn pack_for_im2col(&mut self, table: &KernelTable, node: &Node) {
        let Op::Conv(c) = &node.op else {
            return;
        };
        let full = conv_geom(self.model.graph(), node, c);
        if !kxk_im2col(table, &full) {
            return;
        }
        let taps = full.in_c * full.kernel[0] * full.kernel[1];
        let id = c.weight;
        if self.im2col_packed[id as usize] {
            return;
        }
        let dense = match self.refs[id as usize].unwrap_or(WeightRef::Mapped(id)) {
            WeightRef::Mapped(id) => self.model.weight_f32(id),
            WeightRef::Owned(i) => Some(&self.owned[i][..]),
            WeightRef::MappedPrefix { .. } => None,
        };
        // Sparse weights were lowered before (or decoded to owned values): always `Some`.
        if let Some(dense) = dense {
            let packed = pack_panel8(dense, full.out_c, taps);
            self.refs[id as usize] = Some(self.own(packed));
            self.im2col_packed[id as usize] = true;
        }
    }

    /// Decodes every sparse weight `node` reads to the dense layout its op reads, once.
    fn decode_dense(&mut self, node: &Node) -> Result<(), Error> {
        let graph = self.model.graph();
        for id in node.op.weight_ids() {
            if self.refs[id as usize].is_some() {
                continue;
            }
            let info = &graph.weights[id as usize];
            let dense = self
                .view(id)?
                .to_dense()
                .map_err(|reason| Error::SparseWeight {
                    name: info.name.clone(),
                    reason,
                })?;
            let layout = layouts_by_use(graph)[id as usize];
            let packed = match (layout, matrix_dims(&info.shape)) {
                (Some(Layout::Panel8), Some((rows, cols))) => pack_panel8(&dense, rows, cols),
                _ => dense,
            };
            let r = self.own(packed);
            self.refs[id as usize] = Some(r);
        }
        Ok(())
    }
}
