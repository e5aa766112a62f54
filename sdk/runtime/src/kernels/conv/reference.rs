//! Naive convolution (ONNX Conv semantics) and the shared case runner for the convolution
//! kernels' property tests.

use crate::kernels::activation::test_support::*;
use crate::kernels::{ConvFn, ConvGeom, Epilogue};
use proptest::test_runner::TestCaseError;
use prunus_format::Activation;

/// Direct definition of a grouped, strided, padded, dilated convolution (ONNX Conv),
/// summed in f64: taps outside the input read zero.
pub(crate) fn naive(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let icpg = g.in_c / g.groups;
    let ocpg = g.out_c / g.groups;
    let [kh, kw] = g.kernel;
    let mut y = vec![0.0; g.out_c * g.out_h * g.out_w];
    for o in 0..g.out_c {
        let grp = o / ocpg;
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let mut s = 0.0f64;
                for i in 0..icpg {
                    let ic = grp * icpg + i;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                - g.pads[0] as isize;
                            let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                - g.pads[1] as isize;
                            if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                                continue;
                            }
                            let xv = x[(ic * g.in_h + iy as usize) * g.in_w + ix as usize];
                            let wv = w[((o * icpg + i) * kh + ky) * kw + kx];
                            s += xv as f64 * wv as f64;
                        }
                    }
                }
                let b = bias.map_or(0.0, |b| b[o]);
                y[(o * g.out_h + oy) * g.out_w + ox] = act.apply(s as f32 + b);
            }
        }
    }
    y
}

/// Shape parameters of one test case (`in_c = groups * icpg`, `out_c = groups * ocpg`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Case {
    pub groups: usize,
    pub icpg: usize,
    pub ocpg: usize,
    pub size: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pads: [usize; 4],
    pub dilation: [usize; 2],
}

impl Case {
    /// The geometry, growing the input where the dilated kernel would not fit at all.
    pub(crate) fn geom(self) -> ConvGeom {
        let dim = |axis: usize| {
            let eff = (self.kernel[axis] - 1) * self.dilation[axis] + 1;
            let pads = self.pads[axis] + self.pads[axis + 2];
            let input = self.size[axis].max(eff.saturating_sub(pads));
            (input, (input + pads - eff) / self.stride[axis] + 1)
        };
        let ((in_h, out_h), (in_w, out_w)) = (dim(0), dim(1));
        ConvGeom {
            in_c: self.groups * self.icpg,
            in_h,
            in_w,
            out_c: self.groups * self.ocpg,
            out_h,
            out_w,
            kernel: self.kernel,
            stride: self.stride,
            pads: self.pads,
            dilation: self.dilation,
            groups: self.groups,
        }
    }
}

/// Checks `kernel` against [`naive`] on one random instance of `case`.
pub(crate) fn run(
    kernel: ConvFn,
    case: Case,
    act: Activation,
    with_bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    run_each(&[("", kernel)], case, act, with_bias, seed)
}

/// Checks each named kernel against [`naive`] on the same random instance of `case`.
pub(crate) fn run_each(
    kernels: &[(&str, ConvFn)],
    case: Case,
    act: Activation,
    with_bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let g = case.geom();
    let mut r = rng(seed);
    let x = fill(&mut r, g.in_c * g.in_h * g.in_w);
    let w = fill(&mut r, g.out_c * case.icpg * g.kernel[0] * g.kernel[1]);
    let bias = fill(&mut r, g.out_c);
    let bias = with_bias.then_some(&bias[..]);
    let want = naive(&g, &x, &w, bias, act);
    let epi = Epilogue::new(bias, act);
    for (name, kernel) in kernels {
        let mut y = vec![f32::NAN; want.len()];
        kernel(&g, &x, &w, &epi, &mut y);
        assert_close(&y, &want).map_err(|e| TestCaseError::fail(format!("{name} {g:?}: {e}")))?;
    }
    Ok(())
}

/// Calls the generic function `$f(token)` for every [`Simd`](crate::kernels::simd::Simd)
/// implementation this CPU supports.
macro_rules! for_each_simd {
    ($f:ident) => {{
        #[cfg(target_arch = "x86_64")]
        {
            use $crate::kernels::simd::{Avx2, Avx512, Simd};
            if let Some(s) = Avx2::detect() {
                $f(s);
            }
            if let Some(s) = Avx512::detect() {
                $f(s);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            use $crate::kernels::simd::{Neon, Simd};
            if let Some(s) = Neon::detect() {
                $f(s);
            }
        }
    }};
}
pub(crate) use for_each_simd;
