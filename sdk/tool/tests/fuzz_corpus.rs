//! Replays the committed fuzz corpus of the ONNX importer (sdk/fuzz/corpus/onnx_import):
//! every input imports or fails with an error, never panics, and whatever imports packs
//! into a file the runtime opens — as the fuzz target requires.

use std::path::Path;

#[test]
fn corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/onnx_import");
    let (mut count, mut imported) = (0, 0);
    for entry in std::fs::read_dir(&dir).expect("committed corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        count += 1;
        let Ok(model) = prunus_tool::onnx::import(&data, &Default::default()) else {
            continue;
        };
        if let Ok(bytes) = model.to_bytes(Default::default()) {
            let aligned = prunus::AlignedBytes::new(&bytes);
            prunus::Model::from_bytes(aligned.as_bytes()).expect("a file the tool wrote opens");
            imported += 1;
        }
    }
    println!("corpus: {count} inputs, {imported} imported");
    assert!(count >= 5, "corpus has only {count} files");
    assert!(
        imported >= 5,
        "the seed models no longer import ({imported})"
    );
}
