//! Session options: threads, core affinity, instruction set override, retained tensors.

use std::ffi::{c_char, c_int};

use prunus::{Isa, Options, Retain};

use crate::affinity::PrunusAffinity;
use crate::error::{Failure, PrunusStatus};
use crate::guard::{arg, free_handle, guard, guard_value, into_handle};

/// Most worker threads a session accepts.
pub const PRUNUS_MAX_THREADS: usize = 256;

/// How sessions run (opaque): made by `prunus_options_new`, read by `prunus_session_new`,
/// which copies it, so one options object may serve many sessions and be freed right
/// after. Not synchronised: do not change one from two threads at once.
#[derive(Debug, Default)]
pub struct PrunusOptions {
    pub(crate) options: Options,
}

/// Creates options with the defaults: 1 thread, `PRUNUS_AFFINITY_ANY`, the best instruction
/// set (or the `PRUNUS_ISA` environment variable), only outputs retained. Release them with
/// `prunus_options_free`.
///
/// # Safety
/// `out_options` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_options_new(out_options: *mut *mut PrunusOptions) -> PrunusStatus {
    guard("prunus_options_new", || {
        arg!(out out_options).write(into_handle(PrunusOptions::default()));
        Ok(())
    })
}

/// Releases options. NULL is a no-op.
///
/// # Safety
/// `options` is NULL or options from `prunus_options_new` not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_options_free(options: *mut PrunusOptions) {
    guard_value("prunus_options_free", (), || {
        // SAFETY: the caller's contract: a live handle from `into_handle`, used by nobody
        // else.
        unsafe { free_handle(options) }
    })
}

/// Sets the number of worker threads, 1 to `PRUNUS_MAX_THREADS` (else
/// `PRUNUS_STATUS_INVALID_ARGUMENT`). The kernels are single-threaded until the threaded
/// kernels land: the value is validated and recorded.
///
/// # Safety
/// `options` is NULL or live options not used by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_options_set_threads(
    options: *mut PrunusOptions,
    threads: usize,
) -> PrunusStatus {
    guard("prunus_options_set_threads", || {
        let options = arg!(mut options);
        if !(1..=PRUNUS_MAX_THREADS).contains(&threads) {
            return Err(Failure::invalid(
                "threads",
                format!("{threads} is not in 1..={PRUNUS_MAX_THREADS}"),
            ));
        }
        options.options.threads = threads;
        Ok(())
    })
}

/// Chooses the cores runs use: one of the `PrunusAffinity` values (others give
/// `PRUNUS_STATUS_INVALID_ARGUMENT`). With `PRUNUS_AFFINITY_BIG` or `_LITTLE` on a
/// big.LITTLE CPU, the session's worker threads are pinned to those cores and each
/// `prunus_session_run` pins the calling thread to them, restoring its CPU mask before
/// returning; on a CPU whose cores are alike nothing is pinned.
///
/// # Safety
/// `options` is NULL or live options not used by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_options_set_affinity(
    options: *mut PrunusOptions,
    affinity: c_int,
) -> PrunusStatus {
    guard("prunus_options_set_affinity", || {
        let options = arg!(mut options);
        options.options.affinity = PrunusAffinity::from_raw(affinity).ok_or_else(|| {
            Failure::invalid(
                "affinity",
                format!("{affinity} is not a PrunusAffinity value (0, 1 or 2)"),
            )
        })?;
        Ok(())
    })
}

/// Overrides the instruction set by name (`"scalar"`, ...; case-insensitive); NULL restores
/// the default (best available, or the `PRUNUS_ISA` environment variable). An instruction
/// set this build or CPU lacks gives `PRUNUS_STATUS_UNSUPPORTED`, with the available ones in
/// the message.
///
/// # Safety
/// `options` is NULL or live options not used by another thread; `isa` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_options_set_isa(
    options: *mut PrunusOptions,
    isa: *const c_char,
) -> PrunusStatus {
    guard("prunus_options_set_isa", || {
        let options = arg!(mut options);
        options.options.isa = if isa.is_null() {
            None
        } else {
            let name = arg!(str isa);
            let name = name
                .to_str()
                .map_err(|_| Failure::invalid("isa", "not UTF-8"))?;
            Some(Isa::parse(name)?)
        };
        Ok(())
    })
}

/// Keeps the tensor called `tensor_name` (its name in the source model) readable after
/// each run, with `prunus_session_tensor`; may be called several times. A name the model
/// does not have fails later, in `prunus_session_new`, with `PRUNUS_STATUS_NOT_FOUND`.
///
/// # Safety
/// `options` is NULL or live options not used by another thread; `tensor_name` is NULL or a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_options_retain(
    options: *mut PrunusOptions,
    tensor_name: *const c_char,
) -> PrunusStatus {
    guard("prunus_options_retain", || {
        let options = arg!(mut options);
        let name = arg!(str tensor_name)
            .to_str()
            .map_err(|_| Failure::invalid("tensor_name", "not UTF-8"))?
            .to_string();
        match &mut options.options.retain {
            Retain::Named(names) => names.push(name),
            Retain::All => {}
            retain @ Retain::Outputs => *retain = Retain::Named(vec![name]),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_string;
    use std::ptr::{null, null_mut};

    #[test]
    fn options_validate_their_values() {
        let mut options = null_mut();
        // SAFETY: (whole test) pointers are NULL or from prunus_options_new, freed once.
        unsafe {
            assert_eq!(prunus_options_new(null_mut()), PrunusStatus::NullArgument);
            assert_eq!(prunus_options_new(&mut options), PrunusStatus::Ok);
            assert_eq!(
                prunus_options_set_threads(options, 0),
                PrunusStatus::InvalidArgument
            );
            assert!(last_error_string().contains("'threads'"));
            assert_eq!(prunus_options_set_threads(options, 4), PrunusStatus::Ok);
            assert_eq!(
                prunus_options_set_threads(null_mut(), 4),
                PrunusStatus::NullArgument
            );
            assert_eq!(
                prunus_options_set_affinity(options, 7),
                PrunusStatus::InvalidArgument
            );
            assert_eq!(prunus_options_set_affinity(options, 1), PrunusStatus::Ok);
            assert_eq!(
                prunus_options_set_isa(options, c"sve9".as_ptr()),
                PrunusStatus::Unsupported
            );
            assert!(
                last_error_string().contains("scalar"),
                "{}",
                last_error_string()
            );
            assert_eq!(
                prunus_options_set_isa(options, c"SCALAR".as_ptr()),
                PrunusStatus::Ok
            );
            assert_eq!((*options).options.isa, Some(Isa::Scalar));
            assert_eq!(prunus_options_set_isa(options, null()), PrunusStatus::Ok);
            assert_eq!((*options).options.isa, None);
            assert_eq!(
                prunus_options_retain(options, null()),
                PrunusStatus::NullArgument
            );
            assert_eq!(
                prunus_options_retain(options, c"a".as_ptr()),
                PrunusStatus::Ok
            );
            assert_eq!(
                prunus_options_retain(options, c"b".as_ptr()),
                PrunusStatus::Ok
            );
            assert_eq!(
                (*options).options.retain,
                Retain::Named(vec!["a".into(), "b".into()])
            );
            assert_eq!((*options).options.threads, 4);
            assert_eq!((*options).options.affinity, prunus::Affinity::Big);
            prunus_options_free(options);
            prunus_options_free(null_mut());
        }
    }
}
