//! Splitting one convolution or Gemm into independent calls of the same kernel over
//! disjoint ranges of output channels, run in parallel on a [`ThreadPool`].
//!
//! A part is the same kernel on a sub-geometry: for a 1x1 convolution on Panel8 weights
//! (and a Gemm), a range of whole panels (its weights are a contiguous run of panels); for
//! a grouped or depthwise one, a range of whole groups (contiguous input planes, weight
//! rows and outputs); for an ungrouped kxk one, a range of output channels (contiguous
//! OIHW weight rows and outputs, the whole input). Every output is computed by exactly the
//! code and summation order it would have in one call (the kernels' order of work per
//! output does not depend on how many channels a call has), so the results are bitwise
//! identical for any thread count.

use std::sync::{Mutex, PoisonError};

use prunus_format::layout::PANEL;

use super::sparse::{SparseConv, SparseConvFn, SparseRows};
use super::winograd::{WinogradFn, WinogradWeights};
use super::{ConvFn, ConvGeom, Epilogue, GemmFn, PoolFn, PoolGeom};
use crate::thread_pool::{MAX_THREADS, ThreadPool};

/// Convolutions with fewer multiply-adds than this run in one call: below it, handing the
/// work to the (spinning) workers costs more than the split saves. Measured at 2 threads
/// against 2 M: MobileNetV3-Small 1.05 -> 0.69 ms, GhostNet 2.30 -> 1.76 ms, MobileNetV3-Large
/// 2.61 -> 2.10 ms (300 K, 100 K and 30 K within noise of each other).
pub const MIN_SPLIT_MACS: usize = 100_000;

/// Gemms with fewer weights than this run in one call. A Gemm is one pass over its weights
/// (memory-bound), so it pays from fewer multiply-adds than a convolution.
pub const MIN_SPLIT_GEMM: usize = 500_000;

/// How a convolution step may be split over output channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelSplit {
    /// One call.
    None,
    /// Ranges of whole Panel8 panels (1x1, `groups == 1`).
    Panels,
    /// Ranges of whole groups (grouped and depthwise convolutions, OIHW weights).
    Groups,
    /// Ranges of output channels, in multiples of [`PANEL`] (ungrouped kxk, OIHW weights).
    Channels,
}

impl ChannelSplit {
    /// The split for a convolution of this geometry (`None` for small ones).
    pub fn for_conv(g: &ConvGeom) -> Self {
        let macs =
            g.out_c * g.out_h * g.out_w * (g.in_c / g.groups.max(1)) * g.kernel[0] * g.kernel[1];
        if macs < MIN_SPLIT_MACS || g.groups == 0 {
            ChannelSplit::None
        } else if g.groups > 1 {
            ChannelSplit::Groups
        } else if g.kernel == [1, 1] {
            ChannelSplit::Panels
        } else {
            ChannelSplit::Channels
        }
    }
}

/// The epilogue of output channels `o0 .. o0 + oc` (planes of `out_hw` values).
fn part_epilogue<'a>(epi: &Epilogue<'a>, o0: usize, oc: usize, out_hw: usize) -> Epilogue<'a> {
    Epilogue {
        bias: epi.bias.map(|b| &b[o0..o0 + oc]),
        residual: epi.residual.map(|r| &r[o0 * out_hw..(o0 + oc) * out_hw]),
        activation: epi.activation,
    }
}

