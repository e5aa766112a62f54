//! Shared helpers for the benchmarks: zoo models packed in memory.

/// Zoo families to benchmark: `PRUNUS_BENCH_FAMILIES` (comma-separated) or all.
pub fn families() -> Vec<String> {
    match std::env::var("PRUNUS_BENCH_FAMILIES") {
        Ok(list) if !list.is_empty() => list.split(',').map(str::to_string).collect(),
        _ => prunus_tool::zoo::FAMILIES
            .iter()
            .map(|f| f.name.to_string())
            .collect(),
    }
}

/// Builds and packs a zoo family (default input size) into aligned memory.
///
/// # Panics
/// On an unknown family name (benchmarks are developer tools, not user input paths).
pub fn zoo_model_bytes(name: &str) -> prunus::AlignedBytes {
    let model = prunus_tool::zoo::build(name, &Default::default()).expect("known zoo family");
    let bytes = model.to_bytes(Default::default()).expect("zoo model packs");
    prunus::AlignedBytes::new(&bytes)
}
