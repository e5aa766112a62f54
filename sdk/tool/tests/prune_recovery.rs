//! One-shot recovery on two fixture families (tests/fixtures/generated, see its README;
//! `bash tests/fixtures/setup_venv.sh` makes them; missing fixtures fail, they do not
//! skip): at the same sparsity, least-squares reconstruction + BatchNorm recalibration
//! must bring the pruned model's output closer to the dense model's than magnitude
//! pruning alone, measured on held-out inputs that were not used for calibration — for
//! channel pruning and for unstructured pruning. The numbers are printed
//! (`cargo test -p prunus-tool --test prune_recovery -- --nocapture`).
//!
//! The fixture weights are random (but calibrated), so the inputs carry the structure:
//! smooth images made of a few low-frequency patterns shared by the channels, like
//! natural images, from fixed seeds (calibration and held-out sets use different ones).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prunus_tool::prune::calibrate::{Calibration, pack};
use prunus_tool::prune::onnx_graph::OnnxGraph;
use prunus_tool::prune::reconstruct::{RecoverOptions, Recovery, recover};
use prunus_tool::prune::{
    Criterion, Granularity, Layers, StructuredOptions, structured_prune, unstructured_prune_onnx,
};

const FAMILIES: [&str; 2] = ["mobilenet_v2", "squeezenet1_1"];

fn fixture(name: &str) -> OnnxGraph {
    let dir = std::env::var_os("PRUNUS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/generated")
        });
    let path = dir.join(format!("{name}.onnx"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "missing fixture {} ({e}): run `bash tests/fixtures/setup_venv.sh` (or set PRUNUS_FIXTURES)",
            path.display()
        )
    });
    OnnxGraph::parse(&bytes).expect("fixture parses")
}

/// `count` smooth images `[1, C, H, W]`: per image, six random low-frequency cosines
/// mixed into every channel with channel-specific gains, plus a little noise.
fn smooth_images(shape: &[usize], count: usize, seed: u64) -> Calibration {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rand = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let mut data = Vec::with_capacity(count * c * h * w);
    for _ in 0..count {
        let waves: Vec<[f64; 5]> = (0..6)
            .map(|_| {
                [
                    rand() * 4.0,
                    rand() * 4.0,
                    rand() * std::f64::consts::TAU,
                    rand() * 2.0 - 1.0,
                    rand(),
                ]
            })
            .collect();
        for _ in 0..c {
            let gains: Vec<f64> = (0..waves.len()).map(|_| 0.5 + rand()).collect();
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = (y as f64 / h as f64, x as f64 / w as f64);
                    let val: f64 = waves
                        .iter()
                        .zip(&gains)
                        .map(|(wv, g)| {
                            g * wv[3]
                                * (std::f64::consts::TAU * (wv[0] * u + wv[1] * v) + wv[2]).cos()
                        })
                        .sum();
                    data.push((val + 0.05 * (rand() - 0.5)) as f32);
                }
            }
        }
    }
    let mut batch = shape.to_vec();
    batch[0] = count;
    Calibration::from_batch(&batch, data).expect("calibration batch")
}

fn outputs(g: &OnnxGraph, inputs: &Calibration) -> Vec<Vec<f32>> {
    let packed = pack(&g.to_bytes()).expect("packs");
    let model = prunus::Model::from_bytes(packed.as_bytes()).expect("loads");
    let mut session = model.session(Default::default()).expect("session");
    inputs
        .samples
        .iter()
        .map(|x| {
            session.run(&[x]).expect("runs");
            session.output(0).expect("output").to_vec()
        })
        .collect()
}

/// Mean over samples of ‖y − y_dense‖² / ‖y_dense‖².
fn relative_error(dense: &[Vec<f32>], pruned: &[Vec<f32>]) -> f64 {
    dense
        .iter()
        .zip(pruned)
        .map(|(d, p)| {
            let num: f64 = d.iter().zip(p).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
            let den: f64 = d.iter().map(|a| (*a as f64).powi(2)).sum();
            num / den.max(1e-30)
        })
        .sum::<f64>()
        / dense.len() as f64
}

fn check(
    family: &str,
    kind: &str,
    dense: &OnnxGraph,
    pruned: OnnxGraph,
    kept: &HashMap<String, Vec<usize>>,
    reselect: Option<Granularity>,
) {
    let shape = dense.shape(&dense.inputs[0]).expect("input shape").to_vec();
    let calib = smooth_images(&shape, 32, 1);
    let held_out = smooth_images(&shape, 8, 2);
    let mut recovered = pruned.clone();
    let options = RecoverOptions {
        recovery: Recovery::Lstsq,
        reselect,
        ..Default::default()
    };
    let report = recover(dense, &mut recovered, kept, &calib, &options, &|_, _| {})
        .unwrap_or_else(|e| panic!("{family} {kind}: {e}"));
    let reference = outputs(dense, &held_out);
    let magnitude = relative_error(&reference, &outputs(&pruned, &held_out));
    let lstsq = relative_error(&reference, &outputs(&recovered, &held_out));
    println!(
        "{family:14} {kind:26} held-out relative error: magnitude {magnitude:.4}  lstsq+BN {lstsq:.4}  \
         ({} layers refit, {} rows)",
        report.refit_layers, report.refit_rows
    );
    assert!(report.refit_layers > 0, "{family} {kind}: nothing refit");
    assert!(
        lstsq < 0.8 * magnitude,
        "{family} {kind}: recovery did not reduce the error ({lstsq} vs {magnitude})"
    );
}

