//! ONNX import: parses an ONNX model and lowers it to an [`crate::IrModel`].
