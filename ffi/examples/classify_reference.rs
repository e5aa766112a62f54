//! The Rust-API twin of `examples/c/classify.c`: same PPM reading, fixed-point bilinear
//! resize, normalization, top-k order and output format, through `prunus::Model` /
//! `prunus::Session` instead of the C ABI. ffi/test.sh compares the C and C++ examples'
//! output with this one's, byte for byte.
//!
//! ```sh
//! classify_reference [-k N] MODEL.prunus IMAGE.ppm [LABELS.txt]
//! classify_reference --make-ppm OUT.ppm WIDTH HEIGHT     # a deterministic test image
//! ```

use std::process::ExitCode;

/// An interleaved 8-bit RGB image.
struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

/// Parses a binary (P6) PPM with maxval <= 255, like the C example.
fn read_ppm(bytes: &[u8]) -> Result<Image, String> {
    let mut pos = 0;
    let mut token = || -> Option<String> {
        loop {
            match bytes.get(pos)? {
                b'#' => {
                    while *bytes.get(pos)? != b'\n' {
                        pos += 1;
                    }
                }
                b' ' | b'\t' | b'\n' | b'\r' => pos += 1,
                _ => break,
            }
        }
        let start = pos;
        while !matches!(
            bytes.get(pos),
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b'#')
        ) {
            pos += 1;
        }
        let text = String::from_utf8(bytes[start..pos].to_vec()).ok()?;
        // The one whitespace byte after the token (after maxval: before the pixels).
        match bytes.get(pos) {
            Some(b'#') | None => None,
            Some(_) => {
                pos += 1;
                Some(text)
            }
        }
    };
    let bad = || "not a binary PPM (P6) with maxval <= 255".to_string();
    if token().as_deref() != Some("P6") {
        return Err(bad());
    }
    let mut dims = [0usize; 3];
    for d in &mut dims {
        *d = token()
            .and_then(|t| t.parse().ok())
            .filter(|&v| (1..=65535).contains(&v))
            .ok_or_else(bad)?;
    }
    let [width, height, maxval] = dims;
    if maxval > 255 {
        return Err(bad());
    }
    let n = width * height * 3;
    let mut rgb = bytes
        .get(pos..pos + n)
        .ok_or("truncated pixel data")?
        .to_vec();
    if maxval != 255 {
        for v in &mut rgb {
            *v = ((*v as usize * 255 + maxval / 2) / maxval) as u8;
        }
    }
    Ok(Image { width, height, rgb })
}

/// Source position of destination index `i` along an axis, in 1/2048 pixels.
fn axis_map(input: usize, output: usize, i: usize) -> (usize, usize, u32) {
    let fixed = ((2 * i as i64 + 1) * input as i64 - output as i64) * 2048 / (2 * output as i64);
    let fixed = fixed.max(0);
    let (mut base, mut frac) = ((fixed >> 11) as usize, (fixed & 2047) as u32);
    if base >= input - 1 {
        base = input - 1;
        frac = 0;
    }
    (base, (base + 1).min(input - 1), frac)
}

/// Resizes to `width` x `height` and normalizes, planar (CHW), like the C example.
fn preprocess(image: &Image, width: usize, height: usize) -> Vec<f32> {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let mut out = vec![0f32; 3 * width * height];
    let (p, w) = (&image.rgb, image.width);
    for y in 0..height {
        let (y0, y1, fy) = axis_map(image.height, height, y);
        for x in 0..width {
            let (x0, x1, fx) = axis_map(image.width, width, x);
            for c in 0..3 {
                let px = |yy: usize, xx: usize| p[(yy * w + xx) * 3 + c] as u32;
                let top = px(y0, x0) * (2048 - fx) + px(y0, x1) * fx;
                let bottom = px(y1, x0) * (2048 - fx) + px(y1, x1) * fx;
                let v = top as u64 * (2048 - fy) as u64 + bottom as u64 * fy as u64;
                let value = ((v + (1 << 21)) >> 22) as u32;
                let f = value as f32 / 255.0;
                out[(c * height + y) * width + x] = (f - MEAN[c]) / STD[c];
            }
        }
    }
    out
}

/// A deterministic RGB test pattern (gradients plus xorshift noise), as a P6 file.
fn make_ppm(width: usize, height: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut out = format!("P6\n# prunus test image\n{width} {height}\n255\n").into_bytes();
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 58) as usize;
            out.push(((x * 255 / width.max(2).saturating_sub(1)).min(255)) as u8);
            out.push(((y * 255 / height.max(2).saturating_sub(1)).min(255)) as u8);
            out.push(((x * y + noise * 4) % 256) as u8);
        }
    }
    out
}

fn shape(s: &[u32]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

fn classify(args: &[String]) -> Result<(), String> {
    let (top_k, rest) = match args {
        [flag, k, rest @ ..] if flag == "-k" => {
            (k.parse::<usize>().map_err(|e| e.to_string())?, rest)
        }
        rest => (5, rest),
    };
    let (model_path, image_path, labels_path) = match rest {
        [m, i] => (m, i, None),
        [m, i, l] => (m, i, Some(l)),
        _ => return Err("usage: classify_reference [-k N] MODEL IMAGE.ppm [LABELS]".into()),
    };
    let model = prunus::Model::open(model_path).map_err(|e| e.to_string())?;
    let input = model.inputs().next().ok_or("no input")?;
    let output = model.outputs().next().ok_or("no output")?;
    if input.shape.len() != 4 || input.shape[0] != 1 || input.shape[1] != 3 {
        return Err(format!(
            "{model_path}: expected an input of shape [1, 3, H, W]"
        ));
    }
    println!(
        "model: input '{}' {}, output '{}' {}",
        input.name,
        shape(&input.shape),
        output.name,
        shape(&output.shape)
    );
    let bytes = std::fs::read(image_path).map_err(|e| format!("{image_path}: {e}"))?;
    let image = read_ppm(&bytes).map_err(|e| format!("{image_path}: {e}"))?;
    let (height, width) = (input.shape[2] as usize, input.shape[3] as usize);
    println!(
        "image: {}x{} -> {width}x{height}",
        image.width, image.height
    );
    let data = preprocess(&image, width, height);
    let labels_text = match labels_path {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?),
        None => None,
    };
    let labels: Vec<&str> = labels_text
        .as_deref()
        .map(|t| t.lines().map(|l| l.trim_end_matches('\r')).collect())
        .unwrap_or_default();

    let mut session = model
        .session(prunus::Options::default())
        .map_err(|e| e.to_string())?;
    session.run(&[&data]).map_err(|e| e.to_string())?;
    let scores = session.output(0).map_err(|e| e.to_string())?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| {
        scores[j]
            .partial_cmp(&scores[i])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(i.cmp(&j))
    });
    let top_k = top_k.min(scores.len());
    println!("top-{top_k}:");
    for (rank, &c) in order.iter().take(top_k).enumerate() {
        print!("{:4}  class {c:5}  score {:12.6}", rank + 1, scores[c]);
        if labels_path.is_some() {
            print!("  {}", labels.get(c).copied().unwrap_or(""));
        }
        println!();
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, path, w, h] if flag == "--make-ppm" => (|| {
            let (w, h) = (
                w.parse().map_err(|_| "bad width")?,
                h.parse().map_err(|_| "bad height")?,
            );
            std::fs::write(path, make_ppm(w, h)).map_err(|e| format!("{path}: {e}"))
        })(),
        _ => classify(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
