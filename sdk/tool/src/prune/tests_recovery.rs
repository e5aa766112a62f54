//! Tests of one-shot recovery on the small test model of [`super::tests`]: BatchNorm
//! re-estimation against statistics measured by running the pruned network, bias
//! correction against measured means, and the least-squares / OBS solvers against naive
//! references.

use faer::Mat;

use super::calibrate::{Calibration, pack};
use super::onnx_graph::{OnnxGraph, op};
use super::reconstruct::{RecoverOptions, Recovery, recover, truncated};
use super::reconstruct_obs::obs_prune;
use super::tests::small_model;
use super::*;

/// Deterministic pseudo-random values in [-0.5, 0.5).
fn noise(seed: u32, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn calibration(seed: u32, count: usize) -> Calibration {
    let per = 4 * 6 * 6;
    Calibration::from_batch(&[count, 4, 6, 6], noise(seed, count * per)).unwrap()
}

/// Per-channel mean and population variance of tensor `t` of `g` over `calib`, measured
/// by running `g` (truncated at `t`) through the runtime.
fn measured_stats(g: &OnnxGraph, t: &str, calib: &Calibration) -> (Vec<f64>, Vec<f64>) {
    let packed = pack(&truncated(g, t).unwrap()).unwrap();
    let model = prunus::Model::from_bytes(packed.as_bytes()).unwrap();
    let mut session = model.session(Default::default()).unwrap();
    let c = g.shape(t).unwrap()[1];
    let (mut sum, mut sq, mut n) = (vec![0.0f64; c], vec![0.0f64; c], 0.0);
    for sample in &calib.samples {
        session.run(&[sample]).unwrap();
        let y = session.output(0).unwrap();
        let hw = y.len() / c;
        for ch in 0..c {
            for &v in &y[ch * hw..(ch + 1) * hw] {
                sum[ch] += v as f64;
                sq[ch] += (v as f64).powi(2);
            }
        }
        n += hw as f64;
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let var = sq.iter().zip(&mean).map(|(q, m)| q / n - m * m).collect();
    (mean, var)
}

fn structured(sparsity: f64) -> (OnnxGraph, StructuredOutcome) {
    let dense = OnnxGraph::parse(&small_model()).unwrap();
    let options = StructuredOptions {
        sparsity,
        criterion: Criterion::L1,
        round: 1,
    };
    let outcome = structured_prune(&dense, &options, None).unwrap();
    (dense, outcome)
}

/// Every BatchNorm's running statistics after re-estimation equal the statistics of its
/// input measured on the recalibrated pruned network (every position sampled), after
/// channel pruning and after unstructured pruning.
#[test]
fn bn_reestimation_matches_measured_activation_stats() {
    let (dense, outcome) = structured(0.3);
    let mut unstructured = dense.clone();
    unstructured_prune_onnx(
        &mut unstructured,
        Layers::All,
        Granularity::Unstructured,
        0.5,
        false,
    )
    .unwrap();
    let calib = calibration(11, 12);
    let options = RecoverOptions {
        recovery: Recovery::Bn,
        positions: usize::MAX,
        ..Default::default()
    };
    let mut checked = 0;
    for (mut pruned, kept) in [
        (outcome.graph.clone(), outcome.result.kept.clone()),
        (unstructured, Default::default()),
    ] {
        let report = recover(&dense, &mut pruned, &kept, &calib, &options, &|_, _| {}).unwrap();
        assert!(report.bn_updated >= 1, "{report:?}");
        for n in pruned
            .nodes()
            .iter()
            .filter(|n| op(n) == "BatchNormalization")
        {
            let mean = pruned.consts[&n.input[3]].as_f32().unwrap().to_vec();
            let var = pruned.consts[&n.input[4]].as_f32().unwrap().to_vec();
            let dense_node = dense.nodes().iter().find(|d| d.output == n.output).unwrap();
            if dense.consts[&dense_node.input[3]].as_f32() == Some(&mean[..]) {
                continue; // before the first pruned layer: left alone
            }
            let (m, v) = measured_stats(&pruned, &n.input[0], &calib);
            for c in 0..mean.len() {
                assert!(
                    (mean[c] as f64 - m[c]).abs() <= 1e-4 * (1.0 + m[c].abs()),
                    "{}: mean[{c}] {} vs measured {}",
                    n.input[0],
                    mean[c],
                    m[c]
                );
                assert!(
                    (var[c] as f64 - v[c]).abs() <= 1e-3 * (1.0 + v[c].abs()),
                    "{}: var[{c}] {} vs measured {}",
                    n.input[0],
                    var[c],
                    v[c]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} BatchNorms were recalibrated");
}

/// Bias correction: the mean of every corrected BatchNorm's normalized input on the
/// pruned network equals the dense network's (BN output mean shift removed).
#[test]
fn bias_correction_matches_dense_channel_means() {
    let dense = OnnxGraph::parse(&small_model()).unwrap();
    let mut pruned = dense.clone();
    unstructured_prune_onnx(
        &mut pruned,
        Layers::All,
        Granularity::Unstructured,
        0.6,
        false,
    )
    .unwrap();
    let calib = calibration(5, 10);
    let options = RecoverOptions {
        recovery: Recovery::Bias,
        positions: usize::MAX,
        ..Default::default()
    };
    recover(
        &dense,
        &mut pruned,
        &Default::default(),
        &calib,
        &options,
        &|_, _| {},
    )
    .unwrap();
    let mut checked = 0;
    for (d, p) in dense.nodes().iter().zip(pruned.nodes()) {
        if op(d) != "BatchNormalization"
            || d.input[3] == p.input[3] && dense.consts[&d.input[3]] == pruned.consts[&p.input[3]]
        {
            continue;
        }
        let (md, _) = measured_stats(&dense, &d.input[0], &calib);
        let (mp, _) = measured_stats(&pruned, &p.input[0], &calib);
        let (rd, rp) = (
            dense.consts[&d.input[3]].as_f32().unwrap(),
            pruned.consts[&p.input[3]].as_f32().unwrap(),
        );
        for c in 0..md.len() {
            // BN subtracts its running mean: the shifted means must agree.
            let (a, b) = (md[c] - rd[c] as f64, mp[c] - rp[c] as f64);
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                "{}[{c}]: {a} vs {b}",
                d.input[0]
            );
        }
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} BatchNorms corrected");
}

/// The least-squares refit equals the solution of the normal equations computed
/// naively (Gaussian elimination) for a channel-pruned consumer.
#[test]
fn lstsq_refit_solves_the_normal_equations() {
    use super::reconstruct_layer::{Fit, Layer};
    let dense = OnnxGraph::parse(&small_model()).unwrap();
    // The Gemm (12 inputs, 5 outputs): 40 positions of 12 random inputs.
    let node = dense.nodes().iter().position(|n| op(n) == "Gemm").unwrap();
    let mut layer = Layer::from_node(&dense, node).unwrap().unwrap();
    let mut fit = Fit::new(&layer, true);
    let (n, k) = (40, layer.cols);
    let xs = noise(3, n * k);
    let ys = noise(4, n * layer.rows);
    for s in 0..n {
        let patch: Vec<f64> = xs[s * k..(s + 1) * k].iter().map(|&v| v as f64).collect();
        let target: Vec<f64> = ys[s * layer.rows..(s + 1) * layer.rows]
            .iter()
            .map(|&v| v as f64)
            .collect();
        fit.add(&layer, &[patch], &target);
    }
    let ridge = 1e-3;
    assert_eq!(fit.solve(&mut layer, ridge, 2.0, None), layer.rows);
    // Naive reference: [X 1] augmented normal equations with the same ridge.
    let mut g = vec![vec![0.0f64; k + 1]; k + 1];
    for s in 0..n {
        let row: Vec<f64> = (0..=k)
            .map(|c| if c < k { xs[s * k + c] as f64 } else { 1.0 })
            .collect();
        for i in 0..=k {
            for j in 0..=k {
                g[i][j] += row[i] * row[j];
            }
        }
    }
    let lambda = ridge * (0..k).map(|c| g[c][c]).sum::<f64>() / k as f64 + 1e-12;
    for o in 0..layer.rows {
        let mut a = g.clone();
        let mut b: Vec<f64> = (0..=k)
            .map(|i| {
                (0..n)
                    .map(|s| {
                        let x = if i < k { xs[s * k + i] as f64 } else { 1.0 };
                        x * ys[s * layer.rows + o] as f64
                    })
                    .sum()
            })
            .collect();
        (0..k).for_each(|i| a[i][i] += lambda);
        for p in 0..=k {
            let pivot = a[p].clone();
            for r in p + 1..=k {
                let f = a[r][p] / pivot[p];
                a[r].iter_mut()
                    .zip(&pivot)
                    .skip(p)
                    .for_each(|(x, v)| *x -= f * v);
                b[r] -= f * b[p];
            }
        }
        let mut w = vec![0.0; k + 1];
        for p in (0..=k).rev() {
            w[p] = (b[p] - (p + 1..=k).map(|c| a[p][c] * w[c]).sum::<f64>()) / a[p][p];
        }
        for (c, want) in w.iter().enumerate().take(k) {
            let got = layer.weight[o * k + c] as f64;
            assert!(
                (got - want).abs() < 1e-4,
                "row {o} col {c}: {got} vs {want}"
            );
        }
        assert!((layer.bias[o] as f64 - w[k]).abs() < 1e-4);
    }
}

/// The ridge chosen on held-out positions: the largest when the targets are noise
/// unrelated to the inputs (any fit overfits), the smallest when they are an exact linear
/// function of them.
#[test]
fn held_out_positions_choose_the_ridge() {
    use super::reconstruct_layer::{Fit, Layer};
    let dense = OnnxGraph::parse(&small_model()).unwrap();
    let node = dense.nodes().iter().position(|n| op(n) == "Gemm").unwrap();
    let layer = Layer::from_node(&dense, node).unwrap().unwrap();
    let (k, rows) = (layer.cols, layer.rows);
    let choose = |n: usize, linear: bool| {
        let mut fitted = layer.clone();
        let mut fit = Fit::new(&fitted, true);
        let xs = noise(5, n * k);
        let ys = noise(6, n * rows);
        for s in 0..n {
            let patch: Vec<f64> = xs[s * k..(s + 1) * k].iter().map(|&v| v as f64).collect();
            let target: Vec<f64> = (0..rows)
                .map(|o| {
                    if linear {
                        (0..k).map(|c| patch[c] * (o + c) as f64).sum::<f64>() + 0.5
                    } else {
                        ys[s * rows + o] as f64
                    }
                })
                .collect();
            if s % 4 == 3 {
                fit.add_held_out(&fitted, &[patch], &target);
            } else {
                fit.add(&fitted, &[patch], &target);
            }
        }
        assert_eq!(fit.solve(&mut fitted, 1e-3, 2.0, None), rows);
        fit.chosen_ridge
    };
    assert_eq!(choose(48, false), vec![1.0]);
    assert_eq!(choose(400, true), vec![1e-4]);
}

/// OBS pruning keeps the requested number / pattern of zeros, and its error on the
/// Hessian's data is no larger than magnitude pruning's.
#[test]
fn obs_prune_patterns_and_error() {
    let (rows, n, cols) = (8usize, 200usize, 16usize);
    let k = cols + 1;
    let xs = noise(9, n * cols);
    // Correlated inputs: column c mixes with column c / 2.
    let x = Mat::from_fn(n, k, |s, c| {
        if c == cols {
            1.0
        } else {
            xs[s * cols + c] as f64 + 0.8 * xs[s * cols + c / 2] as f64
        }
    });
    let mut h = x.transpose() * &x;
    (0..cols).for_each(|i| h[(i, i)] += 1e-6);
    let w0: Vec<f64> = noise(10, rows * k).iter().map(|&v| v as f64).collect();
    let err = |w: &[f64]| -> f64 {
        (0..n)
            .map(|s| {
                (0..rows)
                    .map(|r| {
                        (0..k)
                            .map(|c| (w[r * k + c] - w0[r * k + c]) * x[(s, c)])
                            .sum::<f64>()
                            .powi(2)
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let zeros = rows * cols / 2;
    let mut w = w0.clone();
    assert!(obs_prune(
        &mut w,
        rows,
        &h,
        Granularity::Unstructured,
        zeros
    ));
    let got = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .filter(|&(r, c)| w[r * k + c] == 0.0)
        .count();
    assert_eq!(got, zeros);
    let mut mag = w0.clone();
    let mut order: Vec<usize> = (0..rows * cols).collect();
    order.sort_by(|&a, &b| {
        let (ia, ib) = ((a / cols) * k + a % cols, (b / cols) * k + b % cols);
        w0[ia].abs().total_cmp(&w0[ib].abs())
    });
    order
        .iter()
        .take(zeros)
        .for_each(|&i| mag[(i / cols) * k + i % cols] = 0.0);
    assert!(
        err(&w) <= err(&mag),
        "OBS {} vs magnitude {}",
        err(&w),
        err(&mag)
    );
    let mut nm = w0.clone();
    assert!(obs_prune(&mut nm, rows, &h, Granularity::NM(2, 4), zeros));
    for r in 0..rows {
        for g in (0..cols).step_by(4) {
            let nz = (g..g + 4).filter(|&c| nm[r * k + c] != 0.0).count();
            assert!(nz <= 2, "row {r} group {g}: {nz} nonzeros");
        }
    }
    let mut blocks = w0.clone();
    assert!(obs_prune(
        &mut blocks,
        rows,
        &h,
        Granularity::Block(2),
        zeros
    ));
    for rb in 0..rows / 2 {
        for c in 0..cols {
            let (a, b) = (blocks[2 * rb * k + c], blocks[(2 * rb + 1) * k + c]);
            assert_eq!(a == 0.0, b == 0.0, "block {rb} col {c} split");
        }
    }
}

/// uint8 NHWC images become NCHW inputs: `(px / scale - mean[c]) / std[c]`, with the
/// channel order reversed for `bgr`; bad specs and shapes are errors.
#[test]
fn uint8_images_are_preprocessed_to_nchw() {
    use super::calib_data::Preprocess;
    // One 1x2 image with 3 channels: pixel (0, x) channel c = 10 * x + c.
    let pixels = [0u8, 1, 2, 10, 11, 12];
    let pre = Preprocess::parse("scale=2,mean=1:2:3,std=1:2:4").unwrap();
    let calib = pre.apply(&[1, 1, 2, 3], &pixels).unwrap();
    assert_eq!(calib.sample_shape, vec![1, 3, 1, 2]);
    let want =
        |c: usize, x: usize| ((10 * x + c) as f32 / 2.0 - [1.0, 2.0, 3.0][c]) / [1.0, 2.0, 4.0][c];
    let expected: Vec<f32> = (0..3)
        .flat_map(|c| (0..2).map(move |x| want(c, x)))
        .collect();
    assert_eq!(calib.samples[0], expected);
    let bgr = Preprocess::parse("bgr")
        .unwrap()
        .apply(&[1, 1, 2, 3], &pixels)
        .unwrap();
    assert_eq!(bgr.samples[0], vec![2.0, 12.0, 1.0, 11.0, 0.0, 10.0]);
    assert_eq!(
        Preprocess::parse("imagenet").unwrap(),
        Preprocess::imagenet()
    );
    assert!(Preprocess::parse("std=0").is_err());
    assert!(Preprocess::parse("gamma=2").is_err());
    assert!(pre.apply(&[1, 2, 3], &pixels).is_err());
    assert!(pre.apply(&[1, 1, 2, 4], &[0; 8]).is_err());
}

/// input (8 ch) → 1x1 Conv `a` (6 out, bias) → 1x1 Conv `b` (3 out, bias) → output, where
/// channel 5 of `a` is exactly `2·ch0 − 3·ch1` (weights and bias) and channel 3 has the
/// smallest L1 norm.
fn dependent_channel_model() -> Vec<u8> {
    use super::tests::{Net, int, ints, value_info};
    use crate::onnx::proto::{GraphProto, ModelProto, OperatorSetIdProto};
    use prost::Message;
    let mut n = Net {
        nodes: vec![],
        init: vec![],
        seed: 5,
    };
    let aw = n.weight("a.w", &[6, 8, 1, 1], |r| r);
    let ab = n.weight("a.b", &[6], |r| r);
    for t in n.init.iter_mut() {
        let d = &mut t.float_data;
        let per = d.len() / 6;
        for i in 0..per {
            d[5 * per + i] = 2.0 * d[i] - 3.0 * d[per + i];
            d[3 * per + i] *= 0.3;
        }
    }
    let bw = n.weight("b.w", &[3, 6, 1, 1], |r| r);
    let bb = n.weight("b.b", &[3], |r| r);
    let attrs = || vec![ints("kernel_shape", &[1, 1]), int("group", 1)];
    n.node("Conv", &["input", &aw, &ab], &["a"], attrs());
    n.node("Conv", &["a", &bw, &bb], &["output"], attrs());
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("dependent".into()),
            node: n.nodes,
            initializer: n.init,
            input: vec![value_info("input", &[1, 8, 6, 6])],
            output: vec![value_info("output", &[1, 3, 6, 6])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The reconstruction criterion removes a channel that is a linear combination of others
/// (the consumer's refit then reproduces the dense output on held-out inputs), where L1
/// removes the smallest filter and leaves an error.
#[test]
fn reconstruction_criterion_removes_the_redundant_channel() {
    use super::channel_select::reconstruction_scores;
    use super::tests::run;
    let bytes = dependent_channel_model();
    let dense = OnnxGraph::parse(&bytes).unwrap();
    let dep = depgraph::DepGraph::build(&dense).unwrap();
    let per = 8 * 6 * 6;
    let calib = Calibration::from_batch(&[16, 8, 6, 6], noise(21, 16 * per)).unwrap();
    let held_out = noise(99, 4 * per);
    let measured = reconstruction_scores(
        &dense,
        &dep,
        &calib,
        &Default::default(),
        &vec![true; dep.classes.len()],
        &|_, _| {},
    )
    .unwrap();
    let mut errors = Vec::new();
    for (criterion, scores) in [
        (Criterion::L1, None),
        (Criterion::Reconstruction, Some(&measured)),
    ] {
        let options = StructuredOptions {
            sparsity: 1.0 / 6.0,
            criterion,
            round: 1,
        };
        let outcome = structured_prune(&dense, &options, scores).unwrap();
        let kept = &outcome.result.kept["a"];
        let removed: Vec<usize> = (0..6).filter(|c| !kept.contains(c)).collect();
        let mut pruned = outcome.graph;
        // A tiny ridge: the refit may move the removed channel's weight onto the others.
        let options = RecoverOptions {
            positions: usize::MAX,
            ridge: 1e-7,
            ..Default::default()
        };
        recover(
            &dense,
            &mut pruned,
            &outcome.result.kept,
            &calib,
            &options,
            &|_, _| {},
        )
        .unwrap();
        let (mut err, mut norm) = (0.0f64, 0.0f64);
        for x in held_out.chunks_exact(per) {
            let want = run(&bytes, x);
            let got = run(&pruned.to_bytes(), x);
            err += want
                .iter()
                .zip(&got)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>();
            norm += want.iter().map(|a| (*a as f64).powi(2)).sum::<f64>();
        }
        let rel = (err / norm).sqrt();
        println!("{criterion:?}: removed {removed:?}, relative output error {rel:.2e}");
        errors.push((removed, rel));
    }
    let (l1, recon) = (&errors[0], &errors[1]);
    assert_eq!(l1.0, vec![3], "L1 removes the smallest filter");
    assert_eq!(recon.0.len(), 1);
    assert!(
        [0, 1, 5].contains(&recon.0[0]),
        "removed {:?}, not one of the dependent channels",
        recon.0
    );
    assert!(recon.1 < 1e-3, "reconstruction error {}", recon.1);
    assert!(
        l1.1 > 10.0 * recon.1,
        "L1 {} vs reconstruction {}",
        l1.1,
        recon.1
    );
}
