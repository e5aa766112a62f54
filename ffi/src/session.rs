//! Sessions: create from a model and options, run on caller buffers, read outputs.

use std::ffi::c_char;

use prunus::Session;
use prunus::format::Encoding;

use crate::error::{Failure, PrunusStatus};
use crate::guard::{self, Indexed, arg, free_handle, guard, guard_value, into_handle};
use crate::model::PrunusModel;
use crate::options::PrunusOptions;

/// A runnable instance of a model (opaque): owns the activation memory of one run at a
/// time. **A session belongs to one thread at a time**: calls on the same session must not
/// overlap (use one session per thread; moving a session between threads is fine).
#[derive(Debug)]
pub struct PrunusSession {
    session: Session<'static>,
    /// Element count of each output, checked against the caller's buffers.
    output_lens: Vec<usize>,
    /// Whether the last run succeeded, i.e. whether outputs can be read.
    ran: bool,
}

/// Checks that the session's memory can be had before the runtime allocates it (it would
/// abort the process otherwise): the sum of all activations (an upper bound of the planned
/// arena) plus the f32 copies of f16 weights.
fn reserve_session_memory(model: &PrunusModel) -> Result<(), Failure> {
    let graph = model.model.graph();
    let activations = graph
        .tensors
        .iter()
        .map(|t| t.numel().saturating_mul(4))
        .fold(0usize, usize::saturating_add);
    let widened = graph
        .weights
        .iter()
        .filter(|w| w.encoding != Encoding::F32)
        .map(|w| {
            usize::try_from(w.nbytes)
                .unwrap_or(usize::MAX)
                .saturating_mul(2)
        })
        .fold(0usize, usize::saturating_add);
    let bytes = activations.saturating_add(widened);
    Vec::<u8>::new().try_reserve_exact(bytes).map_err(|e| {
        Failure::new(
            PrunusStatus::OutOfMemory,
            format!("cannot reserve {bytes} bytes for the session: {e}"),
        )
    })
}

/// Creates a session of `model`: plans its activation memory and picks its kernels.
/// `options` may be NULL for the defaults; it is copied, so it may be freed afterwards.
/// The session keeps the model alive: `prunus_model_free` may come first.
/// Many threads may create sessions of one model at the same time.
///
/// Fails with `PRUNUS_STATUS_NOT_FOUND` for a retained tensor name the model lacks,
/// `PRUNUS_STATUS_UNSUPPORTED` for an unavailable instruction set (also from `PRUNUS_ISA`),
/// `PRUNUS_STATUS_OUT_OF_MEMORY` if the session's memory cannot be reserved.
///
/// # Safety
/// `model` is NULL or a live model; `options` is NULL or live options not being changed by
/// another thread; `out_session` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_session_new(
    model: *const PrunusModel,
    options: *const PrunusOptions,
    out_session: *mut *mut PrunusSession,
) -> PrunusStatus {
    guard("prunus_session_new", || {
        let model = arg!(model);
        let out = arg!(out out_session);
        let defaults = PrunusOptions::default();
        let options = if options.is_null() {
            &defaults
        } else {
            arg!(options)
        };
        reserve_session_memory(model)?;
        let session = model.model.session(options.options.clone())?;
        out.write(into_handle(PrunusSession {
            session,
            output_lens: model.outputs.iter().map(|o| o.element_count()).collect(),
            ran: false,
        }));
        Ok(())
    })
}

/// Releases a session. NULL is a no-op.
///
/// # Safety
/// `session` is NULL or a session from `prunus_session_new` not freed yet and not in use
/// by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_session_free(session: *mut PrunusSession) {
    guard_value("prunus_session_free", (), || {
        // SAFETY: the caller's contract: a live handle from `into_handle`, used by nobody
        // else.
        unsafe { free_handle(session) }
    })
}

/// Runs the session on `inputs` (input pointers already unpacked from C).
fn run(
    sess: &mut PrunusSession,
    inputs: &[*const f32],
    input_lens: &[usize],
) -> Result<(), Failure> {
    let expected = sess.session.model().graph().inputs.len();
    if inputs.len() != expected {
        return Err(prunus::Error::InputCount {
            expected,
            got: inputs.len(),
        }
        .into());
    }
    // Most models have one input: no allocation for up to 8.
    let mut stack: [&[f32]; 8] = [&[]; 8];
    let mut heap = Vec::new();
    let slices: &mut [&[f32]] = if inputs.len() <= stack.len() {
        &mut stack[..inputs.len()]
    } else {
        heap.resize(inputs.len(), &[][..]);
        &mut heap
    };
    for (i, slot) in slices.iter_mut().enumerate() {
        // SAFETY: the entry point's contract: `inputs[i]` points to `input_lens[i]` floats
        // readable during the call; NULL, misalignment and oversize are rejected.
        *slot = unsafe { guard::slice(inputs[i], input_lens[i], Indexed("inputs", i)) }?;
    }
    sess.ran = false;
    sess.session.run(slices)?;
    sess.ran = true;
    Ok(())
}

