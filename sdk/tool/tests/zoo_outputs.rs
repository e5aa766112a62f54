//! Every zoo family, packed to a model file and run by the runtime: the logits are finite,
//! O(1) and depend on the input.

use prunus::{AlignedBytes, Model, Options};
use prunus_format::WriteOptions;
use prunus_tool::zoo::{FAMILIES, ZooOptions, build};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};

fn random_input(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

fn std_dev(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    (v.iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

/// Runs `name` at `hw x hw` on two seeded inputs; returns a failure description, if any.
fn check(name: &str, hw: u32) -> Option<String> {
    let options = ZooOptions {
        input_hw: Some(hw),
        seed: 0,
    };
    let model = build(name, &options).expect("zoo build");
    let bytes = AlignedBytes::new(&model.to_bytes(WriteOptions::default()).expect("pack"));
    let model = Model::from_bytes(bytes.as_bytes()).expect("load");
    let mut session = model.session(Options::default()).expect("session");
    let n = 3 * hw as usize * hw as usize;
    let mut outputs = Vec::new();
    for seed in [1, 2] {
        session.run(&[&random_input(n, seed)]).expect("run");
        outputs.push(session.output(0).expect("output").to_vec());
    }
    let (a, b) = (&outputs[0], &outputs[1]);
    let std = std_dev(a);
    let diff = a
        .iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{name:20} {hw:>3}x{hw}: {} logits, std {std:.3}, max |a - b| {diff:.3}",
        a.len()
    );
    let finite = a.iter().chain(b).all(|v| v.is_finite());
    if a.len() != 1000 || !finite || !(0.1..=100.0).contains(&std) || f64::from(diff) < 1e-3 * std {
        return Some(format!(
            "{name} at {hw}: {} logits, finite {finite}, std {std}, max |a - b| {diff}",
            a.len()
        ));
    }
    None
}

#[test]
fn every_family_at_64() {
    let failures: Vec<String> = FAMILIES.iter().filter_map(|f| check(f.name, 64)).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn mobilenet_v2_at_224() {
    assert_eq!(check("mobilenet_v2", 224), None);
}

/// All families at their default input size (xception 299): slower, run on demand.
#[test]
#[ignore]
fn every_family_at_default_size() {
    let failures: Vec<String> = FAMILIES
        .iter()
        .filter_map(|f| check(f.name, f.input_hw))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
