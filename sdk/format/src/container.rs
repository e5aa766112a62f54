//! The container: header, section table and per-section CRC32 checksums.
//!
//! ```text
//! offset 0   header (32 bytes)
//!            magic "PRUNUSMF", version u32, section count u32,
//!            table offset u64, table crc32 u32, header crc32 u32 (of bytes 0..28)
//! offset 32  section table: count x 32-byte entries
//!            kind u32, reserved u32, offset u64, length u64, crc32 u32, reserved u32
//! ...        sections (graph, weights), the weights section 64-byte aligned
//! ```
//! All integers little-endian.

use std::borrow::Cow;

use crate::error::FormatError;

/// The 8 bytes every Prunus model file starts with.
pub const MAGIC: [u8; 8] = *b"PRUNUSMF";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 32;
/// Section table entry length in bytes.
pub const ENTRY_LEN: usize = 32;
/// Alignment of the weights section and of every weight tensor in it.
pub const WEIGHT_ALIGN: u64 = 64;

/// The kinds of section a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// The postcard-encoded [`crate::Graph`].
    Graph = 1,
    /// Weight tensor bytes.
    Weights = 2,
}

impl SectionKind {
    /// Name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Graph => "graph section",
            SectionKind::Weights => "weights section",
        }
    }

    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(SectionKind::Graph),
            2 => Some(SectionKind::Weights),
            _ => None,
        }
    }
}

/// One entry of the section table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// What the section holds.
    pub kind: SectionKind,
    /// Byte offset from the start of the file.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// CRC32 of the section's bytes.
    pub crc: u32,
}

impl Section {
    /// The section's byte range (validated against the file length at parse time).
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..(self.offset + self.length) as usize
    }
}

/// The graph and weights sections of a file whose header and table are valid.
#[derive(Clone, Copy, Debug)]
pub struct Sections {
    /// The graph section.
    pub graph: Section,
    /// The weights section.
    pub weights: Section,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn need(file_len: u64, what: &'static str, start: u64, end: u64) -> Result<(), FormatError> {
    if end > file_len {
        return Err(FormatError::Truncated {
            what,
            start,
            end,
            len: file_len,
        });
    }
    Ok(())
}

fn check_crc(
    section: &'static str,
    bytes: &[u8],
    start: u64,
    stored: u32,
) -> Result<(), FormatError> {
    let computed = crc32fast::hash(bytes);
    if computed != stored {
        return Err(FormatError::Checksum {
            section,
            start,
            end: start + bytes.len() as u64,
            stored,
            computed,
        });
    }
    Ok(())
}

/// Reads and checks the header and section table, and the graph section's checksum, for
/// a file of `file_len` bytes whose ranges `read(start, end)` returns (always within the
/// file: ranges are checked against `file_len` first). Returns the sections and the graph
/// section's bytes. The weights section is neither read nor hashed (see [`verify_weights`]),
/// so opening a memory-mapped file touches no weight page.
pub fn parse_sections_with<'b, E: From<FormatError>>(
    file_len: u64,
    read: &mut dyn FnMut(u64, u64) -> Result<Cow<'b, [u8]>, E>,
) -> Result<(Sections, Cow<'b, [u8]>), E> {
    need(file_len, "header", 0, HEADER_LEN as u64)?;
    let header = read(0, HEADER_LEN as u64)?;
    let magic: [u8; 8] = header[..8].try_into().expect("8 bytes");
    if magic != MAGIC {
        return Err(FormatError::BadMagic {
            found: magic,
            expected: MAGIC,
        }
        .into());
    }
    let version = u32_at(&header, 8);
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        }
        .into());
    }
    check_crc("header", &header[..28], 0, u32_at(&header, 28))?;
    let count = u32_at(&header, 12) as u64;
    let table_at = u64_at(&header, 16);
    let table_end = count
        .checked_mul(ENTRY_LEN as u64)
        .and_then(|n| n.checked_add(table_at))
        .ok_or_else(|| FormatError::SectionTable(format!("{count} entries overflow")))?;
    need(file_len, "section table", table_at, table_end)?;
    let table = read(table_at, table_end)?;
    check_crc("section table", &table, table_at, u32_at(&header, 24))?;

    let mut graph = None;
    let mut weights = None;
    for entry in table.chunks_exact(ENTRY_LEN) {
        let kind_raw = u32_at(entry, 0);
        let kind = SectionKind::from_u32(kind_raw)
            .ok_or_else(|| FormatError::SectionTable(format!("unknown section kind {kind_raw}")))?;
        let section = Section {
            kind,
            offset: u64_at(entry, 8),
            length: u64_at(entry, 16),
            crc: u32_at(entry, 24),
        };
        match section.offset.checked_add(section.length) {
            Some(end) if section.offset >= table_end => {
                need(file_len, kind.name(), section.offset, end)?
            }
            _ => {
                return Err(FormatError::SectionOutOfRange {
                    section: kind.name(),
                    offset: section.offset,
                    length: section.length,
                    len: file_len,
                }
                .into());
            }
        }
        let slot = match kind {
            SectionKind::Graph => &mut graph,
            SectionKind::Weights => &mut weights,
        };
        if slot.replace(section).is_some() {
            return Err(FormatError::SectionTable(format!("{} appears twice", kind.name())).into());
        }
    }
    let graph = graph.ok_or_else(|| FormatError::SectionTable("no graph section".into()))?;
    let weights = weights.ok_or_else(|| FormatError::SectionTable("no weights section".into()))?;
    if !weights.offset.is_multiple_of(WEIGHT_ALIGN) {
        return Err(FormatError::SectionTable(format!(
            "weights section offset {} is not {WEIGHT_ALIGN}-byte aligned",
            weights.offset
        ))
        .into());
    }
    let graph_bytes = read(graph.offset, graph.offset + graph.length)?;
    check_crc(
        SectionKind::Graph.name(),
        &graph_bytes,
        graph.offset,
        graph.crc,
    )?;
    Ok((Sections { graph, weights }, graph_bytes))
}

