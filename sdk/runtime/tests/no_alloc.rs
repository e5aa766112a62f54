//! `Session::run` allocates nothing: a counting global allocator proves it on a model that
//! uses every op.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..3 {
            session.run(&[&input]).unwrap();
            let out = session.output(0).unwrap();
            assert_eq!(out.len(), 10);
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
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
