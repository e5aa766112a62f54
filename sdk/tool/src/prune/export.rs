//! Outputs of pruning besides the `.prunus` file: the pruned ONNX (see
//! [`super::onnx_graph::OnnxGraph::to_bytes`]) and the masks as JSON, keyed by the original
//! weight names, so a model can be fine-tuned elsewhere and imported again.
//!
//! Format `prunus-masks/1`:
//!
//! ```json
//! { "format": "prunus-masks/1", "granularity": "channel",
//!   "weights": { "conv1.weight": { "shape": [32, 16, 3, 3],
//!                                  "kept_out": [0, 2, ...], "kept_in": [1, 3, ...] } },
//!   "tensors": { "relu_3": [0, 2, ...] } }
//! { "format": "prunus-masks/1", "granularity": "unstructured",
//!   "weights": { "conv2.weight": { "shape": [64, 32, 1, 1], "sparsity": 0.5,
//!                                  "mask": "<base64 bits>" } } }
//! ```
//!
//! `kept_in` of a grouped convolution is relative to one group. `mask` is one bit per
//! element of the (unchanged) shape in row-major order, least significant bit first,
//! 1 = kept.

use serde_json::{Map, Value, json};

use super::structured::StructuredResult;
use super::unstructured::Target;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                s.push(B64[(v >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Packs a mask LSB-first.
pub fn pack_bits(mask: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; mask.len().div_ceil(8)];
    for (i, _) in mask.iter().enumerate().filter(|(_, k)| **k) {
        out[i / 8] |= 1 << (i % 8);
    }
    out
}

/// Masks JSON of structured pruning.
pub fn structured_masks(
    result: &StructuredResult,
    original_dims: &dyn Fn(&str) -> Vec<usize>,
) -> Value {
    let mut weights = Map::new();
    let mut names: Vec<&String> = result.weights.keys().collect();
    names.sort();
    for name in names {
        let (out, inp) = &result.weights[name];
        weights.insert(
            name.clone(),
            json!({ "shape": original_dims(name), "kept_out": out, "kept_in": inp }),
        );
    }
    let tensors: std::collections::BTreeMap<&String, &Vec<usize>> = result.kept.iter().collect();
    json!({ "format": "prunus-masks/1", "granularity": "channel", "weights": weights, "tensors": tensors })
}

/// Masks JSON of unstructured / block / N:M pruning.
pub fn unstructured_masks(granularity: &str, pruned: &[(Target, Vec<bool>)]) -> Value {
    let mut weights = Map::new();
    for (t, mask) in pruned {
        let zeros = mask.iter().filter(|k| !**k).count();
        weights.insert(
            t.name.clone(),
            json!({
                "shape": t.dims,
                "sparsity": zeros as f64 / mask.len().max(1) as f64,
                "mask": base64(&pack_bits(mask)),
            }),
        );
    }
    json!({ "format": "prunus-masks/1", "granularity": granularity, "weights": weights })
}