#[test]
fn reconstruction_beats_magnitude_pruning_on_held_out_inputs() {
    for family in FAMILIES {
        let dense = fixture(family);
        let options = StructuredOptions {
            sparsity: 0.3,
            criterion: Criterion::L1,
            round: 1,
        };
        let outcome = structured_prune(&dense, &options, None).expect("channel pruning");
        check(
            family,
            "channels 30 %",
            &dense,
            outcome.graph,
            &outcome.result.kept,
            None,
        );

        let mut pruned = dense.clone();
        unstructured_prune_onnx(
            &mut pruned,
            Layers::Pointwise,
            Granularity::Unstructured,
            0.5,
            false,
        )
        .expect("unstructured pruning");
        check(
            family,
            "unstructured 50 % of 1x1",
            &dense,
            pruned,
            &HashMap::new(),
            Some(Granularity::Unstructured),
        );
    }
}

/// `prunus prune --recover`: refuses to run without calibration data or on a `.prunus`
/// input, and with uint8 NHWC images plus a preprocessing spec writes a model whose
/// output is closer to the dense one than magnitude pruning's.
#[test]
fn cli_recover_flags() {
    let dir = std::env::temp_dir().join(format!("prunus-recover-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dense = fixture("squeezenet1_1");
    let model = dir.join("dense.onnx");
    std::fs::write(&model, dense.to_bytes()).expect("write model");
    let shape = dense.shape(&dense.inputs[0]).expect("input shape").to_vec();
    // uint8 NHWC images: the smooth images mapped to 0..255.
    let calib = smooth_images(&shape, 16, 3);
    let (c, h, w) = (shape[1], shape[2], shape[3]);
    let mut pixels = Vec::with_capacity(16 * c * h * w);
    for s in &calib.samples {
        for i in 0..h * w {
            for ch in 0..c {
                pixels.push((s[ch * h * w + i] * 60.0 + 128.0).clamp(0.0, 255.0) as u8);
            }
        }
    }
    let images = dir.join("calib_u8.npy");
    use npyz::WriterBuilder;
    let mut writer = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(&[16, h as u64, w as u64, c as u64])
        .writer(std::fs::File::create(&images).expect("create npy"))
        .begin_nd()
        .expect("npy header");
    writer.extend(pixels.iter().copied()).expect("npy data");
    writer.finish().expect("npy finish");
    let prunus = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_prunus"))
            .arg("prune")
            .arg(&model)
            .args(args)
            .output()
            .expect("runs prunus")
    };
    let out = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let no_calib = prunus(&[
        "-o",
        &out("a.prunus"),
        "--sparsity",
        "0.5",
        "--recover",
        "lstsq",
    ]);
    assert!(!no_calib.status.success());
    assert!(String::from_utf8_lossy(&no_calib.stderr).contains("--calib"));
    let no_spec = prunus(&[
        "-o",
        &out("a.prunus"),
        "--sparsity",
        "0.5",
        "--recover",
        "lstsq",
        "--calib",
        &images.to_string_lossy(),
    ]);
    assert!(!no_spec.status.success());
    assert!(String::from_utf8_lossy(&no_spec.stderr).contains("preprocess"));
    let mut errors = Vec::new();
    for recover in ["none", "lstsq"] {
        let onnx = out(&format!("{recover}.onnx"));
        let run = prunus(&[
            "-o",
            &out(&format!("{recover}.prunus")),
            "--onnx-out",
            &onnx,
            "--sparsity",
            "0.5",
            "--layers",
            "1x1",
            "--dense",
            "--recover",
            recover,
            "--calib",
            &images.to_string_lossy(),
            "--calib-preprocess",
            "scale=60,mean=2.1333,std=1",
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let pruned = OnnxGraph::parse(&std::fs::read(&onnx).expect("pruned onnx")).expect("parses");
        let held_out = smooth_images(&shape, 4, 4);
        errors.push(relative_error(
            &outputs(&dense, &held_out),
            &outputs(&pruned, &held_out),
        ));
    }
    println!(
        "CLI squeezenet1_1 50 % of 1x1: magnitude {:.4}  --recover lstsq {:.4}",
        errors[0], errors[1]
    );
    assert!(errors[1] < errors[0], "{errors:?}");
    let prunus_in = prunus(&["-o", &out("b.prunus"), "--sparsity", "0.5"]);
    assert!(prunus_in.status.success());
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_prunus"))
        .args([
            "prune",
            &out("b.prunus"),
            "-o",
            &out("c.prunus"),
            "--sparsity",
            "0.5",
        ])
        .args(["--recover", "bias", "--calib", &images.to_string_lossy()])
        .output()
        .expect("runs prunus");
    assert!(!refused.status.success());
    std::fs::remove_dir_all(&dir).ok();
}
