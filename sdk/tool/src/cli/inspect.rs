//! `prunus inspect`: the graph of a .prunus file, layer by layer.

use std::path::Path;

use anyhow::Result;
use prunus_format::Graph;
use prunus_tool::stats::node_stats;

fn weight_desc(graph: &Graph, ids: &[u32]) -> String {
    ids.first()
        .map(|&id| {
            let w = &graph.weights[id as usize];
            format!("{:?} {:?}", w.encoding, w.layout)
        })
        .unwrap_or_default()
}

/// Runs `prunus inspect`.
pub fn run(file: &Path) -> Result<()> {
    let model = prunus::Model::open(file)?;
    let graph = model.graph();
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
        "{:>4}  {:<34} {:<18} {:<20} {:>10} {:>12}  weights",
        "#", "node", "op", "output shape", "params", "MACs"
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
            weight_desc(graph, &node.op.weight_ids())
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
