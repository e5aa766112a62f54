//! `Session::run` allocates nothing: a counting global allocator proves it on a model that
//! uses every op.

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

#[test]
fn run_does_not_allocate() {
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