/// Runs `f(g, x, w, epi, y)` as up to `pool.threads()` parallel calls per `split`.
#[allow(clippy::too_many_arguments)] // the kernel's own five, plus pool, split and kernel
pub fn conv_split(
    pool: &ThreadPool,
    split: ChannelSplit,
    f: ConvFn,
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    epi: &Epilogue,
    y: &mut [f32],
) {
    let out_hw = g.out_h * g.out_w;
    // Units: panels of 8 output channels, groups, or runs of 8 output channels.
    let (units, unit_c) = match split {
        ChannelSplit::Panels | ChannelSplit::Channels => (g.out_c.div_ceil(PANEL), PANEL),
        ChannelSplit::Groups => (g.groups, g.out_c / g.groups.max(1)),
        ChannelSplit::None => (1, g.out_c),
    };
    let per_part = units.div_ceil(pool.threads().min(units).max(1));
    if units <= 1 || per_part >= units || out_hw == 0 || unit_c == 0 {
        return f(g, x, w, epi, y);
    }
    let in_hw = g.in_h * g.in_w;
    let icg = g.in_c / g.groups;
    let per_out = icg * g.kernel[0] * g.kernel[1];
    pool.for_each_chunk(y, per_part * unit_c * out_hw, &|part, yp| {
        let o0 = part * per_part * unit_c;
        let oc = yp.len() / out_hw;
        let epi = part_epilogue(epi, o0, oc, out_hw);
        let sub = ConvGeom { out_c: oc, ..*g };
        match split {
            ChannelSplit::Panels => {
                // Panel8: `ceil(oc / 8)` panels of `8 * in_c` values from panel `o0 / 8`.
                let wp = &w[o0 * g.in_c..(o0 + oc.div_ceil(PANEL) * PANEL) * g.in_c];
                f(&sub, x, wp, &epi, yp);
            }
            ChannelSplit::Channels => {
                f(&sub, x, &w[o0 * per_out..(o0 + oc) * per_out], &epi, yp);
            }
            _ => {
                let (g0, gn) = (o0 / unit_c, oc / unit_c);
                let sub = ConvGeom {
                    in_c: gn * icg,
                    groups: gn,
                    ..sub
                };
                let xg = &x[g0 * icg * in_hw..(g0 + gn) * icg * in_hw];
                let wg = &w[o0 * per_out..(o0 + oc) * per_out];
                f(&sub, xg, wg, &epi, yp);
            }
        }
    });
}

/// Runs the Gemm `f(x, w, epi, y)` (Panel8 weights) as up to `pool.threads()` parallel
/// calls over ranges of whole panels.
pub fn gemm_split(
    pool: &ThreadPool,
    f: GemmFn,
    x: &[f32],
    w: &[f32],
    epi: &Epilogue,
    y: &mut [f32],
) {
    let panels = y.len().div_ceil(PANEL);
    let per_part = panels.div_ceil(pool.threads().min(panels).max(1));
    if panels <= 1 || per_part >= panels {
        return f(x, w, epi, y);
    }
    let k = x.len();
    pool.for_each_chunk(y, per_part * PANEL, &|part, yp| {
        let o0 = part * per_part * PANEL;
        let wp = &w[o0 * k..(o0 + yp.len().div_ceil(PANEL) * PANEL) * k];
        f(x, wp, &part_epilogue(epi, o0, yp.len(), 1), yp);
    });
}

/// Parts a sparse convolution of `blocks` output blocks and `macs` multiply-adds (stored
/// values x output pixels) is split into on `threads` threads: ranges of whole blocks, one
/// part for small convolutions (as [`MIN_SPLIT_MACS`]).
pub fn sparse_parts(blocks: usize, macs: usize, threads: usize) -> usize {
    if threads <= 1 || macs < MIN_SPLIT_MACS {
        return 1;
    }
    let per_part = blocks.div_ceil(threads.min(MAX_THREADS).min(blocks).max(1));
    blocks.div_ceil(per_part.max(1)).max(1)
}

/// One part's output rows and scratch, handed to the thread that runs it.
type PartSlot<'s> = Mutex<Option<(&'s mut [f32], &'s mut [f32])>>;

