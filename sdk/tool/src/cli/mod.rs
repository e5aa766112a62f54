//! The subcommands of the `prunus` binary (anyhow lives only here, at the CLI edge).

pub mod affinity;
pub mod bench;
pub mod board_bench;
pub mod board_report;
pub mod demo;
pub mod import;
pub mod inspect;
pub mod prune;
pub mod prune_analysis;
pub mod run;
pub mod sparse_costs;
pub mod sysinfo;
pub mod tensor_io;
pub mod zoo;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use prunus_format::Graph;
use prunus_tool::stats::graph_stats;

/// Parses `1,3,224,224` into dimensions.
pub fn parse_shape(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .map(|d| {
            let v: u32 = d
                .trim()
                .parse()
                .with_context(|| format!("bad dimension '{d}' in shape '{text}'"))?;
            if v == 0 {
                bail!("dimension 0 in shape '{text}'");
            }
            Ok(v)
        })
        .collect()
}

/// Imports an ONNX file (BatchNorm folded, activations fused).
pub fn import_onnx(path: &Path, input_shape: Option<Vec<u32>>) -> Result<prunus_tool::IrModel> {
    let options = prunus_tool::onnx::ImportOptions { input_shape };
    prunus_tool::onnx::import_file(path, &options)
        .with_context(|| format!("importing {}", path.display()))
}

/// One-paragraph summary of a graph: op counts, params, MACs, file size.
pub fn print_summary(graph: &Graph, file_bytes: usize) {
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &graph.nodes {
        *ops.entry(graph.node_kind(node)).or_default() += 1;
    }
    let stats = graph_stats(graph);
    let ops: Vec<String> = ops.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    println!(
        "model:  {} ({})",
        graph.metadata.name, graph.metadata.producer
    );
    for input in &graph.inputs {
        let t = &graph.tensors[*input as usize];
        println!("input:  {} {:?}", t.name, t.shape);
    }
    for output in &graph.outputs {
        let t = &graph.tensors[*output as usize];
        println!("output: {} {:?}", t.name, t.shape);
    }
    println!("nodes:  {} ({})", graph.nodes.len(), ops.join(", "));
    println!(
        "params: {} ({:.3} M)",
        stats.params,
        stats.params as f64 / 1e6
    );
    println!("MACs:   {} ({:.1} M)", stats.macs, stats.macs as f64 / 1e6);
    println!(
        "size:   {} bytes ({:.2} MB)",
        file_bytes,
        file_bytes as f64 / 1e6
    );
}

/// Peak resident set size of this process in KiB (Linux `VmHWM`), if known.
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
