//! Models: open from a file or from the caller's memory, introspect inputs and outputs,
//! verify, free.

use std::ffi::{CString, c_char, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use prunus::Model;
use prunus::format::TensorInfo;

use crate::error::{Failure, PrunusStatus};
use crate::guard::{Out, arg, check_buffer, free_handle, guard, guard_value, into_handle};

/// Alignment in bytes that a buffer given to `prunus_model_from_memory` must have: weights
/// are read in place as `float`. `malloc`, `mmap` and `_Alignas(4)` arrays satisfy it.
pub const PRUNUS_MODEL_ALIGNMENT: usize = 4;
const _: () = assert!(PRUNUS_MODEL_ALIGNMENT == prunus::model::BUFFER_ALIGN);

/// Element type of a tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrunusDtype {
    /// 32-bit IEEE-754 `float`, the type of every input and output today.
    F32 = 0,
}

/// Description of one model input or output, filled by `prunus_model_input_info` and
/// `prunus_model_output_info`. The pointers are owned by the model and valid until
/// `prunus_model_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PrunusTensorInfo {
    /// Tensor name from the source model (NUL-terminated).
    pub name: *const c_char,
    /// `rank` dimensions, outermost first (NCHW for images, batch 1).
    pub shape: *const usize,
    /// Number of dimensions.
    pub rank: usize,
    /// Number of elements: the product of the dimensions, the length a buffer must have.
    pub element_count: usize,
    /// Element type.
    pub dtype: PrunusDtype,
}

/// One input or output with its C-side strings and shape, built once at open.
#[derive(Debug)]
pub(crate) struct TensorMeta {
    name: CString,
    shape: Vec<usize>,
    element_count: usize,
}

impl TensorMeta {
    fn new(info: &TensorInfo) -> Self {
        // Interior NULs cannot come from a valid model name, but a crafted file could hold
        // one: replace rather than fail the open.
        let name = CString::new(info.name.replace('\0', "?")).unwrap_or_default();
        TensorMeta {
            name,
            shape: info.shape.iter().map(|&d| d as usize).collect(),
            element_count: info.numel(),
        }
    }

    fn info(&self) -> PrunusTensorInfo {
        PrunusTensorInfo {
            name: self.name.as_ptr(),
            shape: self.shape.as_ptr(),
            rank: self.shape.len(),
            element_count: self.element_count,
            dtype: PrunusDtype::F32,
        }
    }

    /// The element count, what a buffer for this tensor must hold.
    pub(crate) fn element_count(&self) -> usize {
        self.element_count
    }
}

/// A validated, immutable model (opaque). Share it freely between threads: every function
/// taking a `const PrunusModel *` may be called concurrently on the same model.
#[derive(Debug)]
pub struct PrunusModel {
    pub(crate) model: Model<'static>,
    pub(crate) inputs: Vec<TensorMeta>,
    pub(crate) outputs: Vec<TensorMeta>,
}

impl PrunusModel {
    fn new(model: Model<'static>) -> Self {
        PrunusModel {
            inputs: model.inputs().map(TensorMeta::new).collect(),
            outputs: model.outputs().map(TensorMeta::new).collect(),
            model,
        }
    }
}

/// Opens a model file: memory-maps it and validates its header, section table and graph.
/// Weights are read in place when a session first runs (see `prunus_model_verify` for a
/// full checksum pass). The file must not be modified or truncated while the model or any
/// of its sessions is alive.
///
/// Returns `PRUNUS_STATUS_IO` if the file cannot be read, `PRUNUS_STATUS_INVALID_MODEL` if
/// it is not a valid model, `PRUNUS_STATUS_UNSUPPORTED` for a newer format version.
/// On success `*out_model` receives a model to release with `prunus_model_free`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out_model` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_open(
    path: *const c_char,
    out_model: *mut *mut PrunusModel,
) -> PrunusStatus {
    guard("prunus_model_open", || {
        let path = arg!(str path);
        let out = arg!(out out_model);
        let model = Model::open(Path::new(std::ffi::OsStr::from_bytes(path.to_bytes())))?;
        out.write(into_handle(PrunusModel::new(model)));
        Ok(())
    })
}