/// Checks the weights section's checksum (a full pass over the weight bytes).
pub fn verify_weights(bytes: &[u8], sections: &Sections) -> Result<(), FormatError> {
    let w = sections.weights;
    check_crc(
        SectionKind::Weights.name(),
        &bytes[w.range()],
        w.offset,
        w.crc,
    )
}

/// Assembles a file from an encoded graph section and a weights section (whose tensor
/// offsets are relative to its own start).
pub fn assemble(graph: &[u8], weights: &[u8]) -> Vec<u8> {
    let weights_at = weights_offset(graph.len()) as usize;
    let mut out = vec![0u8; weights_at + weights.len()];
    out[weights_at..].copy_from_slice(weights);
    finish(&mut out, graph);
    out
}

/// Completes a file whose weights section is already in place, from
/// [`weights_offset`]`(graph.len())` to the end of `out` (anything between the graph and
/// it zero): writes the graph section, the section table and the header.
pub fn finish(out: &mut [u8], graph: &[u8]) {
    let table_at = HEADER_LEN as u64;
    let graph_at = table_at + 2 * ENTRY_LEN as u64;
    let weights_at = weights_offset(graph.len());
    out[graph_at as usize..graph_at as usize + graph.len()].copy_from_slice(graph);
    let weights = &out[weights_at as usize..];

    let mut table = Vec::with_capacity(2 * ENTRY_LEN);
    for (kind, offset, len, crc) in [
        (
            SectionKind::Graph,
            graph_at,
            graph.len(),
            crc32fast::hash(graph),
        ),
        (
            SectionKind::Weights,
            weights_at,
            weights.len(),
            crc32fast::hash(weights),
        ),
    ] {
        table.extend_from_slice(&(kind as u32).to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        table.extend_from_slice(&offset.to_le_bytes());
        table.extend_from_slice(&(len as u64).to_le_bytes());
        table.extend_from_slice(&crc.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
    }
    out[table_at as usize..graph_at as usize].copy_from_slice(&table);

    out[..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&2u32.to_le_bytes());
    out[16..24].copy_from_slice(&table_at.to_le_bytes());
    out[24..28].copy_from_slice(&crc32fast::hash(&table).to_le_bytes());
    let header_crc = crc32fast::hash(&out[..28]);
    out[28..32].copy_from_slice(&header_crc.to_le_bytes());
}

/// Where the weights section starts for a graph section of `graph_len` bytes.
pub fn weights_offset(graph_len: usize) -> u64 {
    let graph_end = (HEADER_LEN + 2 * ENTRY_LEN + graph_len) as u64;
    graph_end.div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN
}
