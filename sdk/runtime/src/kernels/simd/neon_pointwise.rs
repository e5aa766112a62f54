//! The NEON pointwise micro-kernel in assembly: an 8 (output channels) x 12 (pixels)
//! tile of `Y = W X` over all `K` input channels, on one [`Panel8`] panel, with its
//! epilogue (bias, residual, activation) and store.
//!
//! From intrinsics LLVM loads each channel's 12 pixels with `ldp` + `ldr` at an address it
//! recomputes per channel (the channels are planes apart, which `ldp` cannot post-index
//! by), and walks four pointers: 30 instructions per 24 FMAs. Here each channel is one
//! `ld1 {v0-v2}` post-indexed by the plane stride, and the weights of two channels one
//! `ld1 {v4-v7}` post-indexed by 64 bytes, four channels per loop iteration: 104
//! instructions per 96 FMAs (27 per 24 with an `ldp` of each channel's weights and two
//! channels per iteration; MobileNetV2 110.7 -> 108.3 M instructions per inference). The
//! first channel multiplies (`fmul`), so the accumulators need no zeroing, as in the
//! intrinsics kernel; it and the `(K - 1) % 4` after it load their weights alone.
//!
//! The epilogue is in the same block: handed back to Rust, the 24 accumulators went
//! through the stack (the epilogue's bias, activation constants and row loop need more
//! than the 8 free registers), about 250 instructions per tile, as many as the loop
//! itself over 16 channels. Here a tile's epilogue is 33 (bias; none without) + 48 (clamp; 120 for
//! HardSwish, 24 for Relu, and 2 splats of its constants; none without activation) + 8 stores, plus 32 with a residual. Each step
//! rounds as [`VecActivation`](super::VecActivation) and the generic tile's epilogue
//! do, so the results are the same bits.
//!
//! [`Panel8`]: prunus_format::Layout::Panel8

use core::arch::asm;

use prunus_format::layout::PANEL;

use super::{PanelActivation, PanelEpilogue};

/// One channel's products: its 12 pixels loaded, then `$op` (`fmul` or `fmla`) into the
/// 24 accumulators `v8..v31` (row `r`, vector `v` in `v(8 + 3r + v)`) by the lanes of its
/// 8 weights in `$wa`, `$wb` (by-element operands must be in `v0..v15`).
macro_rules! products {
    ($op:literal, $wa:literal, $wb:literal) => {
        concat!(
            "ld1 {{v0.4s, v1.4s, v2.4s}}, [{x}], {stride}\n",
            $op,
            " v8.4s, v0.4s, ",
            $wa,
            ".s[0]\n",
            $op,
            " v9.4s, v1.4s, ",
            $wa,
            ".s[0]\n",
            $op,
            " v10.4s, v2.4s, ",
            $wa,
            ".s[0]\n",
            $op,
            " v11.4s, v0.4s, ",
            $wa,
            ".s[1]\n",
            $op,
            " v12.4s, v1.4s, ",
            $wa,
            ".s[1]\n",
            $op,
            " v13.4s, v2.4s, ",
            $wa,
            ".s[1]\n",
            $op,
            " v14.4s, v0.4s, ",
            $wa,
            ".s[2]\n",
            $op,
            " v15.4s, v1.4s, ",
            $wa,
            ".s[2]\n",
            $op,
            " v16.4s, v2.4s, ",
            $wa,
            ".s[2]\n",
            $op,
            " v17.4s, v0.4s, ",
            $wa,
            ".s[3]\n",
            $op,
            " v18.4s, v1.4s, ",
            $wa,
            ".s[3]\n",
            $op,
            " v19.4s, v2.4s, ",
            $wa,
            ".s[3]\n",
            $op,
            " v20.4s, v0.4s, ",
            $wb,
            ".s[0]\n",
            $op,
            " v21.4s, v1.4s, ",
            $wb,
            ".s[0]\n",
            $op,
            " v22.4s, v2.4s, ",
            $wb,
            ".s[0]\n",
            $op,
            " v23.4s, v0.4s, ",
            $wb,
            ".s[1]\n",
            $op,
            " v24.4s, v1.4s, ",
            $wb,
            ".s[1]\n",
            $op,
            " v25.4s, v2.4s, ",
            $wb,
            ".s[1]\n",
            $op,
            " v26.4s, v0.4s, ",
            $wb,
            ".s[2]\n",
            $op,
            " v27.4s, v1.4s, ",
            $wb,
            ".s[2]\n",
            $op,
            " v28.4s, v2.4s, ",
            $wb,
            ".s[2]\n",
            $op,
            " v29.4s, v0.4s, ",
            $wb,
            ".s[3]\n",
            $op,
            " v30.4s, v1.4s, ",
            $wb,
            ".s[3]\n",
            $op,
            " v31.4s, v2.4s, ",
            $wb,
            ".s[3]\n",
        )
    };
}

