//! Lowering graph nodes to executable steps (geometry and kernels resolved once at session
//! creation) and running them over the arena.

use std::ops::Range;

use prunus_format::{Activation, BinaryKind, Graph, Node, Op, WeightId};

mod fuse;
mod sparse;
mod winograd;

pub use fuse::{Residual, residuals};
pub use sparse::{SparseUse, lower_sparse, sparse_use};
pub use winograd::{lower_winograd, winograd_conv};

use crate::kernels::sparse::{SparseConv, SparseConvFn, SparseGemvFn, SparseIndex, SparseSource};
use crate::kernels::split::{
    ChannelSplit, MIN_SPLIT_GEMM, conv_split, gemm_split, pool_split, sparse_conv_split,
    winograd_split,
};
use crate::kernels::winograd::{WinogradFn, WinogradWeights};
use crate::kernels::{
    self, Broadcast, ConvFn, ConvGeom, Epilogue, GemmFn, KernelTable, PoolFn, PoolGeom,
};
use crate::plan::{Plan, plane};
use crate::thread_pool::ThreadPool;

/// Where a step's weight lives: in the model file, or widened into the session.
#[derive(Clone, Copy, Debug)]
pub enum WeightRef {
    /// `f32` weight read in place from the model.
    Mapped(WeightId),
    /// Index into the session's widened, decoded or copied weights.
    Owned(usize),
    /// The first `len` `f32` values of a weight, read in place (a sparse weight's values).
    MappedPrefix {
        /// Weight.
        id: WeightId,
        /// Values.
        len: usize,
    },
}

