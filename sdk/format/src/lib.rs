//! The Prunus model file format.
//!
//! A Prunus file is one little-endian file: a header with magic and version, a section
//! table with a CRC32 per section, a postcard-encoded [`Graph`] and a weights section whose
//! tensors are 64-byte aligned and stored in the layout the runtime's kernels read, so a
//! memory-mapped file is executed without copying or repacking. The full specification is
//! in `SPEC.md` next to this crate's `Cargo.toml`.
#![doc = include_str!("../SPEC.md")]

#[cfg(target_endian = "big")]
compile_error!(
    "the Prunus format is little-endian and is read in place: big-endian hosts are not supported"
);

pub mod builder;
pub mod container;
pub mod error;
pub mod graph;
pub mod infer;
pub mod layout;
pub mod read;
pub mod sample;
pub mod sparse;
pub mod write;

pub use container::{MAGIC, Sections, VERSION, verify_weights};
pub use error::FormatError;
pub use graph::*;
pub use read::{ParsedFile, parse, parse_with, validate_graph};
pub use write::{WriteOptions, write};
