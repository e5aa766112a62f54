//! The Prunus offline tool as a library: ONNX import, graph passes (BatchNorm folding,
//! activation fusion, pattern recognition), the built-in model zoo and statistics. The
//! `prunus` binary is a thin command-line layer over it.

pub mod atomic;
pub mod ir;
pub mod onnx;
pub mod passes;
pub mod prune;
pub mod sparsity;
pub mod stats;
pub mod zoo;

pub use ir::IrModel;
