//! The tool's in-memory model: the format crate's [`prunus_format::builder::ModelBuilder`]
//! (a graph plus owned row-major weights), which the ONNX importer, the zoo builders and the
//! graph passes all work on.

pub use prunus_format::builder::{BuildError, ModelBuilder as IrModel, remap_weights};
