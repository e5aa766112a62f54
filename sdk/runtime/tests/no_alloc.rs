//! `Session::run` allocates nothing: a counting global allocator proves it on a model that
//! uses every op.

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

#[test]
fn run_does_not_allocate() {
    let _serial = common::serial();
    let bytes = prunus_format::sample::sample_model(3)
        .unwrap()
        .to_bytes(Default::default())
        .unwrap();
    // Vec<u8> from the system allocator is at least 8-byte aligned on every platform we build for.
    let model = prunus::Model::from_bytes(&bytes).unwrap();
    for retain in [prunus::Retain::Outputs, prunus::Retain::All] {
        let mut session = model
            .session(prunus::Options {
                retain,
                ..Default::default()
            })
            .unwrap();
        let input: Vec<f32> = (0..4 * 10 * 9).map(|i| (i as f32 * 0.37).sin()).collect();
        session.run(&[&input]).unwrap();
        let before = common::allocations();
        for _ in 0..3 {
            session.run(&[&input]).unwrap();
            let out = session.output(0).unwrap();
            assert_eq!(out.len(), 10);
        }
        let after = common::allocations();
        assert_eq!(
            after - before,
            0,
            "Session::run allocated {} times",
            after - before
        );
        let sum: f32 = session.output(0).unwrap().iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "softmax output sums to {sum}");
    }
}

/// `relu(conv1x1(x) + x)`: the Add runs in the convolution's epilogue, still allocation-free.
#[test]
fn run_with_a_fused_residual_does_not_allocate() {
    let _serial = common::serial();
    use prunus_format::builder::ModelBuilder;
    use prunus_format::{Activation, BinaryKind, Conv, Op};
    let mut b = ModelBuilder::new("residual", "prunus runtime tests");
    let x = b.add_input("input", &[1, 16, 12, 12]);
    let w: Vec<f32> = (0..256).map(|i| (i as f32 * 0.11).cos() * 0.2).collect();
    let conv = Conv {
        weight: b.add_weight("pw.w", &[16, 16, 1, 1], w),
        bias: None,
        kernel: [1, 1],
        stride: [1, 1],
        pads: [0; 4],
        dilation: [1, 1],
        groups: 1,
        activation: Activation::None,
    };
    let pw = b.add_node("pw", Op::Conv(conv), &[x]).unwrap();
    let add = Op::Binary {
        kind: BinaryKind::Add,
        activation: Activation::Relu,
    };
    let out = b.add_node("add", add, &[pw, x]).unwrap();
    b.set_outputs(&[out]);
    let bytes = b.to_bytes(Default::default()).unwrap();
    let model = prunus::Model::from_bytes(&bytes).unwrap();
    let mut session = model.session(prunus::Options::default()).unwrap();
    assert_eq!(session.report().fused_residuals, 1);
    let input: Vec<f32> = (0..16 * 144).map(|i| (i as f32 * 0.37).sin()).collect();
    session.run(&[&input]).unwrap();
    let before = common::allocations();
    for _ in 0..3 {
        session.run(&[&input]).unwrap();
    }
    let allocated = common::allocations() - before;
    assert_eq!(allocated, 0, "Session::run allocated {allocated} times");
}
