//! The NEON pointwise micro-kernel in assembly: an 8 (output channels) x 12 (pixels)
//! tile of `Y = W X` over all `K` input channels, on one [`Panel8`] panel.
//!
//! From intrinsics LLVM loads each channel's 12 pixels with `ldp` + `ldr` at an address it
//! recomputes per channel (the channels are planes apart, which `ldp` cannot post-index
//! by), and walks four pointers: 30 instructions per 24 FMAs. Here each channel is one
//! `ld1 {v0-v2}` post-indexed by the plane stride and one `ldp` of the 8 weights
//! post-indexed by 32 bytes, two channels per loop iteration: 27 instructions per 24 FMAs.
//! The first channel multiplies (`fmul`), so the accumulators need no zeroing, as in the
//! intrinsics kernel.
//!
//! [`Panel8`]: prunus_format::Layout::Panel8

use core::arch::aarch64::float32x4_t;
use core::arch::asm;

use prunus_format::layout::PANEL;

/// One channel: its 12 pixels, its 8 weights, then `$op` (`fmul` or `fmla`) into the 24
/// accumulators `v8..v31` (row `r`, vector `v` in `v(8 + 3r + v)`; by-element operands
/// must be in `v0..v15`).
macro_rules! channel {
    ($op:literal) => {
        concat!(
            "ld1 {{v0.4s, v1.4s, v2.4s}}, [{x}], {stride}\n",
            "ldp q4, q5, [{w}], #32\n",
            $op,
            " v8.4s, v0.4s, v4.s[0]\n",
            $op,
            " v9.4s, v1.4s, v4.s[0]\n",
            $op,
            " v10.4s, v2.4s, v4.s[0]\n",
            $op,
            " v11.4s, v0.4s, v4.s[1]\n",
            $op,
            " v12.4s, v1.4s, v4.s[1]\n",
            $op,
            " v13.4s, v2.4s, v4.s[1]\n",
            $op,
            " v14.4s, v0.4s, v4.s[2]\n",
            $op,
            " v15.4s, v1.4s, v4.s[2]\n",
            $op,
            " v16.4s, v2.4s, v4.s[2]\n",
            $op,
            " v17.4s, v0.4s, v4.s[3]\n",
            $op,
            " v18.4s, v1.4s, v4.s[3]\n",
            $op,
            " v19.4s, v2.4s, v4.s[3]\n",
            $op,
            " v20.4s, v0.4s, v5.s[0]\n",
            $op,
            " v21.4s, v1.4s, v5.s[0]\n",
            $op,
            " v22.4s, v2.4s, v5.s[0]\n",
            $op,
            " v23.4s, v0.4s, v5.s[1]\n",
            $op,
            " v24.4s, v1.4s, v5.s[1]\n",
            $op,
            " v25.4s, v2.4s, v5.s[1]\n",
            $op,
            " v26.4s, v0.4s, v5.s[2]\n",
            $op,
            " v27.4s, v1.4s, v5.s[2]\n",
            $op,
            " v28.4s, v2.4s, v5.s[2]\n",
            $op,
            " v29.4s, v0.4s, v5.s[3]\n",
            $op,
            " v30.4s, v1.4s, v5.s[3]\n",
            $op,
            " v31.4s, v2.4s, v5.s[3]\n",
        )
    };
}

/// `acc[r][v] = sum_k w[k][r] * x[k * plane + col + 4v ..][..4]` for the `K = w.len()`
/// channels (planes of `plane` values) of `x`. Panics unless `K > 0`,
/// `col + 12 <= plane` and `x` holds `K` planes.
#[inline(always)]
pub fn panel_tile_8x12(
    x: &[f32],
    plane: usize,
    col: usize,
    w: &[[f32; PANEL]],
) -> [[float32x4_t; 3]; 8] {
    let k = w.len();
    assert!(
        k > 0 && col + 12 <= plane && x.len() >= k * plane,
        "panel_tile_8x12: pixels or channels out of range"
    );
    let xp = x[col..].as_ptr();
    let wp = w.as_ptr().cast::<f32>();
    let stride = plane * 4;
    // SAFETY: all-zero bits are a valid `float32x4_t`; every element is overwritten below.
    let mut a: [float32x4_t; 24] = [unsafe { core::mem::zeroed() }; 24];
    // SAFETY: NEON is baseline on aarch64. The loop reads channel `i < K` at
    // `col + i * plane .. + 12`, inside `x` (checked above), and the `K` columns of 8
    // weights of `w`; it writes only the named registers and the pointers and count
    // given as in-out operands, and touches no stack.
    unsafe {
        asm!(
            channel!("fmul"),
            "subs {left}, {left}, #1",
            "b.eq 3f",
            "tbz {left}, #0, 2f",
            channel!("fmla"),
            "subs {left}, {left}, #1",
            "b.eq 3f",
            "2:",
            channel!("fmla"),
            channel!("fmla"),
            "subs {left}, {left}, #2",
            "b.ne 2b",
            "3:",
            x = inout(reg) xp => _,
            w = inout(reg) wp => _,
            left = inout(reg) k => _,
            stride = in(reg) stride,
            out("v0") _, out("v1") _, out("v2") _, out("v4") _, out("v5") _,
            out("v8") a[0], out("v9") a[1], out("v10") a[2], out("v11") a[3],
            out("v12") a[4], out("v13") a[5], out("v14") a[6], out("v15") a[7],
            out("v16") a[8], out("v17") a[9], out("v18") a[10], out("v19") a[11],
            out("v20") a[12], out("v21") a[13], out("v22") a[14], out("v23") a[15],
            out("v24") a[16], out("v25") a[17], out("v26") a[18], out("v27") a[19],
            out("v28") a[20], out("v29") a[21], out("v30") a[22], out("v31") a[23],
            options(nostack, readonly),
        );
    }
    let mut acc = [[a[0]; 3]; 8];
    for (r, row) in acc.iter_mut().enumerate() {
        row.copy_from_slice(&a[3 * r..3 * r + 3]);
    }
    acc
}
