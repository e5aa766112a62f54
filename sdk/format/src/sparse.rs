//! The blocked sparse encoding ([`Encoding::SparseBlocks`]) of a weight matrix.
//!
//! A convolution weight `[O, I/g, kh, kw]` or a Gemm weight `[O, K]` is viewed as a row-major
//! matrix of `O` rows and `cols = I/g * kh * kw` (or `K`) columns. Rows are taken in blocks
//! of `block` (1, 2 or 4) consecutive output channels; a column is stored for a block when
//! any of its rows is non-zero there. The stored bytes are, in the order the sparse kernels
//! read them:
//!
//! | part | type | count |
//! |---|---|---|
//! | values | f32 | `nnz * block`: per stored column, the block's `block` values (rows past `O` in the last block are 0) |
//! | counts | u32 | `ceil(O / block)`: stored columns per block |
//! | deltas | u8, u16 or u32 (`index_bytes`) | `nnz`: per block, the first column index, then the gap to the previous one |
//!
//! `nnz` counts stored columns over all blocks. Column indices depend only on the weight,
//! never on the activation size: the runtime turns them into input offsets once, when a
//! session is created, and checks them there (so opening a file reads no weight pages).

use crate::graph::{Encoding, Graph, Op, WeightId};

/// Output-channel block sizes the sparse kernels implement.
pub const BLOCK_SIZES: [usize; 3] = [1, 2, 4];

/// `(rows, cols)` of the matrix view of a weight shape: `O` and the product of the rest.
pub fn sparse_matrix_dims(shape: &[u32]) -> Option<(usize, usize)> {
    let (&rows, rest) = shape.split_first()?;
    let cols = rest
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d as usize))?;
    Some((rows as usize, cols))
}

/// Stored byte length of a sparse matrix (`None` on overflow).
pub fn sparse_stored_len(
    rows: usize,
    block: usize,
    index_bytes: usize,
    nnz: usize,
) -> Option<usize> {
    let values = nnz.checked_mul(block)?.checked_mul(4)?;
    let counts = rows.div_ceil(block).checked_mul(4)?;
    let deltas = nnz.checked_mul(index_bytes)?;
    values.checked_add(counts)?.checked_add(deltas)
}

/// A weight matrix in the blocked sparse encoding, ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseMatrix {
    /// Output channels per block.
    pub block: usize,
    /// Bytes per stored column delta (1, 2 or 4).
    pub index_bytes: usize,
    /// Stored columns over all blocks.
    pub nnz: usize,
    /// The stored bytes (values, counts, deltas).
    pub bytes: Vec<u8>,
}

impl SparseMatrix {
    /// The encoding tag that describes this matrix.
    pub fn encoding(&self) -> Encoding {
        Encoding::SparseBlocks {
            block: self.block as u8,
            index_bytes: self.index_bytes as u8,
            nnz: self.nnz as u32,
        }
    }
}

