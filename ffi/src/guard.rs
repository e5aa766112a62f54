//! The panic boundary and the pointer checks that every entry point goes through.
//!
//! Each `extern "C"` function is a single call to [`guard`] (fallible functions) or
//! [`guard_value`] (infallible ones), and unpacks every pointer argument with [`arg!`]: the
//! only place where a C pointer becomes a Rust reference, after a NULL (and alignment)
//! check. Outputs go through [`Out`], which the body writes last, so a failing call leaves
//! them untouched.

use std::any::Any;
use std::ffi::{CStr, c_char};
use std::fmt::{self, Display};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use crate::error::{Failure, PrunusStatus, clear_last_error, set_last_error};

/// Runs the body of the fallible entry point `function`: clears this thread's last error,
/// turns a `Failure` into its status and message, and a panic into `PRUNUS_STATUS_PANIC`.
pub(crate) fn guard(
    function: &'static str,
    body: impl FnOnce() -> Result<(), Failure>,
) -> PrunusStatus {
    clear_last_error();
    // Unwind safety: a body that panics leaves at most one handle half-updated; the status
    // tells the caller not to use it again (documented on PRUNUS_STATUS_PANIC).
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PrunusStatus::Ok,
        Ok(Err(failure)) => {
            set_last_error(&format!("{function}: {}", failure.message));
            failure.status
        }
        Err(payload) => {
            set_last_error(&format!(
                "{function}: internal error (panic): {}",
                panic_message(payload.as_ref())
            ));
            PrunusStatus::Panic
        }
    }
}

/// Runs the body of the infallible entry point `function` (free functions, accessors of
/// static strings): a panic returns `fallback` and is recorded as this thread's last error.
/// It does not clear the last error, so `prunus_last_error` and `prunus_*_free` may be
/// called between a failure and reading its message.
pub(crate) fn guard_value<T>(function: &'static str, fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        set_last_error(&format!(
            "{function}: internal error (panic): {}",
            panic_message(payload.as_ref())
        ));
        fallback
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "non-string panic payload"
    }
}

/// Unpacks a pointer argument of an entry point, returning early with
/// `PRUNUS_STATUS_NULL_ARGUMENT` (naming the argument) if it is NULL:
///
/// - `arg!(p)`: `*const T` → `&T`; `arg!(mut p)`: `*mut T` → `&mut T`;
/// - `arg!(out p)`: `*mut T` → [`Out<T>`], written only when the call succeeds;
/// - `arg!(str p)`: `*const c_char` → `&CStr`;
/// - `arg!(slice p, len)`: `*const T` → `&[T]` (misaligned or oversized →
///   `PRUNUS_STATUS_INVALID_ARGUMENT`).
///
/// Every entry point documents, in its `# Safety` section, that a non-NULL pointer argument
/// is valid for the access it names for the duration of the call: that contract is what
/// makes each dereference below sound.
macro_rules! arg {
    ($p:ident) => {
        // SAFETY: the entry point's contract: non-NULL `$p` is valid for reads during the
        // call; NULL is rejected by `deref`.
        unsafe { $crate::guard::deref($p, stringify!($p)) }?
    };
    (mut $p:ident) => {
        // SAFETY: the entry point's contract: non-NULL `$p` is valid for reads and writes
        // during the call and not aliased by another thread; NULL is rejected.
        unsafe { $crate::guard::deref_mut($p, stringify!($p)) }?
    };
    (out $p:ident) => {
        // SAFETY: the entry point's contract: non-NULL `$p` is valid for one write of its
        // pointee type during the call; NULL is rejected.
        unsafe { $crate::guard::Out::new($p, stringify!($p)) }?
    };
    (str $p:ident) => {
        // SAFETY: the entry point's contract: non-NULL `$p` points to a NUL-terminated
        // string that lives for the call; NULL is rejected.
        unsafe { $crate::guard::c_str($p, stringify!($p)) }?
    };
    (slice $p:ident, $len:expr) => {
        // SAFETY: the entry point's contract: non-NULL `$p` points to `$len` initialised
        // elements valid for reads during the call; NULL, misalignment and sizes past
        // isize::MAX are rejected.
        unsafe { $crate::guard::slice($p, $len, stringify!($p)) }?
    };
}
pub(crate) use arg;

