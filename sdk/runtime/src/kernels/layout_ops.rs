//! Memory-bound glue kernels: channel shuffle, global average pooling, constant padding
//! and row-wise softmax.

/// Lanes of the partial sums in [`global_avg_pool`]: wide enough to vectorise on every
/// target, fixed so the summation order (and so the result) never depends on the build.
pub(super) const SUM_LANES: usize = 8;

/// Channel shuffle of `[C, hw]` data, as ONNX `Reshape(1, g, C/g, H, W) ->
/// Transpose(0, 2, 1, 3, 4) -> Reshape`: output channel `j * groups + i` is input channel
/// `i * (C / groups) + j`.
pub fn channel_shuffle(groups: usize, hw: usize, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len(), "channel_shuffle: x and y lengths differ");
    debug_assert!(
        groups > 0 && hw > 0,
        "channel_shuffle: zero groups or empty plane"
    );
    if groups == 0 || hw == 0 {
        return;
    }
    let per_group = x.len() / hw / groups;
    debug_assert_eq!(
        per_group * groups * hw,
        x.len(),
        "channel_shuffle: C % groups != 0"
    );
    // Walk the output in order (sequential writes); each plane is a contiguous copy.
    for (k, out) in y.chunks_exact_mut(hw).enumerate() {
        let (j, i) = (k / groups, k % groups);
        let src = (i * per_group + j) * hw;
        out.copy_from_slice(&x[src..src + hw]);
    }
}

/// Mean over each channel's `hw` values of `x` (`[C, hw]`, `C = y.len()`).
///
/// Sums in f32 in a fixed order: 8 interleaved partial sums (element `p` goes to lane
/// `p % 8` for the first `hw - hw % 8` elements), added lane 0 to 7, then the remaining
/// elements in order. The result is identical across runs, builds and ISAs (the SIMD
/// tables' [`global_avg_pool_simd`](super::pool::global_avg_pool_simd) keeps the order),
/// and the partial sums can be vectors, which a single running sum cannot (f32 addition is
/// not reassociated).
pub fn global_avg_pool(hw: usize, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len() * hw, "global_avg_pool: x is not [C, hw]");
    if hw == 0 {
        y.fill(0.0); // mean of nothing; chunks of size 0 are not allowed
        return;
    }
    let inv = hw as f32;
    for (out, plane) in y.iter_mut().zip(x.chunks_exact(hw)) {
        let (body, tail) = plane.as_chunks::<SUM_LANES>();
        let mut lanes = [0.0f32; SUM_LANES];
        for chunk in body {
            for (l, &v) in lanes.iter_mut().zip(chunk) {
                *l += v;
            }
        }
        let sum = lanes.iter().chain(tail).fold(0.0f32, |s, &v| s + v);
        *out = sum / inv;
    }
}

/// Constant padding of `[c, h, w]` to `[c, h + top + bottom, w + left + right]` with
/// `value`; `pads` is `[top, left, bottom, right]`.
pub fn pad(c: usize, h: usize, w: usize, pads: [usize; 4], value: f32, x: &[f32], y: &mut [f32]) {
    let [top, left, bottom, right] = pads;
    let (oh, ow) = (h + top + bottom, w + left + right);
    debug_assert_eq!(x.len(), c * h * w, "pad: input length");
    debug_assert_eq!(y.len(), c * oh * ow, "pad: output length");
    if oh * ow == 0 {
        return;
    }
    for (ch, out) in y.chunks_exact_mut(oh * ow).enumerate() {
        let (head, rest) = out.split_at_mut(top * ow);
        head.fill(value);
        let (body, foot) = rest.split_at_mut(h * ow);
        foot.fill(value);
        if w == 0 {
            body.fill(value);
            continue;
        }
        let src = &x[ch * h * w..(ch + 1) * h * w];
        for (orow, irow) in body.chunks_exact_mut(ow).zip(src.chunks_exact(w)) {
            orow[..left].fill(value);
            orow[left..left + w].copy_from_slice(irow);
            orow[left + w..].fill(value);
        }
    }
}