/// `parts` slots, each with the next `per_part` values of `y` (the last part what is left)
/// and `scratch.len() / parts` values of scratch: every part's output and scratch go to
/// exactly one thread, through its own (uncontended) mutex.
fn part_slots<'s>(
    y: &'s mut [f32],
    scratch: &'s mut [f32],
    parts: usize,
    per_part: usize,
) -> [PartSlot<'s>; MAX_THREADS] {
    let scratch_per_part = scratch.len() / parts.max(1);
    let mut slots: [PartSlot; MAX_THREADS] = [const { Mutex::new(None) }; MAX_THREADS];
    let (mut y_rest, mut s_rest) = (y, scratch);
    for slot in slots.iter_mut().take(parts) {
        let n = per_part.min(y_rest.len());
        let (yp, yr) = std::mem::take(&mut y_rest).split_at_mut(n);
        let (sp, sr) = std::mem::take(&mut s_rest).split_at_mut(scratch_per_part);
        (y_rest, s_rest) = (yr, sr);
        *slot.get_mut().unwrap_or_else(PoisonError::into_inner) = Some((yp, sp));
    }
    slots
}

/// Part `p`'s output and scratch, taken from its slot (once).
fn take_slot<'s>(
    slots: &[PartSlot<'s>; MAX_THREADS],
    p: usize,
) -> Option<(&'s mut [f32], &'s mut [f32])> {
    slots[p]
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// Runs the sparse convolution `f(conv, x, epi, y, scratch)` as `parts` parallel calls over
/// ranges of whole output blocks (see [`sparse_parts`]); each part gets its own
/// `scratch.len() / parts` values of scratch. Every output is computed by the same code in
/// the same order as in one call, so results are bitwise identical for any split.
#[allow(clippy::too_many_arguments)] // the kernel's own five, plus pool, parts and kernel
pub fn sparse_conv_split(
    pool: &ThreadPool,
    parts: usize,
    f: SparseConvFn,
    conv: &SparseConv,
    x: &[f32],
    epi: &Epilogue,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let w = &conv.weights;
    let blocks = w.blocks();
    let out_hw = conv.geom.out_h * conv.geom.out_w;
    let per_part = blocks.div_ceil(parts.clamp(1, MAX_THREADS));
    let parts = blocks.div_ceil(per_part.max(1));
    if parts <= 1 || out_hw == 0 {
        return f(conv, x, epi, y, scratch);
    }
    let slots = part_slots(y, scratch, parts, per_part * w.block * out_hw);
    pool.run(parts, &|p| {
        if let Some((yp, sp)) = take_slot(&slots, p) {
            let (b0, b1) = (p * per_part, ((p + 1) * per_part).min(blocks));
            let o0 = b0 * w.block;
            let rows = yp.len() / out_hw;
            let part = SparseConv {
                weights: SparseRows {
                    starts: &w.starts[b0..=b1],
                    ..*w
                },
                ..*conv
            };
            let epi = part_epilogue(epi, o0, rows, out_hw);
            f(&part, x, &epi, yp, sp);
        }
    });
}

/// Poolings with fewer output values than this run in one call.
pub const MIN_SPLIT_POOL: usize = 50_000;

/// Runs the pooling `f(g, x, y)` as up to `pool.threads()` parallel calls over ranges of
/// channels (contiguous input and output planes); each value is computed as in one call.
pub fn pool_split(pool: &ThreadPool, f: PoolFn, g: &PoolGeom, x: &[f32], y: &mut [f32]) {
    let (in_hw, out_hw) = (g.in_h * g.in_w, g.out_h * g.out_w);
    let per_part = g.c.div_ceil(pool.threads().min(g.c).max(1));
    if per_part >= g.c || out_hw == 0 || y.len() < MIN_SPLIT_POOL {
        return f(g, x, y);
    }
    pool.for_each_chunk(y, per_part * out_hw, &|part, yp| {
        let (c0, c) = (part * per_part, yp.len() / out_hw);
        f(&PoolGeom { c, ..*g }, &x[c0 * in_hw..(c0 + c) * in_hw], yp);
    });
}

/// Parts a Winograd convolution is split into on `threads` threads: ranges of whole
/// panels of output channels, one part for small convolutions (as [`MIN_SPLIT_MACS`],
/// counting the direct convolution's multiply-adds).
pub fn winograd_parts(g: &ConvGeom, threads: usize) -> usize {
    let macs = g.out_c * g.out_h * g.out_w * g.in_c * 9;
    if threads <= 1 || macs < MIN_SPLIT_MACS {
        return 1;
    }
    let panels = g.out_c.div_ceil(PANEL);
    panels.div_ceil(panels.div_ceil(threads.min(MAX_THREADS).min(panels).max(1)))
}

/// Runs the Winograd convolution `f` as `parts` parallel calls over ranges of whole
/// panels of output channels (see [`winograd_parts`]); each part transforms the whole
/// input itself, in its own `scratch.len() / parts` values of scratch. Every output is
/// computed by the same code in the same order as in one call (the products sum over
/// input channels in order, whatever the channel range), so results are bitwise
/// identical for any split.
#[allow(clippy::too_many_arguments)] // the kernel's own six, plus pool and parts
pub fn winograd_split(
    pool: &ThreadPool,
    parts: usize,
    f: WinogradFn,
    g: &ConvGeom,
    x: &[f32],
    w: WinogradWeights,
    epi: &Epilogue,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let out_hw = g.out_h * g.out_w;
    let panels = g.out_c.div_ceil(PANEL);
    let per_part = panels.div_ceil(parts.clamp(1, MAX_THREADS));
    let parts = panels.div_ceil(per_part.max(1));
    if parts <= 1 || out_hw == 0 {
        return f(g, x, w, epi, y, scratch);
    }
    let slots = part_slots(y, scratch, parts, per_part * PANEL * out_hw);
    pool.run(parts, &|p| {
        if let Some((yp, sp)) = take_slot(&slots, p) {
            let first = p * per_part * PANEL;
            let oc = yp.len() / out_hw;
            let sub = ConvGeom { out_c: oc, ..*g };
            let part = WinogradWeights {
                first: w.first + first,
                ..w
            };
            f(
                &sub,
                x,
                part,
                &part_epilogue(epi, first, oc, out_hw),
                yp,
                sp,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::*;
    use crate::kernels::{Isa, KernelTable};
    use prunus_format::Activation;
    use prunus_format::layout::pack_panel8;

    /// A convolution geometry; output size from the usual formula.
    fn conv_geom(
        [in_c, out_c, h, w]: [usize; 4],
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
    ) -> ConvGeom {
        let out = |n: usize| (n + 2 * pad - k) / stride + 1;
        ConvGeom {
            in_c,
            in_h: h,
            in_w: w,
            out_c,
            out_h: out(h),
            out_w: out(w),
            kernel: [k, k],
            stride: [stride; 2],
            pads: [pad; 4],
            dilation: [1, 1],
            groups,
        }
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Split runs of the table's kernel for `g` equal one call bit for bit, for every ISA
    /// and thread count, with a residual when `residual`.
    fn check(g: ConvGeom, residual: bool) {
        let split = ChannelSplit::for_conv(&g);
        assert_ne!(split, ChannelSplit::None, "case too small to split");
        let mut r = rng(9);
        let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
        let per_out = g.in_c / g.groups * g.kernel[0] * g.kernel[1];
        let w_rm = fill(&mut r, g.out_c * per_out);
        let bias = fill(&mut r, g.out_c);
        let res = fill(&mut r, g.out_c * g.out_h * g.out_w);
        let epi = Epilogue {
            residual: residual.then_some(&res[..]),
            ..Epilogue::new(Some(&bias), Activation::HardSwish)
        };
        let depthwise = g.groups == g.in_c && g.in_c == g.out_c;
        for &isa in Isa::available() {
            let t = KernelTable::for_isa(isa);
            let (f, w) = match (g.kernel, g.groups) {
                ([1, 1], 1) => (t.conv1x1, pack_panel8(&w_rm, g.out_c, g.in_c)),
                _ if depthwise => (t.depthwise, w_rm.clone()),
                ([1, 1], _) => (t.group_conv1x1, w_rm.clone()),
                _ => (t.conv, w_rm.clone()),
            };
            let mut want = vec![f32::NAN; g.out_c * g.out_h * g.out_w];
            f(&g, &x, &w, &epi, &mut want);
            for threads in [2, 3, 4, 7] {
                let pool = ThreadPool::new(threads);
                let mut got = vec![f32::NAN; want.len()];
                conv_split(&pool, split, f, &g, &x, &w, &epi, &mut got);
                assert!(same_bits(&got, &want), "{isa:?}, {threads} threads, {g:?}");
            }
        }
    }

    #[test]
    fn pointwise_split_is_bitwise_identical() {
        // 45 channels: 6 panels, the last partial; 3 threads get 2 panels each.
        check(conv_geom([96, 45, 23, 21], 1, 1, 0, 1), false);
        check(conv_geom([96, 45, 23, 21], 1, 1, 0, 1), true);
    }

    #[test]
    fn grouped_split_is_bitwise_identical() {
        // ShuffleNet-like: 3 groups of 20 output channels; 7 groups for uneven parts.
        check(conv_geom([240, 60, 28, 28], 1, 1, 0, 3), false);
        check(conv_geom([112, 84, 56, 40], 1, 1, 0, 7), false);
        // Grouped 3x3 (4 groups).
        check(conv_geom([64, 64, 30, 30], 3, 1, 1, 4), false);
    }

    #[test]
    fn depthwise_split_is_bitwise_identical() {
        // 3x3 stride 1 and 2, 5x5; 37 channels for uneven parts.
        check(conv_geom([37, 37, 120, 113], 3, 1, 1, 37), false);
        check(conv_geom([96, 96, 112, 112], 3, 2, 1, 96), false);
        check(conv_geom([37, 37, 80, 77], 5, 1, 2, 37), false);
    }

    #[test]
    fn full_conv_split_is_bitwise_identical() {
        // The stem (3 input channels, stride 2) and a 3x3 with a partial last run of 8.
        check(conv_geom([3, 32, 224, 224], 3, 2, 1, 1), false);
        check(conv_geom([16, 45, 55, 55], 3, 1, 1, 1), false);
    }

    #[test]
    fn gemm_split_is_bitwise_identical() {
        // 1001 outputs: 126 panels, the last partial.
        let (k, o) = (1280, 1001);
        let mut r = rng(5);
        let x = fill(&mut r, k);
        let w = pack_panel8(&fill(&mut r, o * k), o, k);
        let bias = fill(&mut r, o);
        let epi = Epilogue::new(Some(&bias), Activation::Relu);
        for &isa in Isa::available() {
            let f = KernelTable::for_isa(isa).gemm;
            let mut want = vec![f32::NAN; o];
            f(&x, &w, &epi, &mut want);
            for threads in [2, 3, 4, 7] {
                let mut got = vec![f32::NAN; o];
                gemm_split(&ThreadPool::new(threads), f, &x, &w, &epi, &mut got);
                assert!(same_bits(&got, &want), "{isa:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn small_convolutions_do_not_split() {
        let small = conv_geom([8, 8, 4, 4], 1, 1, 0, 1);
        assert_eq!(ChannelSplit::for_conv(&small), ChannelSplit::None);
        let dw = conv_geom([512, 512, 64, 64], 3, 1, 1, 512);
        assert_eq!(ChannelSplit::for_conv(&dw), ChannelSplit::Groups);
        let full = conv_geom([32, 64, 64, 64], 3, 1, 1, 1);
        assert_eq!(ChannelSplit::for_conv(&full), ChannelSplit::Channels);
    }
}