/// `&T` from a pointer argument named `name`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `T` for `'a` and not mutated meanwhile.
pub(crate) unsafe fn deref<'a, T>(ptr: *const T, name: impl Display) -> Result<&'a T, Failure> {
    // SAFETY: forwarded to the caller; `as_ref` maps NULL to None.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// `&mut T` from a pointer argument named `name`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads and writes of `T` for `'a`, and not accessed
/// through another pointer meanwhile.
pub(crate) unsafe fn deref_mut<'a, T>(
    ptr: *mut T,
    name: impl Display,
) -> Result<&'a mut T, Failure> {
    // SAFETY: forwarded to the caller; `as_mut` maps NULL to None.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// A C string argument named `name`.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string valid for reads for `'a`.
pub(crate) unsafe fn c_str<'a>(
    ptr: *const c_char,
    name: impl Display,
) -> Result<&'a CStr, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(ptr) })
}

/// A slice argument `ptr[0..len]` named `name` (NULL is rejected even when `len` is 0).
///
/// # Safety
/// A non-NULL `ptr` must point to `len` initialised values of `T` valid for reads for `'a`.
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    name: impl Display,
) -> Result<&'a [T], Failure> {
    check_buffer(ptr, len, name)?;
    // SAFETY: non-NULL, aligned and at most isize::MAX bytes (checked above); valid for
    // `len` reads by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Checks that a caller's buffer of `len` values of `T` can be turned into a slice: not
/// NULL, aligned for `T`, at most `isize::MAX` bytes.
pub(crate) fn check_buffer<T>(
    ptr: *const T,
    len: usize,
    name: impl Display,
) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(
            &name,
            format!(
                "pointer {ptr:p} is not aligned to {} bytes",
                std::mem::align_of::<T>()
            ),
        ));
    }
    if len
        .checked_mul(std::mem::size_of::<T>())
        .is_none_or(|n| n > isize::MAX as usize)
    {
        return Err(Failure::invalid(name, format!("length {len} is too large")));
    }
    Ok(())
}

/// The name of element `.1` of the array argument `.0` (`inputs[2]`), formatted only when
/// a message needs it, so that naming costs nothing on success.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Indexed(pub &'static str, pub usize);

