//! 1x1 (pointwise) convolutions: `Y[O, HW] = W[O, I] X[I, HW]` with fused bias, residual
//! (ungrouped, stride 1, no padding) and activation.
//!
//! - [`conv1x1`] (`portable.rs`): ungrouped, any stride and padding, plain Rust.
//! - [`conv1x1_simd`], [`group_conv1x1_simd`] (`simd.rs`, micro-kernel in `tile.rs`):
//!   generic over [`Simd`](crate::kernels::simd::Simd), ungrouped on Panel8 weights and
//!   grouped on row-major weights, one kernel over all groups.

mod portable;
#[cfg(test)]
pub(crate) mod reference;
mod simd;
#[cfg(test)]
mod tests;
pub(crate) mod tile;

pub use portable::conv1x1;
pub use simd::{conv1x1_simd, group_conv1x1_simd};
