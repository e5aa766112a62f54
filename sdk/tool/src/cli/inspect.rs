//! `prunus inspect`: the graph of a .prunus file, layer by layer.

use std::path::Path;

use anyhow::Result;
use prunus_format::{Encoding, Graph, Layout, ParsedFile};
use prunus_tool::prune::prunus_file::logical_weight;
use prunus_tool::stats::node_stats;

/// The weight columns of a layer (its first weight): encoding and layout, sparse block
/// size and index width, fraction of zero values, share of the file's bytes.
fn weight_desc(graph: &Graph, parsed: &ParsedFile, bytes: &[u8], ids: &[u32]) -> String {
    let Some(w) = ids.first().and_then(|&id| graph.weights.get(id as usize)) else {
        return String::new();
    };
    let (encoding, block, index) = match w.encoding {
        Encoding::F32 | Encoding::F16 => {
            let layout = match w.layout {
                Layout::RowMajor => "",
                Layout::Panel8 => " panel8",
            };
            let name = if w.encoding == Encoding::F32 {
                "f32"
            } else {
                "f16"
            };
            (format!("{name}{layout}"), "-".into(), "-".into())
        }
        Encoding::SparseBlocks {
            block, index_bytes, ..
        } => (
            "sparse".to_string(),
            block.to_string(),
            format!("u{}", 8 * index_bytes as u32),
        ),
        other => (format!("{other:?}"), "-".into(), "-".into()),
    };
    let zeros = logical_weight(parsed, bytes, w)
        .map(|v| {
            let z = v.iter().filter(|&&x| x == 0.0).count();
            format!("{:.1} %", 100.0 * z as f64 / v.len().max(1) as f64)
        })
        .unwrap_or_else(|_| "?".into());
    let share = 100.0 * w.nbytes as f64 / bytes.len().max(1) as f64;
    format!(
        "{encoding:<12} {block:>5} {index:>5} {zeros:>8} {:>6}",
        format!("{share:.1} %")
    )
}

/// Runs `prunus inspect`.
pub fn run(file: &Path) -> Result<()> {
    let model = prunus::Model::open(file)?;
    let graph = model.graph();
    let parsed = prunus_format::parse(model.bytes())?;
    super::print_summary(graph, model.bytes().len());
    let meta = &graph.metadata;
    if let Some(n) = &meta.normalization {
        println!(
            "normalization: x * {} - mean {:?}, / std {:?}",
            n.scale, n.mean, n.std
        );
    }
    for (k, v) in &meta.extra {
        println!("{k}: {v}");
    }
    println!();
    println!(
        "{:>4}  {:<34} {:<18} {:<20} {:>10} {:>12}  {:<12} {:>5} {:>5} {:>8} {:>6}",
        "#",
        "node",
        "op",
        "output shape",
        "params",
        "MACs",
        "weights",
        "block",
        "index",
        "zeros",
        "size"
    );
    for (i, node) in graph.nodes.iter().enumerate() {
        let s = node_stats(graph, node);
        let out = &graph.tensors[node.outputs[0] as usize];
        let op = match &node.op {
            prunus_format::Op::Conv(c) => format!(
                "{} {}x{}/{}{}",
                graph.node_kind(node),
                c.kernel[0],
                c.kernel[1],
                c.stride[0],
                if c.groups > 1 {
                    format!(" g{}", c.groups)
                } else {
                    String::new()
                }
            ),
            other => other.kind_name().to_string(),
        };
        println!(
            "{:>4}  {:<34} {:<18} {:<20} {:>10} {:>12}  {}",
            i,
            truncate(&node.name, 34),
            op,
            format!("{:?}", out.shape),
            s.params,
            s.macs,
            weight_desc(graph, &parsed, model.bytes(), &node.op.weight_ids())
        );
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s
            .chars()
            .rev()
            .take(n - 1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}