/// One channel: its 8 weights (`v4`, `v5`), then its [`products!`].
macro_rules! channel {
    ($op:literal) => {
        concat!("ldp q4, q5, [{w}], #32\n", products!($op, "v4", "v5"))
    };
}

/// Four channels: the weights of two at a time in `v4..v7`.
macro_rules! four_channels {
    () => {
        concat!(
            "ld1 {{v4.4s, v5.4s, v6.4s, v7.4s}}, [{w}], #64\n",
            products!("fmla", "v4", "v5"),
            products!("fmla", "v6", "v7"),
            "ld1 {{v4.4s, v5.4s, v6.4s, v7.4s}}, [{w}], #64\n",
            products!("fmla", "v4", "v5"),
            products!("fmla", "v6", "v7"),
        )
    };
}

/// Row `r`'s three accumulators `v(8 + 3r) ..`, each as `$each!(reg)`.
macro_rules! each_acc {
    ($each:ident) => {
        concat!(
            $each!("v8"),
            $each!("v9"),
            $each!("v10"),
            $each!("v11"),
            $each!("v12"),
            $each!("v13"),
            $each!("v14"),
            $each!("v15"),
            $each!("v16"),
            $each!("v17"),
            $each!("v18"),
            $each!("v19"),
            $each!("v20"),
            $each!("v21"),
            $each!("v22"),
            $each!("v23"),
            $each!("v24"),
            $each!("v25"),
            $each!("v26"),
            $each!("v27"),
            $each!("v28"),
            $each!("v29"),
            $each!("v30"),
            $each!("v31"),
        )
    };
}

/// `$row!(lane, a, b, c)` for each row: the bias lane (`v4.s[0]` .. `v5.s[3]`) and the
/// row's three accumulators.
macro_rules! each_row {
    ($row:ident) => {
        concat!(
            $row!("v4.s[0]", "v8", "v9", "v10"),
            $row!("v4.s[1]", "v11", "v12", "v13"),
            $row!("v4.s[2]", "v14", "v15", "v16"),
            $row!("v4.s[3]", "v17", "v18", "v19"),
            $row!("v5.s[0]", "v20", "v21", "v22"),
            $row!("v5.s[1]", "v23", "v24", "v25"),
            $row!("v5.s[2]", "v26", "v27", "v28"),
            $row!("v5.s[3]", "v29", "v30", "v31"),
        )
    };
}

/// Adds the row's bias (lane `$lane`, splatted into `v3`).
macro_rules! add_bias {
    ($lane:literal, $a:literal, $b:literal, $c:literal) => {
        concat!(
            "dup v3.4s, ",
            $lane,
            "\n",
            "fadd ",
            $a,
            ".4s, ",
            $a,
            ".4s, v3.4s\n",
            "fadd ",
            $b,
            ".4s, ",
            $b,
            ".4s, v3.4s\n",
            "fadd ",
            $c,
            ".4s, ",
            $c,
            ".4s, v3.4s\n",
        )
    };
}

/// Adds the row's 12 residual values (the next plane of `{res}`).
macro_rules! add_residual {
    ($lane:literal, $a:literal, $b:literal, $c:literal) => {
        concat!(
            "ld1 {{v0.4s, v1.4s, v2.4s}}, [{res}], {stride}\n",
            "fadd ",
            $a,
            ".4s, ",
            $a,
            ".4s, v0.4s\n",
            "fadd ",
            $b,
            ".4s, ",
            $b,
            ".4s, v1.4s\n",
            "fadd ",
            $c,
            ".4s, ",
            $c,
            ".4s, v2.4s\n",
        )
    };
}

/// Stores the row's 12 values (the next plane of `{y}`).
macro_rules! store_row {
    ($lane:literal, $a:literal, $b:literal, $c:literal) => {
        concat!(
            "st1 {{",
            $a,
            ".4s, ",
            $b,
            ".4s, ",
            $c,
            ".4s}}, [{y}], {stride}\n"
        )
    };
}

/// `min(max(v, lo), hi)` with `lo` in `v6`, `hi` in `v7` (NaN-ignoring, like
/// [`Simd::max`](super::Simd::max)).
macro_rules! clamp {
    ($v:literal) => {
        concat!(
            "fmaxnm ",
            $v,
            ".4s, ",
            $v,
            ".4s, v6.4s\n",
            "fminnm ",
            $v,
            ".4s, ",
            $v,
            ".4s, v7.4s\n",
        )
    };
}

