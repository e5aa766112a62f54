//! Graph passes on [`crate::IrModel`]: BatchNorm folding, activation fusion, clean-up.
