//! Whole-model latency of the zoo families (fp32, one session, batch 1).
//!
//! `cargo bench -p prunus-bench --bench models` (set `PRUNUS_BENCH_FAMILIES=mobilenet_v2,...`
//! to pick families).

use criterion::{Criterion, criterion_group, criterion_main};
use prunus_bench::{families, zoo_model_bytes};

fn models(c: &mut Criterion) {
    let mut group = c.benchmark_group("model");
    group.sample_size(10);
    for name in families() {
        let bytes = zoo_model_bytes(&name);
        let model = prunus::Model::from_bytes(bytes.as_bytes()).expect("zoo model opens");
        let mut session = model.session(prunus::Options::default()).expect("session");
        let numel = model.inputs().next().expect("input").numel();
        let input: Vec<f32> = (0..numel)
            .map(|i| ((i % 97) as f32 - 48.0) / 48.0)
            .collect();
        group.bench_function(&name, |b| b.iter(|| session.run(&[&input]).expect("run")));
    }
    group.finish();
}

criterion_group!(benches, models);
criterion_main!(benches);