/// `max(v, 0)` with 0 in `v6` (NaN-ignoring).
macro_rules! floor {
    ($v:literal) => {
        concat!("fmaxnm ", $v, ".4s, ", $v, ".4s, v6.4s\n")
    };
}

/// `v * min(max(1/2 + v/6, 0), 1)` with 1/6 in `v6`, 1/2 in `v7`, 0 in `v4`, 1 in `v5`.
macro_rules! hard_swish {
    ($v:literal) => {
        concat!(
            "mov v3.16b, v7.16b\n",
            "fmla v3.4s, ",
            $v,
            ".4s, v6.4s\n",
            "fmaxnm v3.4s, v3.4s, v4.4s\n",
            "fminnm v3.4s, v3.4s, v5.4s\n",
            "fmul ",
            $v,
            ".4s, ",
            $v,
            ".4s, v3.4s\n",
        )
    };
}

/// Computes, for the 8 rows `r` of one panel, `y[r * plane + col ..][..12] =
/// act(sum_k w[k][r] * x[k * plane + col ..][..12] + bias[r] + residual[r * plane + col
/// ..][..12])` over the `K = w.len()` channels of `x` (planes of `plane` values). Panics
/// unless `K > 0`, `col + 12 <= plane`, `x` holds `K` planes and `y` (and the residual) 8.
#[inline(always)]
pub fn panel_tile_8x12(
    x: &[f32],
    plane: usize,
    col: usize,
    w: &[[f32; PANEL]],
    epi: &PanelEpilogue,
    y: &mut [f32],
) {
    let k = w.len();
    assert!(
        k > 0
            && col + 12 <= plane
            && x.len() >= k * plane
            && y.len() >= PANEL * plane
            && epi.residual.is_none_or(|r| r.len() >= PANEL * plane),
        "panel_tile_8x12: pixels or channels out of range"
    );
    let xp = x[col..].as_ptr();
    let wp = w.as_ptr().cast::<f32>();
    let yp = y[col..].as_mut_ptr();
    let res = epi
        .residual
        .map_or(core::ptr::null(), |r| r[col..].as_ptr());
    let stride = plane * 4;
    let (mode, c6, c7) = match epi.act {
        PanelActivation::None => (0usize, 0.0f32, 0.0f32),
        PanelActivation::Relu => (1, 0.0, 0.0),
        PanelActivation::Clamp { lo, hi } => (2, lo, hi),
        PanelActivation::HardSwish => (3, 1.0 / 6.0, 0.5),
    };
    // SAFETY: the loop reads channel `i < K` at `col + i * plane .. + 12`, inside `x`
    // (checked above), and the `K` columns of 8 weights of `w`; the epilogue reads the 8
    // biases (when not null) and, when `res` is not null, row `r < 8` of the residual at
    // `col + r * plane .. + 12`, and writes the same range of `y` (both checked above). It
    // writes only the named registers, the pointers and count given as in-out operands,
    // and `y`, and touches no stack.
    unsafe {
        asm!(
            channel!("fmul"),
            "cbz {singles}, 8f",
            "7:",
            channel!("fmla"),
            "subs {singles}, {singles}, #1",
            "b.ne 7b",
            "8:",
            "cbz {quads}, 3f",
            "9:",
            four_channels!(),
            "subs {quads}, {quads}, #1",
            "b.ne 9b",
            "3:",
            "cbz {bias}, 10f",
            "ldp q4, q5, [{bias}]",
            each_row!(add_bias),
            "10:",
            "cbz {res}, 4f",
            each_row!(add_residual),
            "4:",
            "cbz {mode}, 6f",
            "dup v6.4s, {c6:w}",
            "dup v7.4s, {c7:w}",
            "cmp {mode}, #2",
            "b.hi 5f",
            "b.ne 11f",
            each_acc!(clamp),
            "b 6f",
            "11:",
            each_acc!(floor),
            "b 6f",
            "5:",
            "movi v4.2d, #0",
            "fmov v5.4s, #1.0",
            each_acc!(hard_swish),
            "6:",
            each_row!(store_row),
            x = inout(reg) xp => _,
            w = inout(reg) wp => _,
            singles = inout(reg) (k - 1) % 4 => _,
            quads = inout(reg) (k - 1) / 4 => _,
            res = inout(reg) res => _,
            y = inout(reg) yp => _,
            bias = in(reg) epi.bias.map_or(core::ptr::null(), |b| b.as_ptr()),
            mode = in(reg) mode,
            stride = in(reg) stride,
            c6 = in(reg) c6.to_bits(),
            c7 = in(reg) c7.to_bits(),
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _,
            out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _,
            out("v28") _, out("v29") _, out("v30") _, out("v31") _,
            options(nostack),
        );
    }
}
