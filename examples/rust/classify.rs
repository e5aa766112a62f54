//! Classify with the Prunus runtime: open a .prunus model (memory-mapped), run one input,
//! print the top-5 classes.
//!
//! ```sh
//! cargo run --release -p prunus-examples --bin classify -- model.prunus
//! ```
//! Without an argument it builds the zoo's MobileNetV2 (random weights) into a temporary
//! file first, so it runs on a fresh checkout.

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let model = prunus_tool::zoo::build("mobilenet_v2", &Default::default())?;
            let path = std::env::temp_dir().join("prunus-example-mobilenet_v2.prunus");
            prunus_tool::atomic::write_atomic(&path, &model.to_bytes(Default::default())?, &[])?;
            path
        }
    };
    let model =
        prunus::Model::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let input_info = model.inputs().next().context("model has no input")?;
    println!(
        "model {} input {:?}",
        model.graph().metadata.name,
        input_info.shape
    );

    // A synthetic "image": a smooth gradient per channel, already normalized.
    let [c, h, w] = [1, 2, 3].map(|d| input_info.shape[d] as usize);
    let image: Vec<f32> = (0..c * h * w)
        .map(|i| {
            ((i % w) as f32 / w as f32 - 0.5)
                + ((i / w % h) as f32 / h as f32 - 0.5) * (1.0 + (i / (h * w)) as f32)
        })
        .collect();

    let mut session = model.session(prunus::Options::default())?;
    session.run(&[&image])?;
    let scores = session.output(0)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    for &class in order.iter().take(5) {
        println!("class {class:>4}  score {:.4}", scores[class]);
    }
    Ok(())
}
