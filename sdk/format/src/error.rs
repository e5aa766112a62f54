//! Typed errors for reading and writing model files.

use thiserror::Error;

/// Everything that can be wrong with a model file, with the place it was found.
#[derive(Debug, Error)]
pub enum FormatError {
    /// The file ends before a structure it declares.
    #[error("truncated file: {what} needs bytes {start}..{end} but the file has {len} bytes")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// First byte needed.
        start: u64,
        /// One past the last byte needed.
        end: u64,
        /// File length.
        len: u64,
    },
    /// The first 8 bytes are not the Prunus magic.
    #[error("not a Prunus model: magic at offset 0 is {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// What the file has.
        found: [u8; 8],
        /// What a Prunus file has.
        expected: [u8; 8],
    },
    /// The format version is not one this build reads.
    #[error(
        "unsupported format version {found} at offset 8 (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A checksum does not match the bytes it covers.
    #[error(
        "checksum mismatch in {section} (bytes {start}..{end}): stored {stored:#010x}, computed {computed:#010x}"
    )]
    Checksum {
        /// Header, section table, or the section's name.
        section: &'static str,
        /// First byte covered.
        start: u64,
        /// One past the last byte covered.
        end: u64,
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A section table entry points outside the file or overlaps the header.
    #[error(
        "section {section} at offset {offset} with length {length} is out of range (file has {len} bytes)"
    )]
    SectionOutOfRange {
        /// Section name.
        section: &'static str,
        /// Declared offset.
        offset: u64,
        /// Declared length.
        length: u64,
        /// File length.
        len: u64,
    },
    /// A required section is missing, or one appears twice, or an unknown kind.
    #[error("section table: {0}")]
    SectionTable(String),
    /// The graph section does not decode.
    #[error("graph section at offset {offset}: cannot decode: {reason}")]
    GraphDecode {
        /// Offset of the graph section.
        offset: u64,
        /// Decoder message.
        reason: String,
    },
    /// A weight tensor lies outside the weights section.
    #[error(
        "weight '{name}' at offset {offset} with {nbytes} bytes is out of range of the weights section {start}..{end}"
    )]
    WeightOutOfRange {
        /// Weight name.
        name: String,
        /// Declared offset.
        offset: u64,
        /// Declared length.
        nbytes: u64,
        /// Weights section start.
        start: u64,
        /// Weights section end.
        end: u64,
    },
    /// A weight tensor's offset is not 64-byte aligned.
    #[error("weight '{name}' at offset {offset} is not 64-byte aligned")]
    MisalignedWeight {
        /// Weight name.
        name: String,
        /// Declared offset.
        offset: u64,
    },
    /// A weight's byte length does not match its shape, layout and encoding.
    #[error("weight '{name}' at offset {offset}: {reason}")]
    WeightSize {
        /// Weight name.
        name: String,
        /// Declared offset.
        offset: u64,
        /// What does not match.
        reason: String,
    },
    /// A weight uses an encoding this build cannot execute.
    #[error(
        "weight '{name}' at offset {offset} uses encoding {encoding}, which this build does not support"
    )]
    UnsupportedEncoding {
        /// Weight name.
        name: String,
        /// Declared offset.
        offset: u64,
        /// Encoding name.
        encoding: String,
    },
    /// A dimension or element count exceeds the limits.
    #[error("tensor '{name}': {reason}")]
    Oversized {
        /// Tensor or weight name.
        name: String,
        /// Which limit.
        reason: String,
    },
    /// A node's shapes do not agree with its op and inputs.
    #[error("node '{node}' ({op}): shape mismatch: {reason}")]
    ShapeMismatch {
        /// Node name.
        node: String,
        /// Op kind.
        op: &'static str,
        /// What does not match.
        reason: String,
    },
    /// The graph structure is invalid (dangling tensor, cycle, duplicate definition...).
    #[error("invalid graph: {0}")]
    InvalidGraph(String),
    /// A caller's byte buffer does not have the alignment weights need.
    #[error(
        "model buffer at address {address:#x} is not {required}-byte aligned; weights are read in place"
    )]
    UnalignedBuffer {
        /// Buffer address.
        address: usize,
        /// Required alignment.
        required: usize,
    },
}
