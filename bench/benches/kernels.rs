//! Kernel latency and throughput per shape class, for every ISA this CPU supports
//! (`Isa::available()`: e.g. avx512, avx2, scalar). Throughput is in FLOP/s (2 per MAC).
//!
//! `cargo bench -p prunus-bench --bench kernels [-- FILTER]`, e.g. `-- conv1x1`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prunus::format::Activation;
use prunus::kernels::sparse::SparseBench;
use prunus::kernels::{ConvGeom, Epilogue, Isa, KernelTable, winograd};
use std::time::Duration;

fn geom(c: usize, hw: usize, out_c: usize, k: usize, stride: usize, groups: usize) -> ConvGeom {
    let pad = k / 2;
    let out = (hw + 2 * pad - k) / stride + 1;
    ConvGeom {
        in_c: c,
        in_h: hw,
        in_w: hw,
        out_c,
        out_h: out,
        out_w: out,
        kernel: [k, k],
        stride: [stride, stride],
        pads: [pad; 4],
        dilation: [1, 1],
        groups,
    }
}

/// Deterministic, varied values (constant inputs would let nothing be learned about NaN or
/// denormal paths, and look nothing like activations).
fn values(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * scale)
        .collect()
}

fn kernels(c: &mut Criterion) {
    let cases = [
        // MobileNetV1 pointwise layers, then MobileNetV2 expand / project layers.
        ("conv1x1/112x112x32->64", geom(32, 112, 64, 1, 1, 1)),
        ("conv1x1/56x56x64->64", geom(64, 56, 64, 1, 1, 1)),
        ("conv1x1/28x28x256->256", geom(256, 28, 256, 1, 1, 1)),
        ("conv1x1/14x14x512->512", geom(512, 14, 512, 1, 1, 1)),
        ("conv1x1/7x7x1024->1024", geom(1024, 7, 1024, 1, 1, 1)),
        ("conv1x1/56x56x24->144", geom(24, 56, 144, 1, 1, 1)),
        ("conv1x1/14x14x576->96", geom(576, 14, 96, 1, 1, 1)),
        ("conv1x1/7x7x320->1280", geom(320, 7, 1280, 1, 1, 1)),
        // Xception's middle and exit flows.
        ("conv1x1/19x19x728->728", geom(728, 19, 728, 1, 1, 1)),
        ("conv1x1/10x10x1536->2048", geom(1536, 10, 2048, 1, 1, 1)),
        // ShuffleNet v1 (g=3) grouped pointwise.
        ("groupconv/1x1g3/28x28x240->60", geom(240, 28, 60, 1, 1, 3)),
        (
            "groupconv/1x1g3/14x14x480->480",
            geom(480, 14, 480, 1, 1, 3),
        ),
        ("dwconv/3x3s1/112x112x32", geom(32, 112, 32, 3, 1, 32)),
        ("dwconv/3x3s1/56x56x144", geom(144, 56, 144, 3, 1, 144)),
        ("dwconv/3x3s1/14x14x512", geom(512, 14, 512, 3, 1, 512)),
        ("dwconv/5x5s1/7x7x576", geom(576, 7, 576, 5, 1, 576)),
        ("dwconv/3x3s2/112x112x96", geom(96, 112, 96, 3, 2, 96)),
        ("dwconv/5x5s1/14x14x672", geom(672, 14, 672, 5, 1, 672)),
        ("conv/3x3s2/224x224x3->32", geom(3, 224, 32, 3, 2, 1)),
    ];
    let mut group = c.benchmark_group("kernel");
    for isa in Isa::available() {
        let table = KernelTable::for_isa(*isa);
        for (name, g) in &cases {
            let x = values(g.in_c * g.in_h * g.in_w, 1.0);
            let per_out = g.in_c / g.groups * g.kernel[0] * g.kernel[1];
            let bias = values(g.out_c, 0.1);
            let mut y = vec![0.0f32; g.out_c * g.out_h * g.out_w];
            let epi = Epilogue::new(Some(&bias), Activation::Relu);
            // Same choice as the session's lowering (exec.rs).
            let f = if g.kernel == [1, 1] && g.groups == 1 {
                table.conv1x1
            } else if g.groups == g.in_c && g.in_c == g.out_c {
                table.depthwise
            } else if g.kernel == [1, 1] {
                table.group_conv1x1
            } else {
                table.conv
            };
            let flops = 2 * g.out_c * g.out_h * g.out_w * per_out;
            group.throughput(Throughput::Elements(flops as u64));
            // Panel8 (ungrouped 1x1) pads the output channels to a multiple of 8.
            let rows = if g.kernel == [1, 1] && g.groups == 1 {
                g.out_c.div_ceil(8) * 8
            } else {
                g.out_c
            };
            let w = values(rows * per_out, 0.05);
            group.bench_function(format!("{}/{name}", isa.name()), |b| {
                b.iter(|| f(g, &x, &w, &epi, &mut y))
            });
        }
        let (k, o) = (1024usize, 1000usize);
        let x = values(k, 1.0);
        let w = values(o.div_ceil(8) * 8 * k, 0.05);
        let mut y = vec![0.0f32; o];
        let epi = Epilogue::new(None, Activation::None);
        group.throughput(Throughput::Elements(2 * (k * o) as u64));
        group.bench_function(format!("{}/gemm/1024->1000", isa.name()), |b| {
            b.iter(|| (table.gemm)(&x, &w, &epi, &mut y))
        });
    }
    group.finish();
}

