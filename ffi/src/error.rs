//! Status codes, the typed failure every entry point returns internally, and the per-thread
//! last-error message.

use std::cell::RefCell;
use std::ffi::c_char;

use prunus::format::FormatError;

/// What a fallible `prunus_` function returns. Only `PRUNUS_STATUS_OK` means that the
/// function's outputs were written; on any other status they are left untouched and
/// `prunus_last_error()` describes what went wrong. New statuses are only ever added at the
/// end, so treat unknown values as errors.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrunusStatus {
    /// Success: the outputs are written.
    Ok = 0,
    /// A required pointer argument was NULL (the message names it).
    NullArgument = 1,
    /// An argument has an invalid value: zero threads, an unknown enum value, a misaligned
    /// buffer, a string that is not UTF-8.
    InvalidArgument = 2,
    /// The model file could not be opened, read or mapped.
    Io = 3,
    /// The file or buffer is not a valid Prunus model: bad magic, truncated, checksum
    /// mismatch, invalid graph. The message says where.
    InvalidModel = 4,
    /// The number or the size of inputs or outputs does not match the model.
    ShapeMismatch = 5,
    /// No input or output at that index, no tensor of that name, or a tensor that is not
    /// retained after a run.
    NotFound = 6,
    /// The model or the options need something this build does not have: a newer format
    /// version, a weight encoding, an instruction set.
    Unsupported = 7,
    /// Memory for the session could not be reserved.
    OutOfMemory = 8,
    /// Outputs were asked for before a successful run of the session.
    NotRun = 9,
    /// A bug inside Prunus: a panic was caught at the API boundary. The handle involved
    /// may be freed but should not be used again.
    Panic = 10,
}

impl PrunusStatus {
    /// Every status, in numeric order.
    pub const ALL: [PrunusStatus; 11] = [
        PrunusStatus::Ok,
        PrunusStatus::NullArgument,
        PrunusStatus::InvalidArgument,
        PrunusStatus::Io,
        PrunusStatus::InvalidModel,
        PrunusStatus::ShapeMismatch,
        PrunusStatus::NotFound,
        PrunusStatus::Unsupported,
        PrunusStatus::OutOfMemory,
        PrunusStatus::NotRun,
        PrunusStatus::Panic,
    ];

    /// A short NUL-terminated description of the status.
    pub const fn description(self) -> &'static str {
        match self {
            PrunusStatus::Ok => "ok\0",
            PrunusStatus::NullArgument => "NULL argument\0",
            PrunusStatus::InvalidArgument => "invalid argument\0",
            PrunusStatus::Io => "I/O error\0",
            PrunusStatus::InvalidModel => "invalid or corrupt model\0",
            PrunusStatus::ShapeMismatch => "shape or size mismatch\0",
            PrunusStatus::NotFound => "not found\0",
            PrunusStatus::Unsupported => "unsupported\0",
            PrunusStatus::OutOfMemory => "out of memory\0",
            PrunusStatus::NotRun => "no successful run yet\0",
            PrunusStatus::Panic => "internal error (panic)\0",
        }
    }
}

/// Why an entry point failed: the status it returns and the message it leaves for
/// `prunus_last_error()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The status returned to C.
    pub status: PrunusStatus,
    /// What went wrong, with the context a user needs to fix it.
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: PrunusStatus, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A NULL pointer where `argument` was required.
    pub fn null(argument: impl std::fmt::Display) -> Self {
        Failure::new(
            PrunusStatus::NullArgument,
            format!("argument '{argument}' is NULL"),
        )
    }

    /// An invalid value of `argument`.
    pub fn invalid(argument: impl std::fmt::Display, why: impl std::fmt::Display) -> Self {
        Failure::new(
            PrunusStatus::InvalidArgument,
            format!("argument '{argument}': {why}"),
        )
    }
}