/// One executable step: a node with its arena ranges, geometry and kernel.
#[derive(Clone, Debug)]
pub enum Step {
    /// Any convolution.
    Conv {
        /// Kernel chosen for this shape.
        f: ConvFn,
        /// Geometry.
        geom: ConvGeom,
        /// Weight.
        weight: WeightRef,
        /// Bias.
        bias: Option<WeightRef>,
        /// Fused activation.
        act: Activation,
        /// Fused residual add: the range of the added tensor.
        residual: Option<Range<usize>>,
        /// How the call may be split over threads (output channels).
        split: ChannelSplit,
        /// The convolution as its own geometry when `geom` is the pointwise one on its
        /// input's patches, gathered first into the scratch ([`kernels::im2col`]): a
        /// strided 1x1 convolution without padding (its weights Panel8, as any 1x1 one's),
        /// so the pointwise kernels cover it, or a kxk one with at most
        /// [`KernelTable::im2col_taps`] taps ([`kxk_im2col`]; session creation packs its
        /// OIHW weights as Panel8 once).
        im2col: Option<ConvGeom>,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// 3x3 stride-1 convolution by Winograd F(4x4, 3x3) (its scratch in the session's).
    Winograd {
        /// Kernel.
        f: WinogradFn,
        /// Geometry.
        geom: ConvGeom,
        /// Transformed weights (session memory).
        weight: WeightRef,
        /// Bias.
        bias: Option<WeightRef>,
        /// Fused activation.
        act: Activation,
        /// Parts (ranges of output panels) the call is split into when threads are on.
        parts: usize,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Convolution on a sparse weight.
    SparseConv {
        /// Kernel.
        f: SparseConvFn,
        /// Geometry.
        geom: ConvGeom,
        /// What the offsets of the index point into.
        source: SparseSource,
        /// Index into the session's sparse indices.
        index: usize,
        /// The weight's stored values.
        values: WeightRef,
        /// Bias.
        bias: Option<WeightRef>,
        /// Fused activation.
        act: Activation,
        /// Fused residual add: the range of the added tensor.
        residual: Option<Range<usize>>,
        /// Parts (ranges of output blocks) the call is split into when threads are on.
        parts: usize,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Sparse matrix-vector product (Gemm, or a pointwise convolution of one pixel).
    SparseGemv {
        /// Kernel.
        f: SparseGemvFn,
        /// Index into the session's sparse indices.
        index: usize,
        /// The weight's stored values.
        values: WeightRef,
        /// Bias.
        bias: Option<WeightRef>,
        /// Fused activation.
        act: Activation,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Fully connected.
    Gemm {
        /// Kernel.
        f: GemmFn,
        /// Weight.
        weight: WeightRef,
        /// Bias.
        bias: Option<WeightRef>,
        /// Fused activation.
        act: Activation,
        /// Whether the call is split over threads (ranges of panels) when they are on.
        split: bool,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Element-wise binary op.
    Binary {
        /// Operation.
        kind: BinaryKind,
        /// Fused activation.
        act: Activation,
        /// First operand.
        a: Range<usize>,
        /// Second operand.
        b: Range<usize>,
        /// How `b` broadcasts.
        bc: Broadcast,
        /// Output range.
        y: Range<usize>,
    },
    /// Per-channel affine.
    ScaleShift {
        /// Plane size.
        hw: usize,
        /// Scales.
        scale: WeightRef,
        /// Shifts.
        shift: WeightRef,
        /// Fused activation.
        act: Activation,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Standalone activation.
    Activation {
        /// Activation.
        act: Activation,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Copy of a concat part that could not be written in place.
    Copy {
        /// Source range.
        x: Range<usize>,
        /// Destination range.
        y: Range<usize>,
    },
    /// Channel shuffle.
    Shuffle {
        /// Groups.
        groups: usize,
        /// Plane size.
        hw: usize,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Max or average pooling.
    Pool {
        /// Kernel.
        f: PoolFn,
        /// Geometry.
        geom: PoolGeom,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Global average pooling.
    GlobalAvgPool {
        /// The kernel.
        f: kernels::GlobalPoolFn,
        /// Plane size.
        hw: usize,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Softmax over rows of `cols`.
    Softmax {
        /// Row length.
        cols: usize,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
    /// Constant padding.
    Pad {
        /// Input `[C, H, W]`.
        chw: [usize; 3],
        /// Top, left, bottom, right.
        pads: [usize; 4],
        /// Fill value.
        value: f32,
        /// Input range.
        x: Range<usize>,
        /// Output range.
        y: Range<usize>,
    },
}

fn dims(shape: &[u32]) -> [usize; 4] {
    let d = |i: usize| shape.get(i).copied().unwrap_or(1) as usize;
    [d(0), d(1), d(2), d(3)]
}

/// Whether the kxk convolution `full` runs as im2col + the pointwise kernel with `table`
/// (ungrouped, at most [`KernelTable::im2col_taps`] taps); its weights must then be Panel8
/// `[out_c, in_c * kh * kw]`, which session creation packs.
pub fn kxk_im2col(table: &KernelTable, full: &ConvGeom) -> bool {
    let taps = full.in_c * full.kernel[0] * full.kernel[1];
    full.kernel != [1, 1]
        && full.groups == 1
        && taps <= table.im2col_taps
        && full.out_h * full.out_w > 0
}

/// The geometry of convolution node `node`.
pub fn conv_geom(graph: &Graph, node: &Node, c: &prunus_format::Conv) -> ConvGeom {
    let shape = |id: u32| graph.tensors[id as usize].shape.as_slice();
    let [_, in_c, in_h, in_w] = dims(shape(node.inputs[0]));
    let [_, out_c, out_h, out_w] = dims(shape(node.outputs[0]));
    ConvGeom {
        in_c,
        in_h,
        in_w,
        out_c,
        out_h,
        out_w,
        kernel: c.kernel.map(|v| v as usize),
        stride: c.stride.map(|v| v as usize),
        pads: c.pads.map(|v| v as usize),
        dilation: c.dilation.map(|v| v as usize),
        groups: c.groups as usize,
    }
}

/// Lowers one node to its steps (zero for aliases, several for a concat that copies);
/// `residual` is the Add fused into this node (a convolution), if any.
pub fn lower(
    graph: &Graph,
    plan: &Plan,
    table: &KernelTable,
    weight: &dyn Fn(WeightId) -> WeightRef,
    node: &Node,
    residual: Option<&Residual>,
) -> Vec<Step> {
    let range = |id: u32| plan.range(graph, id);
    let shape = |id: u32| graph.tensors[id as usize].shape.as_slice();
    let (x, y) = (range(node.inputs[0]), range(node.outputs[0]));
    let xs = shape(node.inputs[0]);
    let step = match &node.op {
        Op::Conv(c) => {
            let full = conv_geom(graph, node, c);
            let taps = full.in_c * full.kernel[0] * full.kernel[1];
            let strided_1x1 = c.kernel == [1, 1] && full.stride != [1, 1] && full.pads == [0; 4];
            let im2col = ((strided_1x1 && full.out_h * full.out_w > 0) || kxk_im2col(table, &full))
                .then_some(full);
            let geom = match im2col {
                Some(g) => ConvGeom {
                    in_c: taps,
                    in_h: g.out_h,
                    in_w: g.out_w,
                    kernel: [1, 1],
                    stride: [1, 1],
                    pads: [0; 4],
                    dilation: [1, 1],
                    ..g
                },
                None => full,
            };
            let f = if geom.kernel == [1, 1] && c.groups == 1 {
                table.conv1x1
            } else if geom.groups == geom.in_c && geom.in_c == geom.out_c {
                table.depthwise
            } else if c.kernel == [1, 1] {
                table.group_conv1x1
            } else {
                table.conv
            };
            Step::Conv {
                f,
                geom,
                weight: weight(c.weight),
                bias: c.bias.map(weight),
                act: residual.map_or(c.activation, |r| r.activation),
                residual: residual.map(|r| range(r.skip)),
                split: ChannelSplit::for_conv(&geom),
                im2col,
                x,
                y: residual.map_or(y, |r| range(r.out)),
            }
        }
        Op::Gemm {
            weight: w,
            bias,
            activation,
        } => Step::Gemm {
            f: table.gemm,
            weight: weight(*w),
            bias: bias.map(weight),
            act: *activation,
            split: x.len() * y.len() >= MIN_SPLIT_GEMM,
            x,
            y,
        },
        Op::Binary { kind, activation } => {
            let bs = shape(node.inputs[1]);
            let bc = if bs == xs {
                Broadcast::Full
            } else if bs.iter().product::<u32>() == 1 {
                Broadcast::Scalar
            } else {
                Broadcast::PerChannel { hw: plane(xs) }
            };
            Step::Binary {
                kind: *kind,
                act: *activation,
                a: x,
                b: range(node.inputs[1]),
                bc,
                y,
            }
        }
        Op::ScaleShift {
            scale,
            shift,
            activation,
        } => Step::ScaleShift {
            hw: plane(xs),
            scale: weight(*scale),
            shift: weight(*shift),
            act: *activation,
            x,
            y,
        },
        Op::Activation(act) => Step::Activation { act: *act, x, y },
        Op::Concat => {
            let mut steps = Vec::new();
            let mut at = y.start;
            for &part in &node.inputs {
                let src = range(part);
                let dst = at..at + src.len();
                if src != dst {
                    steps.push(Step::Copy {
                        x: src,
                        y: dst.clone(),
                    });
                }
                at = dst.end;
            }
            return steps;
        }
        Op::SliceChannels { .. } | Op::Reshape => return Vec::new(),
        Op::ChannelShuffle { groups } => Step::Shuffle {
            groups: *groups as usize,
            hw: plane(xs),
            x,
            y,
        },
        Op::MaxPool(p) | Op::AveragePool(p) => {
            let [_, c, in_h, in_w] = dims(xs);
            let [_, _, out_h, out_w] = dims(shape(node.outputs[0]));
            let geom = PoolGeom {
                c,
                in_h,
                in_w,
                out_h,
                out_w,
                kernel: p.kernel.map(|v| v as usize),
                stride: p.stride.map(|v| v as usize),
                pads: p.pads.map(|v| v as usize),
                count_include_pad: p.count_include_pad,
            };
            let f = match node.op {
                Op::MaxPool(_) => table.max_pool,
                _ => table.avg_pool,
            };
            Step::Pool { f, geom, x, y }
        }
        Op::GlobalAveragePool => Step::GlobalAvgPool {
            f: table.global_avg_pool,
            hw: plane(xs),
            x,
            y,
        },
        Op::Softmax => Step::Softmax {
            cols: *xs.last().unwrap_or(&1) as usize,
            x,
            y,
        },
        Op::Pad { pads, value } => {
            let [_, c, h, w] = dims(xs);
            Step::Pad {
                chw: [c, h, w],
                pads: pads.map(|v| v as usize),
                value: *value,
                x,
                y,
            }
        }
    };
    vec![step]
}

/// The arena split around one output range: inputs are read from the rest.
struct Split<'s> {
    before: &'s [f32],
    after: &'s [f32],
    after_start: usize,
}

impl Split<'_> {
    /// An input range; the planner guarantees it does not overlap the output.
    fn get(&self, r: &Range<usize>) -> &[f32] {
        if r.end <= self.before.len() {
            &self.before[r.clone()]
        } else {
            &self.after[r.start - self.after_start..r.end - self.after_start]
        }
    }
}

fn split<'s>(arena: &'s mut [f32], y: &Range<usize>) -> (Split<'s>, &'s mut [f32]) {
    let (before, rest) = arena.split_at_mut(y.start);
    let (out, after) = rest.split_at_mut(y.len());
    let split = Split {
        before,
        after,
        after_start: y.end,
    };
    (split, out)
}

impl Step {
    /// Scratch values the step needs besides the sparse and Winograd ones (which session
    /// creation sizes as it lowers them): the patches of a convolution run on them.
    pub fn scratch_len(&self) -> usize {
        match self {
            Step::Conv {
                geom,
                im2col: Some(_),
                ..
            } => geom.in_c * geom.in_h * geom.in_w,
            _ => 0,
        }
    }

    /// Runs the step; `w` resolves weights, `sparse` holds the session's sparse indices
    /// and `scratch` the sparse convolutions' im2col buffer, the Winograd blocks and the
    /// gathered input of strided pointwise convolutions; splittable convolutions use
    /// `pool` if given.
    pub fn run<'w>(
        &self,
        arena: &mut [f32],
        w: &dyn Fn(WeightRef) -> &'w [f32],
        sparse: &[SparseIndex],
        scratch: &mut [f32],
        pool: Option<&ThreadPool>,
    ) {
        match self {
            Step::SparseConv {
                f,
                geom,
                source,
                index,
                values,
                bias,
                act,
                residual,
                parts,
                x,
                y,
            } => {
                let (src, out) = split(arena, y);
                let epi = Epilogue {
                    bias: bias.map(w),
                    residual: residual.as_ref().map(|r| src.get(r)),
                    activation: *act,
                };
                let index = &sparse[*index];
                let conv = SparseConv {
                    geom,
                    weights: index.rows(w(*values), 0..index.blocks()),
                    source: *source,
                };
                match pool {
                    Some(pool) if *parts > 1 => {
                        sparse_conv_split(pool, *parts, *f, &conv, src.get(x), &epi, out, scratch)
                    }
                    _ => f(&conv, src.get(x), &epi, out, scratch),
                }
            }
            Step::Winograd {
                f,
                geom,
                weight,
                bias,
                act,
                parts,
                x,
                y,
            } => {
                let (src, out) = split(arena, y);
                let epi = Epilogue::new(bias.map(w), *act);
                let u = WinogradWeights {
                    u: w(*weight),
                    out_c: geom.out_c,
                    first: 0,
                };
                match pool {
                    Some(pool) if *parts > 1 => {
                        winograd_split(pool, *parts, *f, geom, src.get(x), u, &epi, out, scratch)
                    }
                    _ => f(geom, src.get(x), u, &epi, out, scratch),
                }
            }
            Step::SparseGemv {
                f,
                index,
                values,
                bias,
                act,
                x,
                y,
            } => {
                let (src, out) = split(arena, y);
                let epi = Epilogue::new(bias.map(w), *act);
                let index = &sparse[*index];
                f(
                    &index.rows(w(*values), 0..index.blocks()),
                    src.get(x),
                    &epi,
                    out,
                );
            }
            Step::Conv {
                f,
                geom,
                weight,
                bias,
                act,
                residual,
                split: channels,
                im2col,
                x,
                y,
            } => {
                let (src, out) = split(arena, y);
                let epi = Epilogue {
                    bias: bias.map(w),
                    residual: residual.as_ref().map(|r| src.get(r)),
                    activation: *act,
                };
                let x = match im2col {
                    Some(full) => {
                        let patches = &mut scratch[..geom.in_c * geom.in_h * geom.in_w];
                        kernels::im2col::im2col(full, src.get(x), patches);
                        &*patches
                    }
                    None => src.get(x),
                };
                let weight = w(*weight);
                match pool {
                    Some(pool) if *channels != ChannelSplit::None => {
                        conv_split(pool, *channels, *f, geom, x, weight, &epi, out)
                    }
                    _ => f(geom, x, weight, &epi, out),
                }
            }
            Step::Gemm {
                f,
                weight,
                bias,
                act,
                split: parts,
                x,
                y,
            } => {
                let (src, out) = split(arena, y);
                let epi = Epilogue::new(bias.map(w), *act);
                match pool {
                    Some(pool) if *parts => gemm_split(pool, *f, src.get(x), w(*weight), &epi, out),
                    _ => f(src.get(x), w(*weight), &epi, out),
                }
            }
            Step::Binary {
                kind,
                act,
                a,
                b,
                bc,
                y,
            } => {
                let (src, out) = split(arena, y);
                kernels::binary(*kind, *act, src.get(a), src.get(b), *bc, out);
            }
            Step::ScaleShift {
                hw,
                scale,
                shift,
                act,
                x,
                y,
            } => {
                let (src, out) = split(arena, y);
                kernels::scale_shift(*hw, w(*scale), w(*shift), *act, src.get(x), out);
            }
            Step::Activation { act, x, y } => {
                let (src, out) = split(arena, y);
                kernels::activation(*act, src.get(x), out);
            }
            Step::Copy { x, y } => {
                let (src, out) = split(arena, y);
                out.copy_from_slice(src.get(x));
            }
            Step::Shuffle { groups, hw, x, y } => {
                let (src, out) = split(arena, y);
                kernels::channel_shuffle(*groups, *hw, src.get(x), out);
            }
            Step::Pool { f, geom, x, y } => {
                let (src, out) = split(arena, y);
                match pool {
                    Some(pool) => pool_split(pool, *f, geom, src.get(x), out),
                    None => f(geom, src.get(x), out),
                }
            }
            Step::GlobalAvgPool { f, hw, x, y } => {
                let (src, out) = split(arena, y);
                f(*hw, src.get(x), out);
            }
            Step::Softmax { cols, x, y } => {
                let (src, out) = split(arena, y);
                kernels::softmax(*cols, src.get(x), out);
            }
            Step::Pad {
                chw,
                pads,
                value,
                x,
                y,
            } => {
                let (src, out) = split(arena, y);
                kernels::pad(chw[0], chw[1], chw[2], *pads, *value, src.get(x), out);
            }
        }
    }
}
