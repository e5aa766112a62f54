//! Splitting one convolution into independent calls of the same kernel over disjoint ranges
//! of output channels, run in parallel on a [`ThreadPool`].
//!
//! A part is the same kernel on a sub-geometry: for a 1x1 convolution on Panel8 weights, a
//! range of whole panels (its weights are a contiguous run of panels); for a grouped one,
//! a range of whole groups (contiguous input planes, weight rows and outputs). Every output
//! is computed by exactly the code and summation order it would have in one call, so the
//! results are bitwise identical for any thread count.

use std::sync::{Mutex, PoisonError};

use prunus_format::layout::PANEL;

use super::sparse::{SparseConv, SparseConvFn, SparseRows};
use super::{ConvFn, ConvGeom, Epilogue};
use crate::thread_pool::{MAX_THREADS, ThreadPool};

/// Convolutions with fewer multiply-adds than this run in one call: waking the workers
/// (tens of microseconds) would cost more than the split saves.
pub const MIN_SPLIT_MACS: usize = 2_000_000;

/// How a convolution step may be split over output channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelSplit {
    /// One call.
    None,
    /// Ranges of whole Panel8 panels (1x1, `groups == 1`).
    Panels,
    /// Ranges of whole groups (grouped 1x1, row-major weights).
    Groups,
}

impl ChannelSplit {
    /// The split for a 1x1 convolution of this geometry (`None` for other kernels and for
    /// small ones).
    pub fn for_pointwise(g: &ConvGeom) -> Self {
        let macs = g.out_c * g.out_h * g.out_w * (g.in_c / g.groups.max(1));
        let depthwise = g.groups == g.in_c && g.in_c == g.out_c;
        if g.kernel != [1, 1] || macs < MIN_SPLIT_MACS || depthwise {
            ChannelSplit::None
        } else if g.groups == 1 {
            ChannelSplit::Panels
        } else {
            ChannelSplit::Groups
        }
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
    // Units: panels of 8 output channels, or groups.
    let (units, unit_c) = match split {
        ChannelSplit::Panels => (g.out_c.div_ceil(PANEL), PANEL),
        ChannelSplit::Groups => (g.groups, g.out_c / g.groups.max(1)),
        ChannelSplit::None => (1, g.out_c),
    };
    let per_part = units.div_ceil(pool.threads().min(units).max(1));
    if units <= 1 || per_part >= units || out_hw == 0 || unit_c == 0 {
        return f(g, x, w, epi, y);
    }
    let in_hw = g.in_h * g.in_w;
    let icg = g.in_c / g.groups;
    pool.for_each_chunk(y, per_part * unit_c * out_hw, &|part, yp| {
        let o0 = part * per_part * unit_c;
        let oc = yp.len() / out_hw;
        let bias = epi.bias.map(|b| &b[o0..o0 + oc]);
        let epi = Epilogue {
            bias,
            activation: epi.activation,
        };
        match split {
            ChannelSplit::Panels => {
                // Panel8: `ceil(oc / 8)` panels of `8 * in_c` values from panel `o0 / 8`.
                let wp = &w[o0 * g.in_c..(o0 + oc.div_ceil(PANEL) * PANEL) * g.in_c];
                f(&ConvGeom { out_c: oc, ..*g }, x, wp, &epi, yp);
            }
            _ => {
                let (g0, gn) = (o0 / unit_c, oc / unit_c);
                let per_out = icg * g.kernel[0] * g.kernel[1];
                let sub = ConvGeom {
                    in_c: gn * icg,
                    out_c: oc,
                    groups: gn,
                    ..*g
                };
                let xg = &x[g0 * icg * in_hw..(g0 + gn) * icg * in_hw];
                let wg = &w[o0 * per_out..(o0 + oc) * per_out];
                f(&sub, xg, wg, &epi, yp);
            }
        }
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
    let scratch_per_part = scratch.len() / parts;
    // Each part's output rows and scratch go to exactly one part, through its own
    // (uncontended) mutex.
    let mut slots: [PartSlot; MAX_THREADS] = [const { Mutex::new(None) }; MAX_THREADS];
    let (mut y_rest, mut s_rest) = (y, scratch);
    for slot in slots.iter_mut().take(parts) {
        let rows = (per_part * w.block).min(y_rest.len() / out_hw);
        let (yp, yr) = std::mem::take(&mut y_rest).split_at_mut(rows * out_hw);
        let (sp, sr) = std::mem::take(&mut s_rest).split_at_mut(scratch_per_part);
        (y_rest, s_rest) = (yr, sr);
        *slot.get_mut().unwrap_or_else(PoisonError::into_inner) = Some((yp, sp));
    }
    pool.run(parts, &|p| {
        let taken = slots[p]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((yp, sp)) = taken {
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
            let epi = Epilogue {
                bias: epi.bias.map(|b| &b[o0..o0 + rows]),
                activation: epi.activation,
            };
            f(&part, x, &epi, yp, sp);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::*;
    use crate::kernels::conv1x1::reference::geom;
    use crate::kernels::{Isa, KernelTable};
    use prunus_format::Activation;
    use prunus_format::layout::pack_panel8;

    /// Split runs equal one call bit for bit, for every ISA and thread count.
    fn check(sizes: (usize, usize, usize, usize), groups: usize) {
        let g = geom(sizes, [1, 1], [0; 4], groups);
        let split = ChannelSplit::for_pointwise(&g);
        assert_ne!(split, ChannelSplit::None, "case too small to split");
        let mut r = rng(9);
        let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
        let w_rm = fill(&mut r, g.out_c * g.in_c / groups);
        let w = if groups == 1 {
            pack_panel8(&w_rm, g.out_c, g.in_c)
        } else {
            w_rm
        };
        let bias = fill(&mut r, g.out_c);
        let epi = Epilogue {
            bias: Some(&bias),
            activation: Activation::HardSwish,
        };
        for &isa in Isa::available() {
            let t = KernelTable::for_isa(isa);
            let f = if groups == 1 {
                t.conv1x1
            } else {
                t.group_conv1x1
            };
            let mut want = vec![f32::NAN; g.out_c * g.out_h * g.out_w];
            f(&g, &x, &w, &epi, &mut want);
            for threads in [2, 3, 4, 7] {
                let pool = ThreadPool::new(threads);
                let mut got = vec![f32::NAN; want.len()];
                conv_split(&pool, split, f, &g, &x, &w, &epi, &mut got);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?}, {threads} threads, groups {groups}");
            }
        }
    }

    #[test]
    fn pointwise_split_is_bitwise_identical() {
        // 45 channels: 6 panels, the last partial; 3 threads get 2 panels each.
        check((96, 45, 23, 21), 1);
    }

    #[test]
    fn grouped_split_is_bitwise_identical() {
        // ShuffleNet-like: 3 groups of 20 output channels; 7 groups for uneven parts.
        check((240, 60, 28, 28), 3);
        check((112, 84, 56, 40), 7);
    }

    #[test]
    fn small_and_other_convolutions_do_not_split() {
        let small = geom((8, 8, 4, 4), [1, 1], [0; 4], 1);
        assert_eq!(ChannelSplit::for_pointwise(&small), ChannelSplit::None);
        let dw = geom((512, 512, 64, 64), [1, 1], [0; 4], 512);
        assert_eq!(ChannelSplit::for_pointwise(&dw), ChannelSplit::None);
    }
}