/// Softmax over each row of `cols` values (`rows = x.len() / cols`), stable: the row max
/// is subtracted before `exp`, so large inputs do not overflow.
pub fn softmax(cols: usize, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len(), "softmax: x and y lengths differ");
    if cols == 0 {
        return;
    }
    debug_assert_eq!(
        x.len() % cols,
        0,
        "softmax: length is not a multiple of cols"
    );
    for (yr, xr) in y.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
        let max = xr.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        for (o, &v) in yr.iter_mut().zip(xr) {
            let e = (v - max).exp();
            *o = e;
            sum += e;
        }
        // sum >= 1 (the max element contributes exp(0)), so the reciprocal is finite.
        let inv = 1.0 / sum;
        for o in yr.iter_mut() {
            *o *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::test_support::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn channel_shuffle_matches_onnx(
            (groups, per_group) in (1usize..=8, 1usize..=8),
            h in 1usize..=23,
            w in 1usize..=23,
            seed in any::<u64>(),
        ) {
            let (c, hw) = (groups * per_group, h * w);
            let x = fill(&mut rng(seed), c * hw);
            let mut y = vec![f32::NAN; c * hw];
            channel_shuffle(groups, hw, &x, &mut y);
            // ONNX: x viewed as [g, C/g, hw]; transposed to [C/g, g, hw]; flattened.
            let mut want = vec![0.0; c * hw];
            for gi in 0..groups {
                for j in 0..per_group {
                    for p in 0..hw {
                        want[(j * groups + gi) * hw + p] = x[(gi * per_group + j) * hw + p];
                    }
                }
            }
            prop_assert_eq!(y, want);
        }


        #[test]
        fn global_avg_pool_matches_reference(
            c in 1usize..=37, hw in 1usize..=600, seed in any::<u64>(),
        ) {
            let x = fill(&mut rng(seed), c * hw);
            let want: Vec<f32> = x
                .chunks(hw)
                .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
                .collect();
            let mut y = vec![f32::NAN; c];
            global_avg_pool(hw, &x, &mut y);
            assert_close(&y, &want)?;
            // Deterministic: a second run is bit-identical.
            let mut z = vec![0.0; c];
            global_avg_pool(hw, &x, &mut z);
            prop_assert_eq!(y, z);
        }

        #[test]
        fn pad_matches_reference(
            c in 1usize..=9, h in 0usize..=23, w in 0usize..=23,
            pads in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3],
            value in -2.0f32..2.0, seed in any::<u64>(),
        ) {
            let [t, l, b, r] = pads;
            let (oh, ow) = (h + t + b, w + l + r);
            let x = fill(&mut rng(seed), c * h * w);
            let mut y = vec![f32::NAN; c * oh * ow];
            pad(c, h, w, pads, value, &x, &mut y);
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let inside = oy >= t && oy < t + h && ox >= l && ox < l + w;
                        let want = if inside { x[(ch * h + oy - t) * w + ox - l] } else { value };
                        prop_assert_eq!(y[(ch * oh + oy) * ow + ox], want);
                    }
                }
            }
        }

        #[test]
        fn softmax_matches_reference(
            rows in 1usize..=7,
            cols in 1usize..=300,
            shift in -100.0f32..100.0,
            seed in any::<u64>(),
        ) {
            // A common shift checks stability: exp of unshifted values would overflow at 100.
            let x: Vec<f32> =
                fill(&mut rng(seed), rows * cols).iter().map(|v| v * 5.0 + shift).collect();
            let mut want = vec![0.0; x.len()];
            for (wr, xr) in want.chunks_mut(cols).zip(x.chunks(cols)) {
                let m = xr.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let s: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
                for (o, &v) in wr.iter_mut().zip(xr) {
                    *o = ((v as f64 - m).exp() / s) as f32;
                }
            }
            let mut y = vec![f32::NAN; x.len()];
            softmax(cols, &x, &mut y);
            assert_close(&y, &want)?;
            for row in y.chunks(cols) {
                prop_assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn shuffle_small_example() {
        // C = 6, groups 2: channels [0 1 2 | 3 4 5] -> [0 3 1 4 2 5].
        let x = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
        let mut y = [0.0; 6];
        channel_shuffle(2, 1, &x, &mut y);
        assert_eq!(y, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        channel_shuffle(3, 1, &x, &mut y);
        assert_eq!(y, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    }

    #[test]
    fn softmax_large_inputs_do_not_overflow() {
        let mut y = [0.0; 3];
        softmax(3, &[1000.0, 1000.0, f32::MIN], &mut y);
        assert_eq!(y, [0.5, 0.5, 0.0]);
    }

    #[test]
    fn global_avg_pool_exact() {
        let x: Vec<f32> = (0..20).map(|v| v as f32).collect();
        let mut y = [0.0; 2];
        global_avg_pool(10, &x, &mut y);
        assert_eq!(y, [4.5, 14.5]);
    }
}
