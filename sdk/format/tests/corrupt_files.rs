//! Every kind of damage to a model file gives its own error variant at parse time, with the
//! offending section or offset in the message — never a panic.

use prunus_format::container::{self, HEADER_LEN};
use prunus_format::{Encoding, FormatError, Graph, parse, sample::sample_model, verify_weights};

fn valid() -> Vec<u8> {
    sample_model(1)
        .unwrap()
        .to_bytes(Default::default())
        .unwrap()
}

/// The decoded graph and the weights section of a valid file.
fn parts(bytes: &[u8]) -> (Graph, Vec<u8>) {
    let parsed = parse(bytes).unwrap();
    (
        parsed.graph,
        bytes[parsed.sections.weights.range()].to_vec(),
    )
}

/// Re-encodes a (possibly inconsistent) graph into a file with correct checksums.
fn repack(graph: &Graph, weights: &[u8]) -> Vec<u8> {
    container::assemble(&postcard::to_stdvec(graph).unwrap(), weights)
}

fn err(bytes: &[u8]) -> FormatError {
    match parse(bytes) {
        Ok(_) => panic!("damaged file parsed without error"),
        Err(e) => e,
    }
}

#[test]
fn truncated_header_and_truncated_sections() {
    let bytes = valid();
    let e = err(&bytes[..20]);
    assert!(
        matches!(e, FormatError::Truncated { what: "header", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("0..32"), "{e}");
    let e = err(&bytes[..bytes.len() - 10]);
    assert!(
        matches!(
            e,
            FormatError::Truncated {
                what: "weights section",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("{} bytes", bytes.len() - 10)),
        "{e}"
    );
    let e = err(&bytes[..HEADER_LEN + 8]);
    assert!(
        matches!(
            e,
            FormatError::Truncated {
                what: "section table",
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(err(&[]), FormatError::Truncated { .. }));
}

#[test]
fn wrong_magic() {
    let mut bytes = valid();
    bytes[0] = b'X';
    let e = err(&bytes);
    assert!(matches!(e, FormatError::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("offset 0"), "{e}");
}

#[test]
fn wrong_version() {
    let mut bytes = valid();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    let e = err(&bytes);
    assert!(
        matches!(
            e,
            FormatError::UnsupportedVersion {
                found: 7,
                supported: 1
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_checksums_name_the_section() {
    let bytes = valid();
    let parsed = parse(&bytes).unwrap();
    let mut damaged = bytes.clone();
    damaged[parsed.sections.graph.offset as usize + 3] ^= 0x40;
    let e = err(&damaged);
    assert!(
        matches!(
            e,
            FormatError::Checksum {
                section: "graph section",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&parsed.sections.graph.offset.to_string()),
        "{e}"
    );

    let mut damaged = bytes.clone();
    damaged[13] ^= 1; // section count: covered by the header checksum
    assert!(matches!(
        err(&damaged),
        FormatError::Checksum {
            section: "header",
            ..
        }
    ));

    // Weight bytes are only hashed by the full verification.
    let mut damaged = bytes.clone();
    let w = parsed.sections.weights.offset as usize + 5;
    damaged[w] ^= 0x01;
    let parsed_damaged = parse(&damaged).expect("open checks metadata only");
    let e = verify_weights(&damaged, &parsed_damaged.sections).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::Checksum {
                section: "weights section",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn weight_offset_out_of_range() {
    let (mut graph, weights) = parts(&valid());
    graph.weights[2].offset = weights.len() as u64 + 64;
    let e = err(&repack(&graph, &weights));
    assert!(matches!(e, FormatError::WeightOutOfRange { .. }), "{e}");
    assert!(e.to_string().contains(&graph.weights[2].name), "{e}");
    graph.weights[2].offset = u64::MAX - 3;
    assert!(matches!(
        err(&repack(&graph, &weights)),
        FormatError::WeightOutOfRange { .. }
    ));
}

#[test]
fn misaligned_weight() {
    let (mut graph, weights) = parts(&valid());
    graph.weights[1].offset += 4;
    let e = err(&repack(&graph, &weights));
    assert!(matches!(e, FormatError::MisalignedWeight { .. }), "{e}");
}

#[test]
fn weight_length_and_reserved_encodings() {
    let (mut graph, weights) = parts(&valid());
    graph.weights[0].nbytes -= 4;
    assert!(matches!(
        err(&repack(&graph, &weights)),
        FormatError::WeightSize { .. }
    ));
    let (mut graph, weights) = parts(&valid());
    graph.weights[0].encoding = Encoding::SparseNm;
    let e = err(&repack(&graph, &weights));
    assert!(matches!(e, FormatError::UnsupportedEncoding { .. }), "{e}");
}

#[test]
fn mismatched_shapes() {
    let (mut graph, weights) = parts(&valid());
    let out = graph.nodes[0].outputs[0] as usize;
    graph.tensors[out].shape[3] += 1;
    let e = err(&repack(&graph, &weights));
    assert!(matches!(e, FormatError::ShapeMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&graph.nodes[0].name), "{e}");
}

#[test]
fn oversized_dimension() {
    let (mut graph, weights) = parts(&valid());
    graph.tensors[0].shape[2] = 1 << 30;
    let e = err(&repack(&graph, &weights));
    assert!(matches!(e, FormatError::Oversized { .. }), "{e}");
    assert!(e.to_string().contains("input"), "{e}");
}

#[test]
fn dangling_tensor_and_undecodable_graph() {
    let (mut graph, weights) = parts(&valid());
    graph.nodes[3].inputs[0] = 999;
    assert!(matches!(
        err(&repack(&graph, &weights)),
        FormatError::InvalidGraph(_) | FormatError::ShapeMismatch { .. }
    ));
    let e = err(&container::assemble(&[0xff; 16], &weights));
    assert!(matches!(e, FormatError::GraphDecode { .. }), "{e}");
}
