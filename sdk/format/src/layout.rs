//! Weight layouts: which layout each op's weights use, and packing to and from them.
//!
//! Kernels of every ISA read the stored layout in place, so the layout is chosen per op
//! (never per ISA): 1x1 convolutions and Gemm store `[O, I]` in panels of 8 output rows
//! (two 4-lane NEON vectors or one 8-lane AVX vector per input channel), everything else is
//! row-major.

use crate::graph::{Graph, Layout, Op, WeightId};

/// Rows per panel of [`Layout::Panel8`].
pub const PANEL: usize = 8;

/// The layout the kernels read for each weight of `graph`, from the ops that use it.
/// A weight used by ops that want different layouts gets `None` at that index.
pub fn layouts_by_use(graph: &Graph) -> Vec<Option<Layout>> {
    let mut out: Vec<Option<Option<Layout>>> = vec![None; graph.weights.len()];
    let mut want = |id: WeightId, layout: Layout| {
        if let Some(slot) = out.get_mut(id as usize) {
            *slot = match *slot {
                None => Some(Some(layout)),
                Some(Some(l)) if l == layout => Some(Some(l)),
                Some(_) => Some(None),
            };
        }
    };
    for node in &graph.nodes {
        match &node.op {
            Op::Conv(c) => {
                let panel = c.kernel == [1, 1] && c.groups == 1;
                want(
                    c.weight,
                    if panel {
                        Layout::Panel8
                    } else {
                        Layout::RowMajor
                    },
                );
                if let Some(b) = c.bias {
                    want(b, Layout::RowMajor);
                }
            }
            Op::Gemm { weight, bias, .. } => {
                want(*weight, Layout::Panel8);
                if let Some(b) = bias {
                    want(*b, Layout::RowMajor);
                }
            }
            other => other
                .weight_ids()
                .into_iter()
                .for_each(|id| want(id, Layout::RowMajor)),
        }
    }
    out.into_iter()
        .map(|slot| slot.unwrap_or(Some(Layout::RowMajor)))
        .collect()
}

/// `(rows, cols)` of a matrix weight: `[O, I]` or `[O, I, 1, 1]`.
pub fn matrix_dims(shape: &[u32]) -> Option<(usize, usize)> {
    match shape {
        [o, i] | [o, i, 1, 1] => Some((*o as usize, *i as usize)),
        _ => None,
    }
}

/// Number of stored elements of a weight with this shape and layout (`None` if the layout
/// does not apply to the shape, or the count overflows `usize`, as it can on 32-bit targets).
pub fn stored_len(shape: &[u32], layout: Layout) -> Option<usize> {
    match layout {
        Layout::RowMajor => shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize)),
        Layout::Panel8 => matrix_dims(shape)
            .and_then(|(o, i)| o.div_ceil(PANEL).checked_mul(PANEL)?.checked_mul(i)),
    }
}

/// Packs a row-major `[rows, cols]` matrix into [`Layout::Panel8`].
pub fn pack_panel8(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows.div_ceil(PANEL) * PANEL * cols];
    for (r, row) in data.chunks_exact(cols).take(rows).enumerate() {
        let panel = &mut out[(r / PANEL) * PANEL * cols..];
        for (c, &v) in row.iter().enumerate() {
            panel[c * PANEL + r % PANEL] = v;
        }
    }
    out
}

/// Unpacks [`Layout::Panel8`] back to a row-major `[rows, cols]` matrix.
pub fn unpack_panel8(packed: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows * cols];
    for (r, row) in out.chunks_exact_mut(cols).enumerate() {
        let panel = &packed[(r / PANEL) * PANEL * cols..];
        for (c, v) in row.iter_mut().enumerate() {
            *v = panel[c * PANEL + r % PANEL];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn panel8_round_trips(rows in 1usize..40, cols in 1usize..20) {
            let data: Vec<f32> = (0..rows * cols).map(|v| v as f32 + 1.0).collect();
            let packed = pack_panel8(&data, rows, cols);
            prop_assert_eq!(packed.len(), stored_len(&[rows as u32, cols as u32], Layout::Panel8).unwrap());
            for r in 0..rows {
                for c in 0..cols {
                    prop_assert_eq!(packed[(r / 8) * 8 * cols + c * 8 + r % 8], data[r * cols + c]);
                }
            }
            prop_assert_eq!(unpack_panel8(&packed, rows, cols), data);
            // padding rows of the last panel are zero
            let padded = packed.iter().filter(|&&v| v == 0.0).count();
            prop_assert_eq!(padded, (rows.div_ceil(PANEL) * PANEL - rows) * cols);
        }
    }
}
