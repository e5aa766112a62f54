//! Prunus runtime: runs a Prunus model file on the CPU.
//!
//! ```no_run
//! let model = prunus::Model::open("mobilenet_v2.prunus")?;   // memory-mapped, validated
//! let mut session = model.session(prunus::Options::default())?;
//! let input = vec![0.0f32; 3 * 224 * 224];
//! session.run(&[&input])?;
//! let logits = session.output(0)?;
//! # Ok::<(), prunus::Error>(())
//! ```
//!
//! A [`Model`] is immutable and shared between threads; a [`Session`] owns one activation
//! arena planned once from tensor lifetimes, and [`Session::run`] allocates nothing.
//! Activations are NCHW (CHW, batch 1). The runtime has no ONNX dependency: models come
//! from the `prunus` tool.

pub mod affinity;
pub mod error;
mod exec;
pub mod kernels;
pub mod model;
pub mod options;
pub mod plan;
pub mod session;
pub mod thread_pool;

pub use affinity::Affinity;
pub use error::Error;
pub use kernels::Isa;
pub use model::{AlignedBytes, Model};
pub use options::{ISA_ENV, Options, Retain};
pub use prunus_format as format;
pub use session::{Session, SessionReport};