/// The 3x3 stride-1 convolutions of SqueezeNet's expand and Xception's entry, direct
/// (`.../direct`) against Winograd F(4x4, 3x3) (`.../winograd`), for every SIMD ISA.
/// Throughput counts the direct convolution's FLOPs for both.
fn winograd(c: &mut Criterion) {
    let cases = [
        ("55x55x16->64", geom(16, 55, 64, 3, 1, 1)),
        ("27x27x32->128", geom(32, 27, 128, 3, 1, 1)),
        ("13x13x64->256", geom(64, 13, 256, 3, 1, 1)),
        ("147x147x32->64", geom(32, 147, 64, 3, 1, 1)),
        // Small planes (ResNet-style late layers), where tiles are few and padded.
        ("7x7x256->256", geom(256, 7, 256, 3, 1, 1)),
        ("5x5x128->128", geom(128, 5, 128, 3, 1, 1)),
    ];
    let mut group = c.benchmark_group("winograd");
    for isa in Isa::available() {
        let table = KernelTable::for_isa(*isa);
        let Some(wino) = table.winograd else { continue };
        for (name, g) in &cases {
            let x = values(g.in_c * g.in_h * g.in_w, 1.0);
            let w = values(g.out_c * g.in_c * 9, 0.05);
            let bias = values(g.out_c, 0.1);
            let u = winograd::pack_weights(g, &w);
            let mut scratch = vec![0.0f32; winograd::scratch_len(g)];
            let mut y = vec![0.0f32; g.out_c * g.out_h * g.out_w];
            let epi = Epilogue::new(Some(&bias), Activation::Relu);
            let flops = 2 * g.out_c * g.out_h * g.out_w * g.in_c * 9;
            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function(format!("{}/{name}/direct", isa.name()), |b| {
                b.iter(|| (table.conv)(g, &x, &w, &epi, &mut y))
            });
            group.bench_function(format!("{}/{name}/winograd", isa.name()), |b| {
                let u = winograd::WinogradWeights {
                    u: &u,
                    out_c: g.out_c,
                    first: 0,
                };
                b.iter(|| wino(g, &x, u, &epi, &mut y, &mut scratch))
            });
        }
    }
    group.finish();
}

/// Sparse against dense convolutions on MobileNet / SqueezeNet shapes, block-pruned at 50,
/// 70 and 90 % with blocks of 1 and 4 rows: `sparse/<isa>/<shape>/dense` and
/// `.../s<percent>b<block>`. Throughput counts the dense FLOPs, so sparse rates are
/// "dense-equivalent" and comparable with the dense line.
fn sparse(c: &mut Criterion) {
    let cases = [
        ("1x1/56x56x96->24", geom(96, 56, 24, 1, 1, 1)),
        ("1x1/56x56x144->24", geom(144, 56, 24, 1, 1, 1)),
        ("1x1/14x14x384->64", geom(384, 14, 64, 1, 1, 1)),
        ("1x1/7x7x960->160", geom(960, 7, 160, 1, 1, 1)),
        ("3x3/55x55x16->64", geom(16, 55, 64, 3, 1, 1)),
    ];
    let mut group = c.benchmark_group("sparse");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for isa in Isa::available() {
        for (name, g) in &cases {
            let flops =
                2 * g.out_c * g.out_h * g.out_w * g.in_c / g.groups * g.kernel[0] * g.kernel[1];
            group.throughput(Throughput::Elements(flops as u64));
            let mut dense = SparseBench::new(*isa, *g, 1, 0.5, 1).expect("supported shape");
            group.bench_function(format!("{}/{name}/dense", isa.name()), |b| {
                b.iter(|| dense.run_dense())
            });
            for sparsity in [50, 70, 90] {
                for block in [1, 4] {
                    let mut bench = SparseBench::new(*isa, *g, block, sparsity as f64 / 100.0, 1)
                        .expect("supported shape");
                    group.bench_function(
                        format!("{}/{name}/s{sparsity}b{block}", isa.name()),
                        |b| b.iter(|| bench.run_sparse()),
                    );
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, kernels, winograd, sparse);
criterion_main!(benches);
