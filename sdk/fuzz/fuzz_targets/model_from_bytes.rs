//! Fuzzes `Model::from_bytes`: any byte string gives a model or an error, never a panic;
//! a model that opens also creates a session and runs on a zero input.
//!
//! Inputs whose first byte is odd are a graph section and a weights section (split at the
//! little-endian u16 that follows) assembled into a file with correct checksums, so the
//! fuzzer also explores graph decoding and validation instead of stopping at the CRCs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn exercise(file: &[u8]) {
    // Weights are read in place as f32: give the parser an aligned copy.
    let aligned = prunus::AlignedBytes::new(file);
    let Ok(model) = prunus::Model::from_bytes(aligned.as_bytes()) else {
        return;
    };
    let _ = model.verify();
    let arena: usize = model.graph().tensors.iter().map(|t| t.numel()).sum();
    if arena > 1 << 22 {
        return;
    }
    if let Ok(mut session) = model.session(prunus::Options::default()) {
        let inputs: Vec<Vec<f32>> = model.inputs().map(|t| vec![0.0; t.numel()]).collect();
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        session.run(&refs).expect("inputs of the declared sizes run");
    }
}

fuzz_target!(|data: &[u8]| {
    match data {
        [mode, a, b, rest @ ..] if mode & 1 == 1 => {
            let split = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
            let (graph, weights) = rest.split_at(split);
            exercise(&prunus::format::container::assemble(graph, weights));
        }
        _ => exercise(data),
    }
});