/// The status a runtime error maps to. Exhaustive on purpose: a new runtime or format error
/// must be classified here before the C ABI builds.
pub(crate) fn status_of(error: &prunus::Error) -> PrunusStatus {
    use prunus::Error as E;
    match error {
        E::Io { .. } => PrunusStatus::Io,
        E::Format(format) => match format {
            FormatError::UnsupportedVersion { .. } | FormatError::UnsupportedEncoding { .. } => {
                PrunusStatus::Unsupported
            }
            FormatError::UnalignedBuffer { .. } => PrunusStatus::InvalidArgument,
            FormatError::Truncated { .. }
            | FormatError::BadMagic { .. }
            | FormatError::Checksum { .. }
            | FormatError::SectionOutOfRange { .. }
            | FormatError::SectionTable(_)
            | FormatError::GraphDecode { .. }
            | FormatError::WeightOutOfRange { .. }
            | FormatError::MisalignedWeight { .. }
            | FormatError::WeightSize { .. }
            | FormatError::Oversized { .. }
            | FormatError::ShapeMismatch { .. }
            | FormatError::InvalidGraph(_) => PrunusStatus::InvalidModel,
        },
        E::SparseWeight { .. } => PrunusStatus::InvalidModel,
        E::InputCount { .. } | E::InputSize { .. } => PrunusStatus::ShapeMismatch,
        E::NoSuchTensor(_) | E::OutputIndex { .. } | E::NotRetained(_) => PrunusStatus::NotFound,
        E::NotContiguous { .. } => PrunusStatus::InvalidArgument,
        E::Isa { .. } => PrunusStatus::Unsupported,
    }
}

impl From<prunus::Error> for Failure {
    fn from(error: prunus::Error) -> Self {
        Failure::new(status_of(&error), error.to_string())
    }
}

thread_local! {
    /// The NUL-terminated message of the last failed call on this thread; empty (no NUL)
    /// after a successful one. Its capacity is kept, so clearing it never allocates.
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Forgets this thread's last error (every fallible entry point starts with it). Like the
/// two functions below, it does nothing if the thread-local is already destroyed (a call
/// from a thread-exit destructor), rather than panic outside the panic boundary.
pub(crate) fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|cell| cell.borrow_mut().clear());
}

/// Records `message` as this thread's last error; interior NULs become `?`.
pub(crate) fn set_last_error(message: &str) {
    let _ = LAST_ERROR.try_with(|cell| {
        let mut buffer = cell.borrow_mut();
        buffer.clear();
        buffer.extend(message.bytes().map(|b| if b == 0 { b'?' } else { b }));
        buffer.push(0);
    });
}

/// This thread's last error as a C string; `""` if the last call succeeded. The pointer
/// stays valid until the next `prunus_` call on this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|cell| {
            let buffer = cell.borrow();
            if buffer.is_empty() {
                c"".as_ptr()
            } else {
                buffer.as_ptr().cast()
            }
        })
        .unwrap_or(c"".as_ptr())
}

/// This thread's last error as a Rust string (for tests and the C++-free Rust callers).
#[cfg(test)]
pub(crate) fn last_error_string() -> String {
    LAST_ERROR.with_borrow(|buffer| {
        String::from_utf8_lossy(buffer.strip_suffix(&[0]).unwrap_or(buffer)).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_numbered_in_order_and_described() {
        for (i, status) in PrunusStatus::ALL.iter().enumerate() {
            assert_eq!(*status as usize, i);
            let text = status.description();
            assert!(text.ends_with('\0') && text.len() > 1, "{status:?}");
            assert_eq!(text.matches('\0').count(), 1);
        }
    }

    #[test]
    fn last_error_is_per_thread_and_nul_safe() {
        set_last_error("main\0thread");
        assert_eq!(last_error_string(), "main?thread");
        std::thread::spawn(|| {
            assert_eq!(last_error_string(), "");
            set_last_error("other");
            assert_eq!(last_error_string(), "other");
        })
        .join()
        .unwrap();
        assert_eq!(last_error_string(), "main?thread");
        clear_last_error();
        assert_eq!(last_error_string(), "");
        // SAFETY: the pointer is a NUL-terminated static string while the message is empty.
        let empty = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert!(empty.is_empty());
    }

    #[test]
    fn runtime_errors_map_to_statuses() {
        let io = prunus::Model::open("/nonexistent/prunus-ffi-test.prunus").unwrap_err();
        assert_eq!(status_of(&io), PrunusStatus::Io);
        let garbage = [0u32; 16];
        let bytes: &[u8] = bytemuck_bytes(&garbage);
        let bad = prunus::Model::from_bytes(bytes).unwrap_err();
        assert_eq!(status_of(&bad), PrunusStatus::InvalidModel);
        let isa = prunus::Isa::parse("sve9").unwrap_err();
        assert_eq!(Failure::from(isa).status, PrunusStatus::Unsupported);
    }

    fn bytemuck_bytes(words: &[u32]) -> &[u8] {
        // SAFETY: u32 has no padding and u8 has alignment 1; the length covers the same bytes.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast(), std::mem::size_of_val(words)) }
    }
}