/// Encodes a row-major `[rows, cols]` matrix with blocks of `block` output rows. Exact:
/// [`SparseView::to_dense`] gives `data` back bit for bit (zeros of stored columns included).
pub fn encode(data: &[f32], rows: usize, cols: usize, block: usize) -> SparseMatrix {
    assert!(BLOCK_SIZES.contains(&block), "block must be 1, 2 or 4");
    assert_eq!(data.len(), rows * cols, "matrix size");
    let blocks = rows.div_ceil(block);
    let mut values = Vec::new();
    let mut counts = Vec::with_capacity(blocks);
    let mut columns: Vec<Vec<usize>> = Vec::with_capacity(blocks);
    for b in 0..blocks {
        let block_rows = b * block..(b * block + block).min(rows);
        let kept: Vec<usize> = (0..cols)
            .filter(|&c| block_rows.clone().any(|r| data[r * cols + c] != 0.0))
            .collect();
        for &c in &kept {
            for r in b * block..b * block + block {
                values.push(if r < rows { data[r * cols + c] } else { 0.0 });
            }
        }
        counts.push(kept.len() as u32);
        columns.push(kept);
    }
    let deltas: Vec<usize> = columns
        .iter()
        .flat_map(|kept| {
            kept.iter()
                .scan(None, |prev: &mut Option<usize>, &c| {
                    let d = prev.map_or(c, |p| c - p);
                    *prev = Some(c);
                    Some(d)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let widest = deltas.iter().copied().max().unwrap_or(0);
    let index_bytes = if widest <= u8::MAX as usize {
        1
    } else if widest <= u16::MAX as usize {
        2
    } else {
        4
    };
    let nnz = deltas.len();
    let mut bytes =
        Vec::with_capacity(sparse_stored_len(rows, block, index_bytes, nnz).unwrap_or(0));
    values
        .iter()
        .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    counts
        .iter()
        .for_each(|c| bytes.extend_from_slice(&c.to_le_bytes()));
    for d in deltas {
        bytes.extend_from_slice(&(d as u32).to_le_bytes()[..index_bytes]);
    }
    SparseMatrix {
        block,
        index_bytes,
        nnz,
        bytes,
    }
}

/// A stored sparse matrix viewed in place. Construction checks the byte length only;
/// [`SparseView::columns`] checks every index.
#[derive(Clone, Copy, Debug)]
pub struct SparseView<'a> {
    rows: usize,
    cols: usize,
    block: usize,
    index_bytes: usize,
    nnz: usize,
    bytes: &'a [u8],
}

impl<'a> SparseView<'a> {
    /// Views `bytes` as a `[rows, cols]` matrix stored with `encoding`.
    pub fn new(
        bytes: &'a [u8],
        rows: usize,
        cols: usize,
        encoding: Encoding,
    ) -> Result<Self, String> {
        let Encoding::SparseBlocks {
            block,
            index_bytes,
            nnz,
        } = encoding
        else {
            return Err(format!("encoding {encoding:?} is not sparse"));
        };
        let (block, index_bytes, nnz) = (block as usize, index_bytes as usize, nnz as usize);
        if !BLOCK_SIZES.contains(&block) {
            return Err(format!(
                "sparse block of {block} rows (1, 2 or 4 supported)"
            ));
        }
        if ![1, 2, 4].contains(&index_bytes) {
            return Err(format!(
                "sparse index width of {index_bytes} bytes (1, 2 or 4 supported)"
            ));
        }
        let expected = sparse_stored_len(rows, block, index_bytes, nnz)
            .ok_or_else(|| format!("{nnz} stored columns overflow a byte count"))?;
        if expected != bytes.len() {
            return Err(format!(
                "sparse matrix of {rows} rows, block {block}, {nnz} columns, {index_bytes}-byte indices \
                 needs {expected} bytes, has {}",
                bytes.len()
            ));
        }
        Ok(Self {
            rows,
            cols,
            block,
            index_bytes,
            nnz,
            bytes,
        })
    }

    /// Output channels per block.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Stored columns over all blocks.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the matrix.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The stored values: `block` per stored column (as bytes, 4-byte aligned when the
    /// weight is).
    pub fn value_bytes(&self) -> &'a [u8] {
        &self.bytes[..self.nnz * self.block * 4]
    }

    /// Stored columns of each block.
    pub fn counts(&self) -> impl Iterator<Item = usize> + 'a {
        let start = self.nnz * self.block * 4;
        let end = start + self.rows.div_ceil(self.block) * 4;
        self.bytes[start..end]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// The absolute column of every stored column, block after block; checks that the
    /// counts add up to `nnz` and every column is inside the matrix and increasing.
    pub fn columns(&self) -> Result<Vec<u32>, String> {
        let start = self.nnz * self.block * 4 + self.rows.div_ceil(self.block) * 4;
        let w = self.index_bytes;
        let mut deltas = self.bytes[start..].chunks_exact(w).map(|b| {
            let mut le = [0u8; 4];
            le[..w].copy_from_slice(b);
            u32::from_le_bytes(le) as usize
        });
        let mut out = Vec::with_capacity(self.nnz);
        for (b, count) in self.counts().enumerate() {
            if count > self.nnz - out.len() {
                return Err(format!(
                    "block {b} claims {count} columns, only {} remain of {}",
                    self.nnz - out.len(),
                    self.nnz
                ));
            }
            let mut col: Option<usize> = None;
            for _ in 0..count {
                let d = deltas.next().unwrap_or(0);
                let next = match col {
                    None => d,
                    Some(_) if d == 0 => {
                        return Err(format!("block {b} repeats a column"));
                    }
                    Some(c) => c + d,
                };
                if next >= self.cols {
                    return Err(format!(
                        "block {b} reads column {next} of a matrix with {} columns",
                        self.cols
                    ));
                }
                col = Some(next);
                out.push(next as u32);
            }
        }
        if out.len() != self.nnz {
            return Err(format!(
                "block counts add up to {} columns, the encoding says {}",
                out.len(),
                self.nnz
            ));
        }
        Ok(out)
    }

    /// The stored values as f32 (copied; for tools and tests).
    pub fn values(&self) -> Vec<f32> {
        self.value_bytes()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// The dense row-major `[rows, cols]` matrix.
    pub fn to_dense(&self) -> Result<Vec<f32>, String> {
        let columns = self.columns()?;
        let values = self.values();
        let mut out = vec![0.0; self.rows * self.cols];
        let mut k = 0;
        for (b, count) in self.counts().enumerate() {
            for _ in 0..count {
                let c = columns[k] as usize;
                for j in 0..self.block {
                    let r = b * self.block + j;
                    if r < self.rows {
                        out[r * self.cols + c] = values[k * self.block + j];
                    }
                }
                k += 1;
            }
        }
        Ok(out)
    }
}

/// Checks that a sparse weight of `shape` stored in `nbytes` is consistent with `encoding`.
pub(crate) fn check_stored_len(
    shape: &[u32],
    encoding: Encoding,
    nbytes: u64,
) -> Result<(), String> {
    let Encoding::SparseBlocks {
        block,
        index_bytes,
        nnz,
    } = encoding
    else {
        return Err(format!("encoding {encoding:?} is not sparse"));
    };
    let (block, index_bytes, nnz) = (block as usize, index_bytes as usize, nnz as usize);
    if !BLOCK_SIZES.contains(&block) || ![1, 2, 4].contains(&index_bytes) {
        return Err(format!(
            "sparse block {block} / index width {index_bytes} (blocks of 1, 2, 4 rows and 1-, 2- or 4-byte indices supported)"
        ));
    }
    let (rows, cols) =
        sparse_matrix_dims(shape).ok_or_else(|| format!("shape {shape:?} is not a matrix"))?;
    if rows
        .div_ceil(block)
        .checked_mul(cols)
        .is_none_or(|max| nnz > max)
    {
        return Err(format!(
            "{nnz} stored columns in a {rows}x{cols} matrix with blocks of {block}"
        ));
    }
    match sparse_stored_len(rows, block, index_bytes, nnz) {
        Some(e) if e as u64 == nbytes => Ok(()),
        Some(e) => Err(format!(
            "sparse {rows}x{cols} matrix with {nnz} columns of block {block} needs {e} bytes, entry says {nbytes}"
        )),
        None => Err(format!("{nnz} stored columns overflow a byte count")),
    }
}

/// Checks that every op reading weight `id` can read it sparse with blocks of `block`: as
/// the weight of a convolution (grouped ones need whole blocks per group) or of a Gemm.
pub(crate) fn check_uses(graph: &Graph, id: WeightId, block: usize) -> Result<(), String> {
    for node in &graph.nodes {
        match &node.op {
            Op::Conv(c) if c.weight == id => {
                let out_c = graph.weights[id as usize]
                    .shape
                    .first()
                    .copied()
                    .unwrap_or(0);
                let per_group = out_c as usize / (c.groups as usize).max(1);
                if c.groups > 1 && !per_group.is_multiple_of(block) {
                    return Err(format!(
                        "node '{}' has {per_group} output channels per group, not a multiple of the sparse block {block}",
                        node.name
                    ));
                }
            }
            Op::Gemm { weight, .. } if *weight == id => {}
            op if op.weight_ids().contains(&id) => {
                return Err(format!(
                    "node '{}' ({}) reads it, and only convolution and Gemm weights may be sparse",
                    node.name,
                    op.kind_name()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matrix(rows: usize, cols: usize, density: f64, seed: u64) -> Vec<f32> {
        let mut state = seed | 1;
        (0..rows * cols)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                if u < density {
                    (u * 7.0 - 1.0) as f32 + 0.125
                } else {
                    0.0
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn round_trips(rows in 1usize..20, cols in 1usize..300, density in 0.0f64..1.0,
                       block_ix in 0usize..3, seed in any::<u64>()) {
            let block = BLOCK_SIZES[block_ix];
            let data = matrix(rows, cols, density, seed);
            let m = encode(&data, rows, cols, block);
            let view = SparseView::new(&m.bytes, rows, cols, m.encoding()).unwrap();
            prop_assert_eq!(view.to_dense().unwrap(), data.clone());
            prop_assert!(check_stored_len(&[rows as u32, cols as u32], m.encoding(), m.bytes.len() as u64).is_ok());
            // every stored column has a non-zero in its block, and no non-zero is missed
            let nonzero_positions: usize = (0..rows.div_ceil(block))
                .map(|b| (0..cols).filter(|&c| (b * block..(b * block + block).min(rows))
                    .any(|r| data[r * cols + c] != 0.0)).count())
                .sum();
            prop_assert_eq!(m.nnz, nonzero_positions);
            prop_assert_eq!(m.index_bytes, if cols <= 256 { 1 } else { m.index_bytes });
        }
    }

    #[test]
    fn corrupt_indices_are_rejected() {
        let data = matrix(8, 40, 0.3, 7);
        let m = encode(&data, 8, 40, 2);
        let counts_at = m.nnz * 2 * 4;
        // a count larger than what remains
        let mut bad = m.bytes.clone();
        bad[counts_at..counts_at + 4].copy_from_slice(&(m.nnz as u32 + 1).to_le_bytes());
        let view = SparseView::new(&bad, 8, 40, m.encoding()).unwrap();
        assert!(view.columns().unwrap_err().contains("claims"));
        // a delta running past the last column
        let mut bad = m.bytes.clone();
        let deltas_at = counts_at + 4 * 4;
        bad[deltas_at] = 200;
        let view = SparseView::new(&bad, 8, 40, m.encoding()).unwrap();
        assert!(view.columns().unwrap_err().contains("column"));
        // wrong length
        assert!(SparseView::new(&m.bytes[1..], 8, 40, m.encoding()).is_err());
    }

    #[test]
    fn wide_matrices_use_wider_indices() {
        let mut data = vec![0.0f32; 2 * 70_000];
        data[69_999] = 1.0;
        data[70_000 + 3] = 2.0;
        let m = encode(&data, 2, 70_000, 1);
        assert_eq!(m.index_bytes, 4);
        let view = SparseView::new(&m.bytes, 2, 70_000, m.encoding()).unwrap();
        assert_eq!(view.columns().unwrap(), vec![69_999, 3]);
        assert_eq!(view.to_dense().unwrap(), data);
    }
}
