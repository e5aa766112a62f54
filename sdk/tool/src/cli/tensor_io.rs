//! Reading and writing tensors: `.npy` (f32, any shape) and raw little-endian f32.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// A tensor read from a file: its shape (if the file has one) and values.
pub struct LoadedTensor {
    /// Shape from the `.npy` header; `None` for raw files.
    pub shape: Option<Vec<u64>>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

/// Reads an `.npy` f32 array, or a raw little-endian f32 file (any other content).
pub fn read_tensor(path: &Path) -> Result<LoadedTensor> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(b"\x93NUMPY") {
        let npy = npyz::NpyFile::new(&bytes[..])
            .with_context(|| format!("{}: bad .npy header", path.display()))?;
        let shape = npy.shape().to_vec();
        let data: Vec<f32> = npy
            .into_vec()
            .with_context(|| format!("{}: expected a float32 .npy array", path.display()))?;
        return Ok(LoadedTensor {
            shape: Some(shape),
            data,
        });
    }
    if bytes.len() % 4 != 0 {
        bail!(
            "{}: {} bytes is not a whole number of f32 values (raw input must be little-endian f32, or .npy)",
            path.display(),
            bytes.len()
        );
    }
    let data = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(LoadedTensor { shape: None, data })
}

/// `.npy` bytes of an f32 array with `shape`.
pub fn npy_bytes(shape: &[u64], data: &[f32]) -> Result<Vec<u8>> {
    use npyz::WriterBuilder;
    let mut out = Vec::new();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut out)
        .begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()?;
    Ok(out)
}

/// Raw little-endian f32 bytes.
pub fn raw_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `data` as `.npy` if the path ends in `.npy`, else as raw f32, atomically.
pub fn write_tensor(path: &Path, shape: &[u64], data: &[f32], inputs: &[&Path]) -> Result<()> {
    let bytes = if path.extension().is_some_and(|e| e == "npy") {
        npy_bytes(shape, data)?
    } else {
        raw_bytes(data)
    };
    prunus_tool::atomic::write_atomic(path, &bytes, inputs)?;
    Ok(())
}

/// A seeded N(0, 1) tensor.
pub fn random_tensor(len: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect()
}
