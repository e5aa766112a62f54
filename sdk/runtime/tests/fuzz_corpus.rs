//! Replays the committed fuzz corpus of `Model::from_bytes` (sdk/fuzz/corpus): every input
//! opens or fails with an error, never panics, and a model that opens runs.
//! Inputs are decoded exactly as the fuzz target does (see its doc).

use std::path::Path;

fn file_of(data: &[u8]) -> Vec<u8> {
    match data {
        [mode, a, b, rest @ ..] if mode & 1 == 1 => {
            let split = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
            let (graph, weights) = rest.split_at(split);
            prunus::format::container::assemble(graph, weights)
        }
        _ => data.to_vec(),
    }
}

#[test]
fn corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/model_from_bytes");
    let (mut count, mut opened, mut ran) = (0, 0, 0);
    for entry in std::fs::read_dir(&dir).expect("committed corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let aligned = prunus::AlignedBytes::new(&file_of(&data));
        count += 1;
        let Ok(model) = prunus::Model::from_bytes(aligned.as_bytes()) else {
            continue;
        };
        opened += 1;
        let _ = model.verify();
        if let Ok(mut session) = model.session(prunus::Options::default()) {
            let inputs: Vec<Vec<f32>> = model.inputs().map(|t| vec![0.0; t.numel()]).collect();
            let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            session.run(&refs).unwrap();
            ran += 1;
        }
    }
    println!("corpus: {count} inputs, {opened} open, {ran} run");
    assert!(count >= 10, "corpus has only {count} files");
    assert!(
        ran >= 1,
        "no corpus entry is a runnable model: the corpus lost its seeds"
    );
}