/// Opens a model held in the caller's memory (flash, an embedded array, a buffer read from
/// the network) without copying it, and validates it like `prunus_model_open`.
///
/// `data` must be aligned to `PRUNUS_MODEL_ALIGNMENT` bytes (else
/// `PRUNUS_STATUS_INVALID_ARGUMENT`). **The caller keeps the `len` bytes at `data` alive and
/// unmodified until the model and every session created from it are freed.**
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes that outlive the model and its
/// sessions; `out_model` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_from_memory(
    data: *const c_void,
    len: usize,
    out_model: *mut *mut PrunusModel,
) -> PrunusStatus {
    guard("prunus_model_from_memory", || {
        let bytes: *const u8 = data.cast();
        check_buffer(bytes, len, "data")?;
        let out = arg!(out out_model);
        // SAFETY: non-NULL and at most isize::MAX bytes (checked by `check_buffer`); `len`
        // readable bytes that the caller keeps alive and unmodified for as long as the
        // model or one of its sessions lives (the documented contract), which is what the
        // 'static lifetime stands for here.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(bytes, len) };
        let model = Model::from_bytes(bytes)?;
        out.write(into_handle(PrunusModel::new(model)));
        Ok(())
    })
}

/// Releases a model. Sessions keep what they need: they stay usable after their model is
/// freed (for `prunus_model_from_memory`, the caller's buffer must still outlive them).
/// NULL is a no-op.
///
/// # Safety
/// `model` is NULL or a model from `prunus_model_open` / `prunus_model_from_memory` that is
/// not freed yet and not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_free(model: *mut PrunusModel) {
    guard_value("prunus_model_free", (), || {
        // SAFETY: the caller's contract: a live handle from `into_handle`, used by nobody
        // else.
        unsafe { free_handle(model) }
    })
}

/// Checks the checksum of every weight byte (a full read of the file): returns
/// `PRUNUS_STATUS_INVALID_MODEL` if the weights are corrupt. Opening checks only the
/// metadata, so call this once after copying a model to a board.
///
/// # Safety
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_verify(model: *const PrunusModel) -> PrunusStatus {
    guard("prunus_model_verify", || {
        let model = arg!(model);
        model.model.verify()?;
        Ok(())
    })
}

/// Writes the number of model inputs (the length of the input arrays of
/// `prunus_session_run`) to `*out_count`.
///
/// # Safety
/// `model` is NULL or a live model; `out_count` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_input_count(
    model: *const PrunusModel,
    out_count: *mut usize,
) -> PrunusStatus {
    guard("prunus_model_input_count", || {
        let model = arg!(model);
        arg!(out out_count).write(model.inputs.len());
        Ok(())
    })
}

/// Writes the number of model outputs to `*out_count`.
///
/// # Safety
/// `model` is NULL or a live model; `out_count` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_output_count(
    model: *const PrunusModel,
    out_count: *mut usize,
) -> PrunusStatus {
    guard("prunus_model_output_count", || {
        let model = arg!(model);
        arg!(out out_count).write(model.outputs.len());
        Ok(())
    })
}

fn tensor_info(
    list: &[TensorMeta],
    kind: &str,
    index: usize,
    out: Out<PrunusTensorInfo>,
) -> Result<(), Failure> {
    let meta = list.get(index).ok_or_else(|| {
        Failure::new(
            PrunusStatus::NotFound,
            format!(
                "{kind} index {index} out of range: the model has {} {kind}(s)",
                list.len()
            ),
        )
    })?;
    out.write(meta.info());
    Ok(())
}

/// Describes input `index` (name, shape, element count, type) in `*out_info`; the strings
/// and shape it points to live as long as the model. `PRUNUS_STATUS_NOT_FOUND` if `index`
/// is not below `prunus_model_input_count`.
///
/// # Safety
/// `model` is NULL or a live model; `out_info` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_input_info(
    model: *const PrunusModel,
    index: usize,
    out_info: *mut PrunusTensorInfo,
) -> PrunusStatus {
    guard("prunus_model_input_info", || {
        let model = arg!(model);
        tensor_info(&model.inputs, "input", index, arg!(out out_info))
    })
}

/// Describes output `index` in `*out_info`, like `prunus_model_input_info`.
///
/// # Safety
/// `model` is NULL or a live model; `out_info` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_model_output_info(
    model: *const PrunusModel,
    index: usize,
    out_info: *mut PrunusTensorInfo,
) -> PrunusStatus {
    guard("prunus_model_output_info", || {
        let model = arg!(model);
        tensor_info(&model.outputs, "output", index, arg!(out out_info))
    })
}
