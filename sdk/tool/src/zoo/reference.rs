//! A naive interpreter of the ops the zoo emits (tests only). It checks that the zoo's
//! weight scaling keeps activations O(1) without depending on the runtime crate, and that
//! the graphs compute what the family docs describe (shapes, broadcasting).

use prunus_format::{Conv, Op, Pool};

use crate::ir::IrModel;

/// Runs `model` on `input` (the single graph input, row-major); returns every tensor's
/// values, indexed by tensor id (empty for tensors no node wrote).
pub(crate) fn run(model: &IrModel, input: &[f32]) -> Vec<Vec<f32>> {
    let g = &model.graph;
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); g.tensors.len()];
    values[g.inputs[0] as usize] = input.to_vec();
    for node in &g.nodes {
        let shape = |id: u32| g.tensors[id as usize].shape.clone();
        let x = &values[node.inputs[0] as usize];
        let xs = shape(node.inputs[0]);
        let ys = shape(node.outputs[0]);
        let w = |id: u32| model.weights[id as usize].as_slice();
        let y = match &node.op {
            Op::Conv(c) => {
                let ws = &g.weights[c.weight as usize].shape;
                let bias = c.bias.map(w);
                conv(x, &xs, w(c.weight), ws, bias, c, &ys)
            }
            Op::Gemm {
                weight,
                bias,
                activation,
            } => {
                let ws = &g.weights[*weight as usize].shape;
                let (o, k) = (ws[0] as usize, ws[1] as usize);
                let wt = w(*weight);
                (0..o)
                    .map(|i| {
                        let b = bias.map_or(0.0, |b| w(b)[i]);
                        let dot: f32 = wt[i * k..(i + 1) * k].iter().zip(x).map(|(a, b)| a * b).sum();
                        activation.apply(b + dot)
                    })
                    .collect()
            }
            Op::Binary { kind, activation } => {
                let b = &values[node.inputs[1] as usize];
                let per = x.len() / b.len();
                let apply = |(i, &a): (usize, &f32)| activation.apply(kind.apply(a, b[i / per]));
                x.iter().enumerate().map(apply).collect()
            }
            Op::Activation(a) => x.iter().map(|&v| a.apply(v)).collect(),
            Op::Concat => node.inputs.iter().flat_map(|&i| values[i as usize].clone()).collect(),
            Op::SliceChannels { start, end } => {
                let plane = (xs[2] * xs[3]) as usize;
                x[*start as usize * plane..*end as usize * plane].to_vec()
            }
            Op::ChannelShuffle { groups } => {
                let (c, plane, gr) = (xs[1] as usize, (xs[2] * xs[3]) as usize, *groups as usize);
                let per = c / gr;
                (0..c)
                    .flat_map(|j| {
                        let src = (j % gr) * per + j / gr;
                        x[src * plane..(src + 1) * plane].iter().copied()
                    })
                    .collect()
            }
            Op::MaxPool(p) => pool(x, &xs, p, &ys, true),
            Op::AveragePool(p) => pool(x, &xs, p, &ys, false),
            Op::GlobalAveragePool => {
                let plane = (xs[2] * xs[3]) as usize;
                x.chunks(plane).map(|c| c.iter().sum::<f32>() / plane as f32).collect()
            }
            Op::Reshape => x.clone(),
            other => panic!("reference interpreter does not run {}", other.kind_name()),
        };
        values[node.outputs[0] as usize] = y;
    }
    values
}

fn conv(x: &[f32], xs: &[u32], w: &[f32], ws: &[u32], bias: Option<&[f32]>, c: &Conv, ys: &[u32]) -> Vec<f32> {
    let [h, wd] = [xs[2], xs[3]].map(|d| d as isize);
    let [cout, ig, kh, kw] = [ws[0], ws[1], ws[2], ws[3]].map(|d| d as usize);
    let [ho, wo] = [ys[2], ys[3]].map(|d| d as usize);
    let (s0, s1) = (c.stride[0] as isize, c.stride[1] as isize);
    let (pt, pl) = (c.pads[0] as isize, c.pads[1] as isize);
    let og = cout / c.groups as usize;
    let mut y = vec![0.0f32; cout * ho * wo];
    for o in 0..cout {
        let out = &mut y[o * ho * wo..(o + 1) * ho * wo];
        out.fill(bias.map_or(0.0, |b| b[o]));
        let base = (o / og) * ig;
        for j in 0..ig {
            let plane = &x[(base + j) * (h * wd) as usize..][..(h * wd) as usize];
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = w[((o * ig + j) * kh + ky) * kw + kx];
                    for oy in 0..ho {
                        let iy = oy as isize * s0 + ky as isize - pt;
                        if iy < 0 || iy >= h {
                            continue;
                        }
                        let row = &plane[(iy * wd) as usize..][..wd as usize];
                        for ox in 0..wo {
                            let ix = ox as isize * s1 + kx as isize - pl;
                            if ix >= 0 && ix < wd {
                                out[oy * wo + ox] += wv * row[ix as usize];
                            }
                        }
                    }
                }
            }
        }
        out.iter_mut().for_each(|v| *v = c.activation.apply(*v));
    }
    y
}

fn pool(x: &[f32], xs: &[u32], p: &Pool, ys: &[u32], max: bool) -> Vec<f32> {
    let [c, h, w] = [xs[1], xs[2], xs[3]].map(|d| d as isize);
    let [ho, wo] = [ys[2], ys[3]].map(|d| d as isize);
    let [kh, kw] = p.kernel.map(|d| d as isize);
    let [sh, sw] = p.stride.map(|d| d as isize);
    let [pt, pl, pb, pr] = p.pads.map(|d| d as isize);
    let mut y = Vec::with_capacity((c * ho * wo) as usize);
    for ch in 0..c {
        let plane = &x[(ch * h * w) as usize..][..(h * w) as usize];
        for oy in 0..ho {
            for ox in 0..wo {
                let (y0, x0) = (oy * sh - pt, ox * sw - pl);
                let (y1, x1) = ((y0 + kh).min(h + pb), (x0 + kw).min(w + pr));
                let full = (y1 - y0) * (x1 - x0);
                let (mut acc, mut n) = (if max { f32::NEG_INFINITY } else { 0.0 }, 0);
                for iy in y0.max(0)..y1.min(h) {
                    for ix in x0.max(0)..x1.min(w) {
                        let v = plane[(iy * w + ix) as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                        n += 1;
                    }
                }
                let div = if p.count_include_pad { full } else { n };
                y.push(if max { acc } else { acc / div as f32 });
            }
        }
    }
    y
}
