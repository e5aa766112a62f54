//! The runtime's typed errors.

use std::path::PathBuf;

use prunus_format::FormatError;
use thiserror::Error;

/// Everything the runtime reports to its caller.
#[derive(Debug, Error)]
pub enum Error {
    /// The model file could not be opened or mapped.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The model file is invalid (the variant says where and why).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// `run` got the wrong number of inputs.
    #[error("the model has {expected} input(s), {got} given")]
    InputCount {
        /// Inputs the graph declares.
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// An input has the wrong number of elements.
    #[error("input {index} ('{name}') needs {expected} values (shape {shape:?}), {got} given")]
    InputSize {
        /// Input position.
        index: usize,
        /// Input name.
        name: String,
        /// Declared shape.
        shape: Vec<u32>,
        /// Elements needed.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// No tensor of that name, or no output at that index.
    #[error("no tensor named '{0}' in the model")]
    NoSuchTensor(String),
    /// An `ndarray` input is not in standard (C-contiguous) layout.
    #[error("input {index} is not a contiguous standard-layout array")]
    NotContiguous {
        /// Input position.
        index: usize,
    },
    /// An output index past the last output.
    #[error("output index {index} out of range: the model has {count} output(s)")]
    OutputIndex {
        /// Index asked for.
        index: usize,
        /// Outputs the graph declares.
        count: usize,
    },
    /// The tensor exists but its buffer was reused; retain it with `Options::retain`.
    #[error("tensor '{0}' is not kept after a run; add it to Options::retain")]
    NotRetained(String),
    /// The requested instruction set is unknown or not available on this CPU/build.
    #[error("instruction set '{requested}' is not available (available: {available})")]
    Isa {
        /// What was asked for (option or `PRUNUS_ISA`).
        requested: String,
        /// What this build and CPU support.
        available: String,
    },
    /// A sparse weight's column indices are invalid (found when a session is created).
    #[error("sparse weight '{name}' is invalid: {reason}")]
    SparseWeight {
        /// The weight.
        name: String,
        /// What is wrong.
        reason: String,
    },
}
