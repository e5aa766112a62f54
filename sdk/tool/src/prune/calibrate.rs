//! Calibration data through the Prunus runtime: reads an `.npy` batch and measures the mean
//! |activation| of every channel of every tensor the runtime can show (fused chains keep
//! the name of their last tensor, so e.g. a conv → BN → ReLU is measured after the ReLU).

use std::collections::HashMap;
use std::path::Path;

use super::PruneError;
use super::depgraph::DepGraph;
use super::onnx_graph::OnnxGraph;

/// A batch of samples (`N × C × H × W` f32), split into samples.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// Shape of one sample, `[1, C, H, W]`.
    pub sample_shape: Vec<usize>,
    /// Row-major samples.
    pub samples: Vec<Vec<f32>>,
}

impl Calibration {
    /// Reads an `.npy` f32 batch.
    pub fn read_npy(path: &Path) -> Result<Self, PruneError> {
        let bad = |reason: String| PruneError::Calibration(format!("{}: {reason}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let npy =
            npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("not an .npy file: {e}")))?;
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        let data: Vec<f32> = npy
            .into_vec()
            .map_err(|e| bad(format!("expected float32: {e}")))?;
        Self::from_batch(&shape, data).map_err(|e| bad(e.to_string()))
    }

    /// Splits an `N × ...` batch.
    pub fn from_batch(shape: &[usize], data: Vec<f32>) -> Result<Self, PruneError> {
        if shape.len() != 4 || shape[0] == 0 {
            return Err(PruneError::Calibration(format!(
                "expected N x C x H x W, got {shape:?}"
            )));
        }
        let per: usize = shape[1..].iter().product();
        if data.len() != per * shape[0] {
            return Err(PruneError::Calibration(
                "data length does not match the shape".into(),
            ));
        }
        let mut sample_shape = shape.to_vec();
        sample_shape[0] = 1;
        Ok(Calibration {
            sample_shape,
            samples: data.chunks_exact(per).map(<[f32]>::to_vec).collect(),
        })
    }
}

/// Packs ONNX bytes into an aligned `.prunus` buffer (import with BatchNorm folding).
pub fn pack(onnx_bytes: &[u8]) -> Result<prunus::AlignedBytes, PruneError> {
    let ir = crate::onnx::import(onnx_bytes, &Default::default())?;
    let bytes = ir
        .to_bytes(prunus_format::WriteOptions::default())
        .map_err(|e| PruneError::Model(format!("packing: {e}")))?;
    Ok(prunus::AlignedBytes::new(&bytes))
}

/// Mean |activation| per channel of every slot tensor the runtime exposes, over `calib`.
/// `progress(done, total)` is called after each sample.
pub fn activation_means(
    g: &OnnxGraph,
    dep: &DepGraph,
    calib: &Calibration,
    progress: &dyn Fn(u64, u64),
) -> Result<HashMap<String, Vec<f64>>, PruneError> {
    let input = g
        .inputs
        .first()
        .ok_or_else(|| PruneError::Model("no graph input".into()))?;
    if g.shape(input)? != calib.sample_shape.as_slice() {
        return Err(PruneError::Calibration(format!(
            "samples are {:?}, the model input '{input}' is {:?}",
            calib.sample_shape,
            g.shape(input)?
        )));
    }
    let rt = |e: prunus::Error| PruneError::Runtime(e.to_string());
    let packed = pack(&g.to_bytes())?;
    let model = prunus::Model::from_bytes(packed.as_bytes()).map_err(rt)?;
    let mut session = model
        .session(prunus::Options {
            retain: prunus::Retain::All,
            ..Default::default()
        })
        .map_err(rt)?;
    let mut sums: HashMap<String, Vec<f64>> = HashMap::new();
    let total = calib.samples.len() as u64;
    for (k, sample) in calib.samples.iter().enumerate() {
        session.run(&[sample]).map_err(rt)?;
        for t in &dep.tensors {
            let Ok(values) = session.tensor(t) else {
                continue;
            };
            let Some(shape) = g.shapes.get(t) else {
                continue;
            };
            if values.len() != shape.iter().product::<usize>() {
                continue;
            }
            let c = shape[1];
            let hw = values.len() / c.max(1);
            let acc = sums.entry(t.clone()).or_insert_with(|| vec![0.0; c]);
            for (ch, a) in acc.iter_mut().enumerate() {
                *a += values[ch * hw..(ch + 1) * hw]
                    .iter()
                    .map(|v| v.abs() as f64)
                    .sum::<f64>()
                    / hw as f64;
            }
        }
        progress(k as u64 + 1, total);
    }
    let n = total.max(1) as f64;
    sums.values_mut()
        .for_each(|v| v.iter_mut().for_each(|a| *a /= n));
    Ok(sums)
}
