//! Naive 1x1 convolution (any stride, padding and groups) for the kernels' property tests.

use crate::kernels::ConvGeom;
use prunus_format::Activation;

/// Direct definition: `y[o, oy, ox] = act(b[o] + sum_i W[o][i] x[g*I_g + i, oy*sh - pt,
/// ox*sw - pl])` with `g` the group of `o`, `W` row-major `[O, I / groups]`; out-of-range
/// input positions contribute zero; summed in f64.
pub(crate) fn naive(
    g: &ConvGeom,
    x: &[f32],
    w_rm: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let icg = g.in_c / g.groups;
    let ocg = g.out_c / g.groups;
    let mut y = vec![0.0; g.out_c * g.out_h * g.out_w];
    for o in 0..g.out_c {
        let grp = o / ocg;
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let iy = (oy * g.stride[0]) as isize - g.pads[0] as isize;
                let ix = (ox * g.stride[1]) as isize - g.pads[1] as isize;
                let mut s = 0.0f64;
                if iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w {
                    for i in 0..icg {
                        let c = grp * icg + i;
                        let xv = x[(c * g.in_h + iy as usize) * g.in_w + ix as usize];
                        s += w_rm[o * icg + i] as f64 * xv as f64;
                    }
                }
                let b = bias.map_or(0.0, |b| b[o]);
                y[(o * g.out_h + oy) * g.out_w + ox] = act.apply(s as f32 + b);
            }
        }
    }
    y
}

/// The geometry of a 1x1 convolution with these sizes, stride, padding and groups.
pub(crate) fn geom(
    (in_c, out_c, in_h, in_w): (usize, usize, usize, usize),
    stride: [usize; 2],
    pads: [usize; 4],
    groups: usize,
) -> ConvGeom {
    ConvGeom {
        in_c,
        in_h,
        in_w,
        out_c,
        out_h: (in_h + pads[0] + pads[2] - 1) / stride[0] + 1,
        out_w: (in_w + pads[1] + pads[3] - 1) / stride[1] + 1,
        kernel: [1, 1],
        stride,
        pads,
        dilation: [1, 1],
        groups,
    }
}
