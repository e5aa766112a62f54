//! `prunus_session_run`, `prunus_session_run_into` and `prunus_session_output` allocate
//! nothing once the session exists (the runtime's promise must survive the C ABI layer:
//! argument checks, the panic boundary and the last-error reset included).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use prunus_ffi::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator, only counting them.
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
fn runs_through_the_c_abi_do_not_allocate() {
    let bytes = prunus::format::sample::sample_model(5)
        .unwrap()
        .to_bytes(Default::default())
        .unwrap();
    let input: Vec<f32> = (0..4 * 10 * 9).map(|i| (i as f32 * 0.21).cos()).collect();
    let mut output = vec![0f32; 10];
    let (mut model, mut session) = (null_mut(), null_mut());
    let (mut data, mut len) = (null(), 0usize);
    let inputs = [input.as_ptr()];
    let lens = [input.len()];
    let outputs = [output.as_mut_ptr()];
    let out_lens = [10usize];
    // SAFETY: every pointer is a live local of the right type and length, or a handle the
    // library returned; each handle is freed once.
    unsafe {
        assert_eq!(
            prunus_model_from_memory(bytes.as_ptr().cast(), bytes.len(), &mut model),
            PrunusStatus::Ok
        );
        assert_eq!(
            prunus_session_new(model, null(), &mut session),
            PrunusStatus::Ok
        );
        // Warm up: the first call on a thread may set up thread-locals.
        assert_eq!(
            prunus_session_run(session, inputs.as_ptr(), lens.as_ptr(), 1),
            PrunusStatus::Ok
        );
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(
                prunus_session_run(session, inputs.as_ptr(), lens.as_ptr(), 1),
                PrunusStatus::Ok
            );
            assert_eq!(
                prunus_session_output(session, 0, &mut data, &mut len),
                PrunusStatus::Ok
            );
            assert_eq!(
                prunus_session_run_into(
                    session,
                    inputs.as_ptr(),
                    lens.as_ptr(),
                    1,
                    outputs.as_ptr(),
                    out_lens.as_ptr(),
                    1
                ),
                PrunusStatus::Ok
            );
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(after - before, 0, "allocations during C ABI runs");
        assert_eq!(std::slice::from_raw_parts(data, len), &output[..]);
        prunus_session_free(session);
        prunus_model_free(model);
    }
}