/// Runs the model once. `inputs[i]` points to `input_lens[i]` floats for input `i` (NCHW,
/// `element_count` of `prunus_model_input_info`), for `input_count` inputs; they are
/// copied before the run, so they may be reused or freed afterwards. Read the results with
/// `prunus_session_output`. Allocates nothing.
///
/// Fails with `PRUNUS_STATUS_SHAPE_MISMATCH` when `input_count` or a length does not
/// match the model; after a failure the outputs cannot be read (`PRUNUS_STATUS_NOT_RUN`)
/// until a run succeeds.
///
/// # Safety
/// `session` is NULL or a live session not used by another thread; `inputs` and
/// `input_lens` are NULL or arrays of `input_count` elements; each `inputs[i]` is NULL or
/// points to `input_lens[i]` readable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_session_run(
    session: *mut PrunusSession,
    inputs: *const *const f32,
    input_lens: *const usize,
    input_count: usize,
) -> PrunusStatus {
    guard("prunus_session_run", || {
        let sess = arg!(mut session);
        let inputs = arg!(slice inputs, input_count);
        let input_lens = arg!(slice input_lens, input_count);
        run(sess, inputs, input_lens)
    })
}

/// Runs the model like `prunus_session_run` and copies output `i` into `outputs[i]`, which
/// holds `output_lens[i]` floats, for `output_count` outputs. Every count and length must
/// equal the model's (`prunus_model_output_info`), else `PRUNUS_STATUS_SHAPE_MISMATCH`:
/// the buffers are checked before running, and written only when the call succeeds.
///
/// # Safety
/// As `prunus_session_run`; in addition `outputs` and `output_lens` are NULL or arrays of
/// `output_count` elements, and each `outputs[i]` is NULL or valid for `output_lens[i]`
/// float writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_session_run_into(
    session: *mut PrunusSession,
    inputs: *const *const f32,
    input_lens: *const usize,
    input_count: usize,
    outputs: *const *mut f32,
    output_lens: *const usize,
    output_count: usize,
) -> PrunusStatus {
    guard("prunus_session_run_into", || {
        let sess = arg!(mut session);
        let inputs = arg!(slice inputs, input_count);
        let input_lens = arg!(slice input_lens, input_count);
        let outputs = arg!(slice outputs, output_count);
        let output_lens = arg!(slice output_lens, output_count);
        let expected = &sess.output_lens;
        if output_count != expected.len() {
            return Err(Failure::new(
                PrunusStatus::ShapeMismatch,
                format!(
                    "the model has {} output(s), {output_count} given",
                    expected.len()
                ),
            ));
        }
        for (i, ((&ptr, &len), &want)) in outputs.iter().zip(output_lens).zip(expected).enumerate()
        {
            guard::check_buffer(ptr.cast_const(), len, Indexed("outputs", i))?;
            if len != want {
                let name = sess
                    .session
                    .model()
                    .outputs()
                    .nth(i)
                    .map(|t| t.name.as_str());
                return Err(Failure::new(
                    PrunusStatus::ShapeMismatch,
                    format!(
                        "output {i} ('{}') needs {want} values, output_lens[{i}] is {len}",
                        name.unwrap_or("?")
                    ),
                ));
            }
        }
        run(sess, inputs, input_lens)?;
        for (i, &dst) in outputs.iter().enumerate() {
            let src = sess.session.output(i)?;
            // SAFETY: `dst` was checked non-NULL and aligned above and, by the contract,
            // holds `output_lens[i] == src.len()` floats; `src` is the session's own arena,
            // which caller memory cannot overlap.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        }
        Ok(())
    })
}

/// Points `*out_data` at output `index` of the last run and writes its length (floats) to
/// `*out_len`. No copy: the data belongs to the session and stays valid until the next
/// run, or the free, of this session. `PRUNUS_STATUS_NOT_RUN` before a successful run,
/// `PRUNUS_STATUS_NOT_FOUND` for an index past the last output.
///
/// # Safety
/// `session` is NULL or a live session not used by another thread; `out_data` and
/// `out_len` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_session_output(
    session: *const PrunusSession,
    index: usize,
    out_data: *mut *const f32,
    out_len: *mut usize,
) -> PrunusStatus {
    guard("prunus_session_output", || {
        let sess = arg!(session);
        let out_data = arg!(out out_data);
        let out_len = arg!(out out_len);
        let data = ran(sess)?.session.output(index)?;
        out_data.write(data.as_ptr());
        out_len.write(data.len());
        Ok(())
    })
}

/// Like `prunus_session_output` for any tensor kept with `prunus_options_retain`, by its
/// name in the source model. `PRUNUS_STATUS_NOT_FOUND` if the model has no such tensor or
/// it was not retained.
///
/// # Safety
/// As `prunus_session_output`; `tensor_name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn prunus_session_tensor(
    session: *const PrunusSession,
    tensor_name: *const c_char,
    out_data: *mut *const f32,
    out_len: *mut usize,
) -> PrunusStatus {
    guard("prunus_session_tensor", || {
        let sess = arg!(session);
        let name = arg!(str tensor_name);
        let out_data = arg!(out out_data);
        let out_len = arg!(out out_len);
        let name = name
            .to_str()
            .map_err(|_| Failure::invalid("tensor_name", "not UTF-8"))?;
        let data = ran(sess)?.session.tensor(name)?;
        out_data.write(data.as_ptr());
        out_len.write(data.len());
        Ok(())
    })
}

fn ran(sess: &PrunusSession) -> Result<&PrunusSession, Failure> {
    if sess.ran {
        Ok(sess)
    } else {
        Err(Failure::new(
            PrunusStatus::NotRun,
            "no successful run yet: call prunus_session_run first",
        ))
    }
}
