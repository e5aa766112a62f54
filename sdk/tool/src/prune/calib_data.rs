//! Calibration images stored as `uint8` `N × H × W × C` `.npy` (what image pipelines and
//! `numpy.stack` of decoded crops produce) turned into the model's input with a
//! preprocessing spec: `x / scale`, minus a per-channel mean, divided by a per-channel
//! std, optionally RGB → BGR, then NHWC → NCHW. The images must already have the model's
//! spatial size (resize and crop beforehand).
//!
//! A spec is `imagenet` (scale 255, torchvision's ImageNet mean and std, RGB) or a comma
//! list of `scale=S`, `mean=A:B:C`, `std=A:B:C` and `bgr`, e.g.
//! `scale=255,mean=0.5:0.5:0.5,std=0.5:0.5:0.5`.

use std::path::Path;

use super::PruneError;
use super::calibrate::Calibration;

/// How `uint8` pixels become model inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Pixels are divided by this first.
    pub scale: f32,
    /// Per-channel mean subtracted after scaling (one value: every channel).
    pub mean: Vec<f32>,
    /// Per-channel std divided by after the mean (one value: every channel).
    pub std: Vec<f32>,
    /// Reverse the channel order (RGB data, BGR model).
    pub bgr: bool,
}

impl Preprocess {
    /// torchvision's ImageNet normalization.
    pub fn imagenet() -> Self {
        Preprocess {
            scale: 255.0,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
            bgr: false,
        }
    }

    /// Parses a spec (see the module docs).
    pub fn parse(spec: &str) -> Result<Self, PruneError> {
        if spec == "imagenet" {
            return Ok(Self::imagenet());
        }
        let bad =
            |reason: String| PruneError::Calibration(format!("preprocess '{spec}': {reason}"));
        let list = |v: &str| -> Result<Vec<f32>, PruneError> {
            v.split(':')
                .map(|x| x.parse::<f32>().map_err(|e| bad(format!("'{x}': {e}"))))
                .collect()
        };
        let mut p = Preprocess {
            scale: 1.0,
            mean: vec![0.0],
            std: vec![1.0],
            bgr: false,
        };
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some(("scale", v)) => {
                    p.scale = v.parse().map_err(|e| bad(format!("scale '{v}': {e}")))?
                }
                Some(("mean", v)) => p.mean = list(v)?,
                Some(("std", v)) => p.std = list(v)?,
                None if item == "bgr" => p.bgr = true,
                _ => {
                    return Err(bad(format!(
                        "unknown item '{item}' (scale=, mean=, std=, bgr)"
                    )));
                }
            }
        }
        if p.scale == 0.0
            || !p.scale.is_finite()
            || p.std.iter().any(|&s| s == 0.0 || !s.is_finite())
        {
            return Err(bad("scale and std must be finite and nonzero".into()));
        }
        Ok(p)
    }

    /// Converts `N × H × W × C` pixels to an `N × C × H × W` batch.
    pub fn apply(&self, shape: &[usize], pixels: &[u8]) -> Result<Calibration, PruneError> {
        let [n, h, w, c] = shape else {
            return Err(PruneError::Calibration(format!(
                "expected uint8 N x H x W x C images, got shape {shape:?}"
            )));
        };
        let (n, h, w, c) = (*n, *h, *w, *c);
        for (what, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.len() != 1 && v.len() != c {
                return Err(PruneError::Calibration(format!(
                    "{} {what} values for {c} channels",
                    v.len()
                )));
            }
        }
        if pixels.len() != n * h * w * c {
            return Err(PruneError::Calibration(
                "pixel count does not match the shape".into(),
            ));
        }
        let per = |v: &[f32], ch: usize| v[if v.len() == 1 { 0 } else { ch }];
        let mut out = vec![0.0f32; pixels.len()];
        for img in 0..n {
            for ch in 0..c {
                let src = if self.bgr { c - 1 - ch } else { ch };
                let (m, s) = (per(&self.mean, src), per(&self.std, src));
                let plane = &mut out[(img * c + ch) * h * w..][..h * w];
                for (i, o) in plane.iter_mut().enumerate() {
                    let px = pixels[(img * h * w + i) * c + src] as f32;
                    *o = (px / self.scale - m) / s;
                }
            }
        }
        Calibration::from_batch(&[n, c, h, w], out)
    }
}

/// Reads calibration data: an `N × C × H × W` float32 `.npy` as is, or `uint8`
/// `N × H × W × C` images with `preprocess` (required for them).
pub fn read(path: &Path, preprocess: Option<&Preprocess>) -> Result<Calibration, PruneError> {
    let bad = |reason: String| PruneError::Calibration(format!("{}: {reason}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("not an .npy file: {e}")))?;
    let is_u8 = matches!(npy.dtype(), npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Uint && t.size_field() == 1);
    if !is_u8 {
        return Calibration::read_npy(path);
    }
    let pre = preprocess.ok_or_else(|| {
        bad("uint8 images need a preprocessing spec (e.g. --calib-preprocess imagenet)".into())
    })?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let pixels: Vec<u8> = npy.into_vec().map_err(|e| bad(e.to_string()))?;
    pre.apply(&shape, &pixels).map_err(|e| bad(e.to_string()))
}
