//! C ABI of the Prunus runtime, installed as `libprunus.so` / `libprunus.a` with the
//! header `include/prunus.h` (generated from this crate by cbindgen; see `ffi/README.md`).
//!
//! Every `extern "C"` function is one call to the panic boundary in [`guard`]: a fallible
//! function returns a [`PrunusStatus`], writes its outputs only on success, and leaves a
//! message for `prunus_last_error()` on this thread otherwise; every pointer argument is
//! NULL-checked by the `arg!` macro before it becomes a reference. Handles are opaque
//! boxes: [`PrunusModel`] (shared between threads), [`PrunusSession`] (one thread at a
//! time) and [`PrunusOptions`].
//!
//! The runtime crate `prunus` stays free of FFI code; this crate only translates.

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::{c_char, c_int};

mod affinity;
mod error;
mod guard;
mod model;
mod options;
mod session;
#[cfg(test)]
mod tests;

pub use affinity::PrunusAffinity;
pub use error::PrunusStatus;
pub use model::{
    PRUNUS_MODEL_ALIGNMENT, PrunusDtype, PrunusModel, PrunusTensorInfo, prunus_model_free,
    prunus_model_from_memory, prunus_model_input_count, prunus_model_input_info, prunus_model_open,
    prunus_model_output_count, prunus_model_output_info, prunus_model_verify,
};
pub use options::{
    PRUNUS_MAX_THREADS, PrunusOptions, prunus_options_free, prunus_options_new,
    prunus_options_retain, prunus_options_set_affinity, prunus_options_set_isa,
    prunus_options_set_threads,
};
pub use session::{
    PrunusSession, prunus_session_free, prunus_session_new, prunus_session_output,
    prunus_session_run, prunus_session_run_into, prunus_session_tensor,
};

/// The library's version, `"MAJOR.MINOR.PATCH"`, as a static string. Compare it with
/// `PRUNUS_VERSION_STRING` to detect a header / library mismatch at run time.
#[unsafe(no_mangle)]
pub extern "C" fn prunus_version() -> *const c_char {
    guard::guard_value("prunus_version", c"?".as_ptr(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// A short static description of `status` (a `PrunusStatus` value), e.g. `"NULL argument"`;
/// `"unknown status"` for a value that is not one. Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn prunus_status_str(status: c_int) -> *const c_char {
    const UNKNOWN: &std::ffi::CStr = c"unknown status";
    guard::guard_value("prunus_status_str", UNKNOWN.as_ptr(), || {
        PrunusStatus::ALL
            .iter()
            .find(|s| **s as c_int == status)
            .map_or(UNKNOWN.as_ptr(), |s| s.description().as_ptr().cast())
    })
}

/// The message of the last failed `prunus_` call **on the calling thread**, naming the
/// function and what went wrong (e.g. `"prunus_session_run: input 0 ('input') needs 12288
/// values (shape [1, 3, 64, 64]), 100 given"`); `""` if that call succeeded. Never NULL.
/// The string is owned by the library and valid until the next `prunus_` call on this
/// thread; copy it to keep it. `prunus_last_error` and the `_free` functions do not change
/// it.
#[unsafe(no_mangle)]
pub extern "C" fn prunus_last_error() -> *const c_char {
    guard::guard_value("prunus_last_error", c"".as_ptr(), error::last_error_ptr)
}