impl Display for Indexed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// An output argument: checked for NULL when the call starts, written when it succeeds.
#[derive(Debug)]
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Wraps the output pointer named `name`.
    ///
    /// # Safety
    /// A non-NULL `ptr` must be valid for one write of `T` until the entry point returns
    /// (alignment is checked here).
    pub(crate) unsafe fn new(ptr: *mut T, name: impl Display) -> Result<Self, Failure> {
        let ptr = NonNull::new(ptr).ok_or_else(|| Failure::null(&name))?;
        if !ptr.is_aligned() {
            return Err(Failure::invalid(name, "output pointer is misaligned"));
        }
        Ok(Out(ptr))
    }

    /// Writes the output; consumes `self` so each output is written at most once.
    pub(crate) fn write(self, value: T) {
        // SAFETY: `new`'s contract: valid and aligned for one write during the call. The
        // old value is not dropped: C outputs are plain data or uninitialised.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Moves `value` to the heap and hands ownership to C as an opaque handle.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back ownership of a handle made by [`into_handle`] and drops it; NULL is a no-op.
///
/// # Safety
/// A non-NULL `handle` must come from [`into_handle`] with the same `T` and not have been
/// freed; no other reference to it may be in use.
pub(crate) unsafe fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: the caller's contract: a live pointer from `Box::into_raw`.
        drop(unsafe { Box::from_raw(handle) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_string;

    #[test]
    fn success_clears_the_last_error() {
        set_last_error("stale");
        assert_eq!(guard("f", || Ok(())), PrunusStatus::Ok);
        assert_eq!(last_error_string(), "");
    }

    #[test]
    fn failure_returns_its_status_with_the_function_name() {
        let status = guard("prunus_x", || {
            Err(Failure::new(PrunusStatus::NotFound, "no tensor 'y'"))
        });
        assert_eq!(status, PrunusStatus::NotFound);
        assert_eq!(last_error_string(), "prunus_x: no tensor 'y'");
    }

    #[test]
    fn panics_become_a_status_and_a_message() {
        let status = guard("prunus_boom", || panic!("kernel bug {}", 42));
        assert_eq!(status, PrunusStatus::Panic);
        assert_eq!(
            last_error_string(),
            "prunus_boom: internal error (panic): kernel bug 42"
        );
        let status = guard("prunus_boom", || std::panic::panic_any(7u8));
        assert_eq!(status, PrunusStatus::Panic);
        assert!(last_error_string().ends_with("non-string panic payload"));
        let value = guard_value("prunus_v", 5, || panic!("static"));
        assert_eq!(value, 5);
        assert!(last_error_string().ends_with("panic): static"));
        set_last_error("kept");
        assert_eq!(guard_value("prunus_v", 0, || 9), 9);
        assert_eq!(last_error_string(), "kept");
    }

    fn read_one(ptr: *const u32, out_value: *mut u32) -> PrunusStatus {
        guard("read_one", || {
            let value = arg!(ptr);
            let out = arg!(out out_value);
            out.write(*value + 1);
            Ok(())
        })
    }

    #[test]
    fn null_pointers_are_named_and_outputs_untouched() {
        let mut out = 0u32;
        assert_eq!(
            read_one(std::ptr::null(), &mut out),
            PrunusStatus::NullArgument
        );
        assert_eq!(last_error_string(), "read_one: argument 'ptr' is NULL");
        assert_eq!(
            read_one(&41, std::ptr::null_mut()),
            PrunusStatus::NullArgument
        );
        assert_eq!(
            last_error_string(),
            "read_one: argument 'out_value' is NULL"
        );
        assert_eq!(out, 0);
        assert_eq!(read_one(&41, &mut out), PrunusStatus::Ok);
        assert_eq!(out, 42);
    }

    fn sum(values: *const f32, len: usize, out_sum: *mut f32) -> PrunusStatus {
        guard("sum", || {
            let values = arg!(slice values, len);
            let out = arg!(out out_sum);
            out.write(values.iter().sum());
            Ok(())
        })
    }

    #[test]
    fn slices_are_checked() {
        let mut total = -1.0;
        assert_eq!(
            sum(std::ptr::null(), 0, &mut total),
            PrunusStatus::NullArgument
        );
        assert_eq!(
            sum(std::ptr::null(), 3, &mut total),
            PrunusStatus::NullArgument
        );
        assert_eq!(total, -1.0);
        let data = [1.0f32, 2.0, 3.0, 4.0];
        let misaligned = data.as_ptr().cast::<u8>().wrapping_add(1).cast::<f32>();
        assert_eq!(
            sum(misaligned, 2, &mut total),
            PrunusStatus::InvalidArgument
        );
        assert!(last_error_string().contains("not aligned"));
        assert_eq!(
            sum(data.as_ptr(), usize::MAX / 2, &mut total),
            PrunusStatus::InvalidArgument
        );
        assert_eq!(total, -1.0);
        assert_eq!(sum(data.as_ptr(), 0, &mut total), PrunusStatus::Ok);
        assert_eq!(total, 0.0);
        assert_eq!(sum(data.as_ptr(), 4, &mut total), PrunusStatus::Ok);
        assert_eq!(total, 10.0);
    }

    #[test]
    fn handles_round_trip_and_null_free_is_a_no_op() {
        let handle = into_handle(String::from("model"));
        // SAFETY: the handle was just made by `into_handle::<String>`.
        unsafe { free_handle(handle) };
        // SAFETY: NULL is always accepted.
        unsafe { free_handle::<String>(std::ptr::null_mut()) };
    }
}
