//! Kernel latency per shape class (scalar table today; SIMD tables plug in here).
//!
//! `cargo bench -p prunus-bench --bench kernels`

use criterion::{Criterion, criterion_group, criterion_main};
use prunus::format::Activation;
use prunus::kernels::{ConvGeom, Epilogue, Isa, KernelTable};

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

fn kernels(c: &mut Criterion) {
    let cases = [
        ("conv1x1/56x56x64->64", geom(64, 56, 64, 1, 1, 1)),
        ("conv1x1/14x14x576->96", geom(576, 14, 96, 1, 1, 1)),
        ("dwconv/3x3s1/56x56x144", geom(144, 56, 144, 3, 1, 144)),
        ("dwconv/3x3s2/112x112x96", geom(96, 112, 96, 3, 2, 96)),
        ("dwconv/5x5s1/14x14x672", geom(672, 14, 672, 5, 1, 672)),
        ("conv/3x3s2/224x224x3->32", geom(3, 224, 32, 3, 2, 1)),
        ("groupconv/1x1g3/28x28x240->60", geom(240, 28, 60, 1, 1, 3)),
    ];
    let mut group = c.benchmark_group("kernel");
    for isa in Isa::available() {
        let table = KernelTable::for_isa(*isa);
        for (name, g) in &cases {
            let x = vec![0.5f32; g.in_c * g.in_h * g.in_w];
            let per_out = g.in_c / g.groups * g.kernel[0] * g.kernel[1];
            let w = vec![0.01f32; g.out_c.div_ceil(8) * 8 * per_out];
            let bias = vec![0.1f32; g.out_c];
            let mut y = vec![0.0f32; g.out_c * g.out_h * g.out_w];
            let epi = Epilogue {
                bias: Some(&bias),
                activation: Activation::Relu,
            };
            let f = if g.kernel == [1, 1] && g.groups == 1 {
                table.conv1x1
            } else if g.groups == g.in_c && g.in_c == g.out_c {
                table.depthwise
            } else {
                table.conv
            };
            group.bench_function(format!("{}/{name}", isa.name()), |b| {
                b.iter(|| f(g, &x, &w, &epi, &mut y))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
