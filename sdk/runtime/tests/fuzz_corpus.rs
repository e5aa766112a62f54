//! Replays the committed fuzz corpus of `Model::from_bytes` (sdk/fuzz/corpus): every input
//! opens or fails with an error, and never panics.

use std::path::Path;

#[test]
fn corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/model_from_bytes");
    let mut count = 0;
    let mut opened = 0;
    for entry in std::fs::read_dir(&dir).expect("committed corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let aligned = prunus::AlignedBytes::new(&data);
        if let Ok(model) = prunus::Model::from_bytes(aligned.as_bytes()) {
            opened += 1;
            let _ = model.verify();
            if let Ok(mut session) = model.session(prunus::Options::default()) {
                let inputs: Vec<Vec<f32>> = model.inputs().map(|t| vec![0.0; t.numel()]).collect();
                let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                session.run(&refs).unwrap();
            }
        }
        count += 1;
    }
    assert!(count >= 10, "corpus has only {count} files");
    assert!(
        opened >= 1,
        "no corpus entry is a valid model: the corpus lost its seeds"
    );
}
