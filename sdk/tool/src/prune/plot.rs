//! Hand-written SVG plot of a sensitivity analysis: KL divergence (log scale) against the
//! ratio, one line per layer, the ten most sensitive layers coloured and named in a legend.

use std::fmt::Write as _;

use super::sensitivity::Sensitivity;

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const FLOOR: f64 = 1e-6;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The plot as an SVG document.
pub fn sensitivity_svg(s: &Sensitivity) -> String {
    let (w, h) = (900.0, 520.0);
    let (left, right, top, bottom) = (70.0, 250.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let max_kl = s
        .layers
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.kl))
        .fold(FLOOR * 10.0, f64::max);
    let (lo, hi) = (FLOOR.log10(), max_kl.log10().ceil());
    let x = |r: f64| left + r * pw;
    let y = |kl: f64| top + ph * (1.0 - (kl.max(FLOOR).log10() - lo) / (hi - lo));
    let mut order: Vec<usize> = (0..s.layers.len()).collect();
    let last_kl = |i: usize| s.layers[i].points.last().map_or(0.0, |p| p.kl);
    order.sort_by(|&a, &b| last_kl(b).total_cmp(&last_kl(a)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{left}" y="24" font-size="15">Sensitivity ({} pruning, {} samples): KL divergence vs ratio</text>"#,
        escape(&s.mode),
        s.samples
    );
    for decade in (lo as i32)..=(hi as i32) {
        let yy = y(10f64.powi(decade));
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">1e{decade}</text>",
            left + pw,
            left - 6.0,
            yy + 4.0
        );
    }
    for tick in 0..=10 {
        let r = f64::from(tick) / 10.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{r:.1}</text>"#,
            x(r),
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        out,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">ratio</text>",
        left + pw / 2.0,
        h - 10.0
    );
    for (rank, &i) in order.iter().enumerate().rev() {
        let l = &s.layers[i];
        let (colour, width) = match PALETTE.get(rank) {
            Some(c) => (*c, 2.0),
            None => ("#bbb", 1.0),
        };
        let points: Vec<String> = std::iter::once((0.0, FLOOR))
            .chain(l.points.iter().map(|p| (p.ratio, p.kl)))
            .map(|(r, kl)| format!("{:.1},{:.1}", x(r), y(kl)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="{width}" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(&l.name)
        );
        if rank < PALETTE.len() {
            let ly = top + 14.0 + 18.0 * rank as f64;
            let lx = left + pw + 14.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 4.0,
                lx + 20.0,
                ly - 4.0,
                lx + 26.0,
                escape(&l.name)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
