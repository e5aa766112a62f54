//! End-to-end tests of the C ABI called from Rust, on the format crate's sample model,
//! against the Rust API's results.

use std::ffi::{CStr, c_char};
use std::ptr::{null, null_mut};

use crate::error::last_error_string;
use crate::*;

fn sample_bytes() -> Vec<u8> {
    prunus::format::sample::sample_model(3)
        .unwrap()
        .to_bytes(Default::default())
        .unwrap()
}

fn input() -> Vec<f32> {
    (0..4 * 10 * 9).map(|i| (i as f32 * 0.37).sin()).collect()
}

fn rust_output(bytes: &[u8], input: &[f32]) -> Vec<f32> {
    let model = prunus::Model::from_bytes(bytes).unwrap();
    let mut session = model.session(Default::default()).unwrap();
    session.run(&[input]).unwrap();
    session.output(0).unwrap().to_vec()
}

fn text(ptr: *const c_char) -> String {
    assert!(!ptr.is_null());
    // SAFETY: the library returns NUL-terminated strings that live at least until the next
    // call on this thread.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

// SAFETY: (for every unsafe block below): pointers passed are NULL, point to live locals of
// the right type and size, or are handles returned by the library and freed exactly once.

#[test]
fn model_introspection_and_errors() {
    let bytes = sample_bytes();
    let mut model = null_mut();
    let mut info = PrunusTensorInfo {
        name: null(),
        shape: null(),
        rank: 0,
        element_count: 0,
        dtype: PrunusDtype::F32,
    };
    let mut count = 99;
    // SAFETY: see the note above the tests.
    unsafe {
        assert_eq!(
            prunus_model_from_memory(null(), 10, &mut model),
            PrunusStatus::NullArgument
        );
        assert_eq!(
            prunus_model_from_memory(bytes.as_ptr().add(1).cast(), 64, &mut model),
            PrunusStatus::InvalidArgument
        );
        assert!(
            last_error_string().contains("aligned"),
            "{}",
            last_error_string()
        );
        assert_eq!(
            prunus_model_from_memory(bytes.as_ptr().cast(), 100, &mut model),
            PrunusStatus::InvalidModel
        );
        assert!(
            last_error_string().contains("truncated"),
            "{}",
            last_error_string()
        );
        assert!(model.is_null());
        assert_eq!(
            prunus_model_open(c"/nonexistent/m.prunus".as_ptr(), &mut model),
            PrunusStatus::Io
        );
        assert!(text(prunus_last_error()).contains("/nonexistent/m.prunus"));
        assert_eq!(
            prunus_model_open(null(), &mut model),
            PrunusStatus::NullArgument
        );
        assert_eq!(
            prunus_model_from_memory(bytes.as_ptr().cast(), bytes.len(), &mut model),
            PrunusStatus::Ok
        );
        assert_eq!(text(prunus_last_error()), "");
        assert_eq!(prunus_model_verify(model), PrunusStatus::Ok);
        assert_eq!(
            prunus_model_input_count(model, &mut count),
            PrunusStatus::Ok
        );
        assert_eq!(count, 1);
        assert_eq!(
            prunus_model_output_count(model, &mut count),
            PrunusStatus::Ok
        );
        assert_eq!(count, 1);
        assert_eq!(
            prunus_model_input_count(null(), &mut count),
            PrunusStatus::NullArgument
        );
        assert_eq!(
            prunus_model_input_info(model, 0, &mut info),
            PrunusStatus::Ok
        );
        assert_eq!(text(info.name), "input");
        assert_eq!(
            std::slice::from_raw_parts(info.shape, info.rank),
            &[1, 4, 10, 9]
        );
        assert_eq!(info.element_count, 360);
        assert_eq!(
            prunus_model_output_info(model, 0, &mut info),
            PrunusStatus::Ok
        );
        assert_eq!(info.element_count, 10);
        let before = info.element_count;
        assert_eq!(
            prunus_model_output_info(model, 1, &mut info),
            PrunusStatus::NotFound
        );
        assert!(
            last_error_string().contains("1 output(s)"),
            "{}",
            last_error_string()
        );
        assert_eq!(info.element_count, before);
        prunus_model_free(model);
    }
}

#[test]
fn sessions_match_the_rust_api_and_check_sizes() {
    let bytes = sample_bytes();
    let x = input();
    let expected = rust_output(&bytes, &x);
    let (mut model, mut session) = (null_mut(), null_mut());
    let (mut data, mut len) = (null(), 0usize);
    // SAFETY: see the note above the tests.
    unsafe {
        assert_eq!(
            prunus_model_from_memory(bytes.as_ptr().cast(), bytes.len(), &mut model),
            PrunusStatus::Ok
        );
        assert_eq!(
            prunus_session_new(model, null(), &mut session),
            PrunusStatus::Ok
        );
        // The session outlives the model handle.
        prunus_model_free(model);
        assert_eq!(
            prunus_session_output(session, 0, &mut data, &mut len),
            PrunusStatus::NotRun
        );
        let inputs = [x.as_ptr()];
        let lens = [x.len()];
        assert_eq!(
            prunus_session_run(session, inputs.as_ptr(), lens.as_ptr(), 2),
            PrunusStatus::ShapeMismatch
        );
        let short = [x.len() - 1];
        assert_eq!(
            prunus_session_run(session, inputs.as_ptr(), short.as_ptr(), 1),
            PrunusStatus::ShapeMismatch
        );
        assert!(
            last_error_string().contains("needs 360 values"),
            "{}",
            last_error_string()
        );
        let null_input = [null::<f32>()];
        assert_eq!(
            prunus_session_run(session, null_input.as_ptr(), lens.as_ptr(), 1),
            PrunusStatus::NullArgument
        );
        assert!(
            last_error_string().contains("'inputs[0]'"),
            "{}",
            last_error_string()
        );
        assert_eq!(
            prunus_session_run(session, inputs.as_ptr(), lens.as_ptr(), 1),
            PrunusStatus::Ok
        );
        assert_eq!(
            prunus_session_output(session, 0, &mut data, &mut len),
            PrunusStatus::Ok
        );
        assert_eq!(std::slice::from_raw_parts(data, len), &expected[..]);
        assert_eq!(
            prunus_session_output(session, 1, &mut data, &mut len),
            PrunusStatus::NotFound
        );

        let mut out = vec![-1.0f32; 11];
        let outs = [out.as_mut_ptr()];
        let wrong = [11usize];
        assert_eq!(
            prunus_session_run_into(
                session,
                inputs.as_ptr(),
                lens.as_ptr(),
                1,
                outs.as_ptr(),
                wrong.as_ptr(),
                1
            ),
            PrunusStatus::ShapeMismatch
        );
        assert!(out.iter().all(|&v| v == -1.0));
        assert_eq!(
            prunus_session_run_into(
                session,
                inputs.as_ptr(),
                lens.as_ptr(),
                1,
                outs.as_ptr(),
                wrong.as_ptr(),
                0
            ),
            PrunusStatus::ShapeMismatch
        );
        let right = [10usize];
        assert_eq!(
            prunus_session_run_into(
                session,
                inputs.as_ptr(),
                short.as_ptr(),
                1,
                outs.as_ptr(),
                right.as_ptr(),
                1
            ),
            PrunusStatus::ShapeMismatch
        );
        assert!(out.iter().all(|&v| v == -1.0));
        // A failed run hides the previous outputs.
        assert_eq!(
            prunus_session_output(session, 0, &mut data, &mut len),
            PrunusStatus::NotRun
        );
        assert_eq!(
            prunus_session_run_into(
                session,
                inputs.as_ptr(),
                lens.as_ptr(),
                1,
                outs.as_ptr(),
                right.as_ptr(),
                1
            ),
            PrunusStatus::Ok
        );
        assert_eq!(&out[..10], &expected[..]);
        assert_eq!(out[10], -1.0);
        prunus_session_free(session);
        prunus_session_free(null_mut());
    }
}

#[test]
fn retained_tensors_are_readable_by_name() {
    let bytes = sample_bytes();
    let rust_model = prunus::Model::from_bytes(&bytes).unwrap();
    let graph = rust_model.graph();
    let middle = &graph.tensors[graph.tensors.len() / 2].name;
    let middle_c = std::ffi::CString::new(middle.as_str()).unwrap();
    let x = input();
    let (mut model, mut options, mut session) = (null_mut(), null_mut(), null_mut());
    let (mut data, mut len) = (null(), 0usize);
    // SAFETY: see the note above the tests.
    unsafe {
        assert_eq!(
            prunus_model_from_memory(bytes.as_ptr().cast(), bytes.len(), &mut model),
            PrunusStatus::Ok
        );
        assert_eq!(prunus_options_new(&mut options), PrunusStatus::Ok);
        assert_eq!(
            prunus_options_retain(options, c"no such".as_ptr()),
            PrunusStatus::Ok
        );
        assert_eq!(
            prunus_session_new(model, options, &mut session),
            PrunusStatus::NotFound
        );
        assert!(session.is_null());
        prunus_options_free(options);
        assert_eq!(prunus_options_new(&mut options), PrunusStatus::Ok);
        assert_eq!(
            prunus_options_retain(options, middle_c.as_ptr()),
            PrunusStatus::Ok
        );
        assert_eq!(prunus_options_set_affinity(options, 1), PrunusStatus::Ok);
        assert_eq!(
            prunus_session_new(model, options, &mut session),
            PrunusStatus::Ok
        );
        prunus_options_free(options);
        let inputs = [x.as_ptr()];
        let lens = [x.len()];
        assert_eq!(
            prunus_session_run(session, inputs.as_ptr(), lens.as_ptr(), 1),
            PrunusStatus::Ok
        );
        assert_eq!(
            prunus_session_tensor(session, middle_c.as_ptr(), &mut data, &mut len),
            PrunusStatus::Ok
        );
        let mut rust = rust_model
            .session(prunus::Options {
                retain: prunus::Retain::Named(vec![middle.clone()]),
                ..Default::default()
            })
            .unwrap();
        rust.run(&[&x]).unwrap();
        assert_eq!(
            std::slice::from_raw_parts(data, len),
            rust.tensor(middle).unwrap()
        );
        let first = &graph.tensors[1].name;
        if first != middle {
            let first = std::ffi::CString::new(first.as_str()).unwrap();
            assert_eq!(
                prunus_session_tensor(session, first.as_ptr(), &mut data, &mut len),
                PrunusStatus::NotFound
            );
            assert!(
                last_error_string().contains("retain"),
                "{}",
                last_error_string()
            );
        }
        prunus_session_free(session);
        prunus_model_free(model);
    }
}

#[test]
fn statuses_and_version() {
    assert_eq!(text(prunus_status_str(0)), "ok");
    assert_eq!(text(prunus_status_str(1)), "NULL argument");
    assert_eq!(text(prunus_status_str(-1)), "unknown status");
    assert_eq!(text(prunus_status_str(1000)), "unknown status");
    assert_eq!(text(prunus_version()), env!("CARGO_PKG_VERSION"));
}

/// The version macros of the committed header come from Cargo.toml (ffi/gen-header.sh
/// writes them); this fails when the version was bumped without regenerating the header.
#[test]
fn header_version_macros_match_cargo_toml() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/prunus.h"))
            .expect("include/prunus.h");
    let define = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        let line = header
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{name} missing from include/prunus.h"));
        line[prefix.len()..].trim().to_string()
    };
    assert_eq!(
        define("PRUNUS_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        define("PRUNUS_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        define("PRUNUS_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    assert_eq!(
        define("PRUNUS_VERSION_STRING"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION"))
    );
}
