//! Analytic per-channel statistics of activations, used to set the zoo's weights the way a
//! calibrated (folded) BatchNorm would.
//!
//! Every tensor built by [`super::layers::Net`] carries, per channel, the mean and variance
//! it has when the network input is N(0, 1) noise. A convolution's pre-activation statistics
//! follow from its weights (inputs treated as independent); activations, pools and
//! element-wise ops map statistics with a Gaussian model evaluated by quadrature. The
//! statistics do not depend on the spatial size (except global pooling), so the weights of
//! a family are the same at every input resolution.

use std::sync::OnceLock;

use prunus_format::Activation;

/// Per-channel mean and variance of one tensor.
#[derive(Clone, Debug, Default)]
pub(crate) struct Moments {
    /// Per-channel mean.
    pub mean: Vec<f64>,
    /// Per-channel variance.
    pub var: Vec<f64>,
}

impl Moments {
    /// `channels` channels of N(0, 1) data (the network input).
    pub fn standard(channels: usize) -> Self {
        Moments {
            mean: vec![0.0; channels],
            var: vec![1.0; channels],
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Applies `f(mean, var) -> (mean, var)` to every channel.
    pub fn map(&self, f: impl Fn(f64, f64) -> (f64, f64)) -> Self {
        let (mean, var) = self.mean.iter().zip(&self.var).map(|(&m, &v)| f(m, v)).unzip();
        Moments { mean, var }
    }

    /// Channels `[start, end)`.
    pub fn slice(&self, start: usize, end: usize) -> Self {
        Moments {
            mean: self.mean[start..end].to_vec(),
            var: self.var[start..end].to_vec(),
        }
    }

    /// The channels of all `parts`, in order.
    pub fn concat<'a>(parts: impl IntoIterator<Item = &'a Moments>) -> Self {
        let mut out = Moments::default();
        for p in parts {
            out.mean.extend_from_slice(&p.mean);
            out.var.extend_from_slice(&p.var);
        }
        out
    }

    /// The channel order of a channel shuffle with `groups` groups.
    pub fn shuffle(&self, groups: usize) -> Self {
        let per = self.channels() / groups;
        let order = (0..self.channels()).map(|j| (j % groups) * per + j / groups);
        let (mean, var) = order.map(|i| (self.mean[i], self.var[i])).unzip();
        Moments { mean, var }
    }
}

/// Quadrature of the standard normal: `(z, weight)` pairs whose weights sum to 1.
fn grid() -> &'static [(f64, f64)] {
    static GRID: OnceLock<Vec<(f64, f64)>> = OnceLock::new();
    GRID.get_or_init(|| {
        let step = 0.02;
        let points: Vec<(f64, f64)> = (-500..=500)
            .map(|i| {
                let z = i as f64 * step;
                (z, (-0.5 * z * z).exp())
            })
            .collect();
        let total: f64 = points.iter().map(|p| p.1).sum();
        points.into_iter().map(|(z, w)| (z, w / total)).collect()
    })
}

/// Mean and variance of `f(z)` for `z ~ N(mean, var)`.
pub(crate) fn gaussian_map(mean: f64, var: f64, f: impl Fn(f64) -> f64) -> (f64, f64) {
    let sd = var.max(0.0).sqrt();
    let (mut m1, mut m2) = (0.0, 0.0);
    for &(z, w) in grid() {
        let y = f(mean + sd * z);
        m1 += w * y;
        m2 += w * y * y;
    }
    (m1, (m2 - m1 * m1).max(0.0))
}

/// Statistics after `act` of a Gaussian pre-activation with these statistics.
pub(crate) fn activation(act: Activation, mean: f64, var: f64) -> (f64, f64) {
    match act {
        Activation::None => (mean, var),
        _ => gaussian_map(mean, var, |x| act.apply(x as f32) as f64),
    }
}

/// Mean and variance of the maximum of `n` independent N(0, 1) values.
pub(crate) fn max_of_normals(n: usize) -> (f64, f64) {
    let g = grid();
    let mut cdf = 0.0;
    let (mut m1, mut m2) = (0.0, 0.0);
    for &(z, w) in g {
        // P(max in this cell) = F(z + dz)^n - F(z)^n with F the running normal CDF.
        let next = (cdf + w).min(1.0);
        let p = next.powi(n as i32) - cdf.powi(n as i32);
        cdf = next;
        m1 += p * z;
        m2 += p * z * z;
    }
    (m1, (m2 - m1 * m1).max(0.0))
}

/// Per-output-channel `(mean, var)` of `x * W^T` (no bias) for a grouped convolution or
/// Gemm whose row-major weight has `cout` rows of `fan_in = cin / groups * kh * kw`
/// values, with `taps = kh * kw` values per input channel.
pub(crate) fn linear_stats(input: &Moments, weight: &[f32], cout: usize, groups: usize, taps: usize) -> Vec<(f64, f64)> {
    let fan_in = weight.len() / cout.max(1);
    let per_group_out = cout / groups.max(1);
    let per_group_in = fan_in / taps.max(1);
    (0..cout)
        .map(|o| {
            let base = (o / per_group_out.max(1)) * per_group_in;
            let row = &weight[o * fan_in..(o + 1) * fan_in];
            let (mut m, mut v) = (0.0, 0.0);
            for (j, taps_w) in row.chunks(taps.max(1)).enumerate() {
                let (mu, var) = (input.mean[base + j], input.var[base + j]);
                for &w in taps_w {
                    let w = w as f64;
                    m += w * mu;
                    v += w * w * var;
                }
            }
            (m, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_of_standard_normal() {
        let (m, v) = activation(Activation::Relu, 0.0, 1.0);
        // E[relu(z)] = 1/sqrt(2 pi), E[relu(z)^2] = 1/2.
        let exact_m = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
        assert!((m - exact_m).abs() < 1e-4, "{m}");
        assert!((v - (0.5 - exact_m * exact_m)).abs() < 1e-4, "{v}");
    }

    #[test]
    fn max_of_two_normals() {
        // E[max(z1, z2)] = 1/sqrt(pi), Var = 1 - 1/pi.
        let (m, v) = max_of_normals(2);
        assert!((m - 1.0 / std::f64::consts::PI.sqrt()).abs() < 1e-3, "{m}");
        assert!((v - (1.0 - 1.0 / std::f64::consts::PI)).abs() < 1e-3, "{v}");
    }

    #[test]
    fn shuffle_matches_channel_shuffle_order() {
        let m = Moments {
            mean: (0..6).map(f64::from).collect(),
            var: vec![1.0; 6],
        };
        // groups 2: [0 1 2 | 3 4 5] -> 0 3 1 4 2 5
        assert_eq!(m.shuffle(2).mean, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
