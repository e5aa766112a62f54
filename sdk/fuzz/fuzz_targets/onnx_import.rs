//! Fuzzes the ONNX importer: any byte string imports or gives an error, never a panic;
//! an imported model also packs into a file that the runtime opens.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = prunus_tool::onnx::ImportOptions::default();
    if let Ok(model) = prunus_tool::onnx::import(data, &options) {
        if let Ok(bytes) = model.to_bytes(Default::default()) {
            let aligned = prunus::AlignedBytes::new(&bytes);
            prunus::Model::from_bytes(aligned.as_bytes()).expect("a file the tool wrote must open");
        }
    }
});
