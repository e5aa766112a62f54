//! Shape arithmetic shared by the constant folder and the lowering: axis normalisation,
//! ONNX broadcasting, `Reshape` targets, slice bounds and strided index enumeration.

/// Normalises a possibly negative `axis` for a tensor of `rank` dimensions.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// The multidirectional (numpy) broadcast of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        let pad = rank - s.len();
        if i < pad { 1 } else { s[i - pad] }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(shape[i + 1]);
    }
    s
}

/// Strides that read a tensor of shape `from` as if broadcast to `to` (right-aligned,
/// stride 0 along broadcast axes). `from` must broadcast to `to`.
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Vec<isize> {
    let base = strides(from);
    let pad = to.len().saturating_sub(from.len());
    (0..to.len())
        .map(|i| match i.checked_sub(pad) {
            Some(j) if from[j] != 1 => base[j] as isize,
            _ => 0,
        })
        .collect()
}

/// Source indices, in output order, of a strided view: element `idx` of the output (shape
/// `out`) reads `offset + sum(idx[i] * strides[i])`.
pub fn strided_indices(out: &[usize], strides: &[isize], offset: isize) -> Vec<usize> {
    let numel = out.iter().fold(1usize, |a, &d| a.saturating_mul(d));
    let mut result = Vec::with_capacity(numel);
    if numel == 0 {
        return result;
    }
    let mut idx = vec![0usize; out.len()];
    let mut pos = offset;
    for _ in 0..numel {
        result.push(pos.max(0) as usize);
        for axis in (0..out.len()).rev() {
            idx[axis] += 1;
            pos = pos.wrapping_add(strides[axis]);
            if idx[axis] < out[axis] {
                break;
            }
            pos = pos.wrapping_sub(strides[axis].wrapping_mul(out[axis] as isize));
            idx[axis] = 0;
        }
    }
    result
}

/// The shape `Reshape` produces: `0` copies the input dimension (unless `allowzero`),
/// `-1` is inferred from the element count.
pub fn reshape_target(
    input: &[usize],
    shape: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
    let numel: usize = input.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => match input.get(i) {
                Some(&v) => out.push(v),
                None => return Err(format!("shape {shape:?}: 0 at axis {i} beyond input rank")),
            },
            d if d >= 0 => out.push(d as usize),
            _ => return Err(format!("invalid reshape target {shape:?}")),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("reshape target {shape:?} overflows"))?;
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {shape:?}"));
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(format!(
            "cannot reshape {input:?} ({numel} elements) to {shape:?}"
        ));
    }
    Ok(out)
}

/// ONNX `Slice` bounds along one axis of size `dim`: `(first, step, count)`, with starts and
/// ends clamped the way the spec says (so `INT64_MAX` means "to the end").
pub fn slice_bounds(dim: usize, start: i64, end: i64, step: i64) -> Option<(i64, i64, usize)> {
    if step == 0 {
        return None;
    }
    let d = dim as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (start, end) = (fix(start), fix(end));
    let (start, end) = if step > 0 {
        (start.clamp(0, d), end.clamp(0, d))
    } else {
        (start.clamp(0, d - 1), end.clamp(-1, d - 1))
    };
    let span = if step > 0 { end - start } else { start - end };
    let count = if span <= 0 {
        0
    } else {
        (span as u64).div_ceil(step.unsigned_abs())
    };
    Some((start, step, count as usize))
}

/// Output size of a pooling window along one axis, in floor or ceil mode; in ceil mode the
/// last window must start inside the input or its leading padding (the ONNX/PyTorch rule).
pub fn pool_out(
    size: u64,
    pad0: u64,
    pad1: u64,
    kernel: u64,
    stride: u64,
    ceil: bool,
) -> Option<u64> {
    let padded = size.checked_add(pad0)?.checked_add(pad1)?;
    if kernel == 0 || stride == 0 || padded < kernel {
        return None;
    }
    let span = padded - kernel;
    let mut out = if ceil {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    if ceil && out > 1 && (out - 1).saturating_mul(stride) >= size + pad0 {
        out -= 1;
    }
    Some(out)
}

/// `auto_pad` `SAME_UPPER`/`SAME_LOWER` padding `(begin, end)` along one axis.
pub fn same_pads(size: u64, kernel: u64, stride: u64, dilation: u64, upper: bool) -> (u64, u64) {
    let out = size.div_ceil(stride.max(1));
    let span = dilation
        .saturating_mul(kernel.saturating_sub(1))
        .saturating_add(1);
    let total = out
        .saturating_sub(1)
        .saturating_mul(stride)
        .saturating_add(span)
        .saturating_sub(size);
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_zero_and_minus_one() {
        assert_eq!(
            reshape_target(&[1, 8, 2, 2], &[0, -1], false).unwrap(),
            vec![1, 32]
        );
        assert_eq!(
            reshape_target(&[1, 8, 2, 2], &[1, 2, 4, 2, 2], false).unwrap(),
            vec![1, 2, 4, 2, 2]
        );
        assert!(reshape_target(&[1, 8], &[-1, -1], false).is_err());
        assert!(reshape_target(&[1, 8], &[3, -1], false).is_err());
        assert!(reshape_target(&[1, 8], &[i64::MAX, i64::MAX, 2], false).is_err());
    }

    #[test]
    fn slice_clamps_like_onnx() {
        assert_eq!(slice_bounds(10, 2, i64::MAX, 1), Some((2, 1, 8)));
        assert_eq!(slice_bounds(10, -3, -1, 1), Some((7, 1, 2)));
        assert_eq!(slice_bounds(10, i64::MAX, i64::MIN, -1), Some((9, -1, 10)));
        assert_eq!(slice_bounds(4, 0, 8, 3), Some((0, 3, 2)));
        assert_eq!(slice_bounds(4, 0, 8, 0), None);
    }

    #[test]
    fn pools_in_ceil_mode_drop_a_window_starting_in_the_end_padding() {
        // 112 -> 56 (floor) / 57 (ceil); squeezenet's 3x3 s2 pools.
        assert_eq!(pool_out(112, 0, 0, 3, 2, false), Some(55));
        assert_eq!(pool_out(112, 0, 0, 3, 2, true), Some(56));
        assert_eq!(pool_out(13, 0, 0, 3, 2, true), Some(6));
        // Window would start at 6 >= 5 + 1: dropped.
        assert_eq!(pool_out(5, 1, 1, 2, 2, true), Some(3));
        assert_eq!(pool_out(2, 0, 0, 3, 1, false), None);
    }

    #[test]
    fn same_padding_puts_the_extra_pixel_at_the_end_for_upper() {
        assert_eq!(same_pads(224, 3, 2, 1, true), (0, 1));
        assert_eq!(same_pads(224, 3, 2, 1, false), (1, 0));
        assert_eq!(same_pads(7, 3, 1, 1, true), (1, 1));
    }

    #[test]
    fn strided_view_transposes_and_broadcasts() {
        // [2,3] transposed -> [3,2]
        assert_eq!(strided_indices(&[3, 2], &[1, 3], 0), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(
            broadcast_shape(&[1, 4, 1, 1], &[2, 1]),
            Some(vec![1, 4, 2, 1])
        );
        assert_eq!(broadcast_shape(&[3], &[4]), None);
        let s = broadcast_strides(&[3, 1], &[2, 3, 2]);
        assert_eq!(
            strided_indices(&[2, 3, 2], &s, 0),
            vec![0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]
        );
    }
}
