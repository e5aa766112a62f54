//! Fully connected layers (matrix-vector products) on Panel8 weights, with fused bias and
//! activation: [`gemm`] (portable) and [`gemm_simd`] (generic over
//! [`Simd`](crate::kernels::simd::Simd)).

mod portable;
mod simd;
#[cfg(test)]
mod tests;

pub use portable::gemm;
pub use simd::gemm_simd;
