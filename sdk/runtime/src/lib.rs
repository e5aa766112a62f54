//! Prunus runtime.
