//! The memory plan (buffer reuse, aliasing slices and reshapes, concat written in place)
//! never lets a live tensor be overwritten: random graphs of channel-wise ops run through a
//! session equal a naive interpreter that gives every tensor its own buffer. Pointwise
//! convolutions followed by an Add of a skip tensor cover the residual adds the session
//! fuses into the convolution (the skip must outlive the convolution, the output must not
//! overlap it).

use proptest::prelude::*;
use prunus_format::builder::ModelBuilder;
use prunus_format::{Activation, BinaryKind, Conv, Op, TensorId};

/// One random graph-building action; indices pick among existing tensors (modulo count).
#[derive(Clone, Debug)]
enum Action {
    Act(usize, bool),
    Add(usize, usize),
    Concat(Vec<usize>),
    Slice(usize, u32, u32),
    Shuffle(usize),
    Reshape(usize),
    Conv1x1(usize, u32),
    /// `act(conv1x1(t) + u)`, the convolution's output channels those of `u`; the bool
    /// orders the Add's operands, the activation is the Add's.
    ConvAdd(usize, usize, bool, bool),
}

fn action() -> impl Strategy<Value = Action> {
    let i = 0usize..64;
    prop_oneof![
        (i.clone(), any::<bool>()).prop_map(|(a, b)| Action::Act(a, b)),
        (i.clone(), i.clone()).prop_map(|(a, b)| Action::Add(a, b)),
        prop::collection::vec(i.clone(), 2..4).prop_map(Action::Concat),
        (i.clone(), 0u32..16, 1u32..16).prop_map(|(a, s, l)| Action::Slice(a, s, l)),
        i.clone().prop_map(Action::Shuffle),
        i.clone().prop_map(Action::Reshape),
        (i.clone(), 1u32..12).prop_map(|(a, c)| Action::Conv1x1(a, c)),
        (i.clone(), i, any::<bool>(), any::<bool>())
            .prop_map(|(a, b, swap, relu)| Action::ConvAdd(a, b, swap, relu)),
    ]
}

/// Values of every tensor, computed naively from its inputs.
struct Naive {
    values: Vec<Vec<f32>>,
}

/// A 1x1 convolution of `t` to `oc` channels (no bias, no activation) and its naive value.
fn conv1x1(
    b: &mut ModelBuilder,
    naive: &Naive,
    name: &str,
    t: TensorId,
    oc: u32,
) -> (Op, Vec<f32>) {
    let s = b.shape(t).to_vec();
    let (c, hw) = (s[1] as usize, (s[2] * s[3]) as usize);
    let w: Vec<f32> = (0..oc as usize * c)
        .map(|k| ((k * 31) % 11) as f32 / 11.0 - 0.5)
        .collect();
    let x = &naive.values[t as usize];
    let mut v = vec![0.0; oc as usize * hw];
    for o in 0..oc as usize {
        for p in 0..hw {
            v[o * hw + p] = (0..c).map(|i| w[o * c + i] * x[i * hw + p]).sum();
        }
    }
    let weight = b.add_weight(&format!("{name}.w"), &[oc, c as u32, 1, 1], w);
    let conv = Conv {
        weight,
        bias: None,
        kernel: [1, 1],
        stride: [1, 1],
        pads: [0; 4],
        dilation: [1, 1],
        groups: 1,
        activation: Activation::None,
    };
    (Op::Conv(conv), v)
}

fn build(actions: &[Action], c0: u32, hw: u32) -> (ModelBuilder, Naive) {
    let mut b = ModelBuilder::new("random", "test");
    let input = b.add_input("input", &[1, c0, hw, hw]);
    let data: Vec<f32> = (0..(c0 * hw * hw) as usize)
        .map(|i| ((i * 7919) % 23) as f32 / 7.0 - 1.5)
        .collect();
    let mut naive = Naive { values: vec![data] };
    let mut live: Vec<TensorId> = vec![input];
    for (k, a) in actions.iter().enumerate() {
        let name = format!("t{k}");
        let pick = |i: usize| live[i % live.len()];
        let (op, inputs, shape, value): (Op, Vec<TensorId>, Option<Vec<u32>>, Vec<f32>) = match a {
            Action::Act(i, relu) => {
                let t = pick(*i);
                let act = if *relu {
                    Activation::Relu
                } else {
                    Activation::HardSwish
                };
                let v = naive.values[t as usize]
                    .iter()
                    .map(|&x| act.apply(x))
                    .collect();
                (Op::Activation(act), vec![t], None, v)
            }
            Action::Add(i, j) => {
                let (t, u) = (pick(*i), pick(*j));
                if b.shape(t) != b.shape(u) {
                    continue;
                }
                let v = naive.values[t as usize]
                    .iter()
                    .zip(&naive.values[u as usize])
                    .map(|(x, y)| x + y)
                    .collect();
                let op = Op::Binary {
                    kind: BinaryKind::Add,
                    activation: Activation::None,
                };
                (op, vec![t, u], None, v)
            }
            Action::Concat(is) => {
                let ts: Vec<TensorId> = is.iter().map(|&i| pick(i)).collect();
                if ts.iter().any(|&t| b.shape(t)[2..] != b.shape(ts[0])[2..]) {
                    continue;
                }
                let v = ts
                    .iter()
                    .flat_map(|&t| naive.values[t as usize].clone())
                    .collect();
                (Op::Concat, ts, None, v)
            }
            Action::Slice(i, s, l) => {
                let t = pick(*i);
                let [_, c, h, w] = [0, 1, 2, 3].map(|d| b.shape(t)[d]);
                let start = s % c;
                let end = (start + l).min(c);
                let hw = (h * w) as usize;
                let v = naive.values[t as usize][start as usize * hw..end as usize * hw].to_vec();
                (Op::SliceChannels { start, end }, vec![t], None, v)
            }
            Action::Shuffle(i) => {
                let t = pick(*i);
                let s = b.shape(t).to_vec();
                let (c, hw) = (s[1] as usize, (s[2] * s[3]) as usize);
                let Some(g) = [2usize, 3].into_iter().find(|g| c % g == 0) else {
                    continue;
                };
                let x = &naive.values[t as usize];
                let mut v = vec![0.0; x.len()];
                for i in 0..g {
                    for j in 0..c / g {
                        let (dst, src) = (j * g + i, i * (c / g) + j);
                        v[dst * hw..(dst + 1) * hw].copy_from_slice(&x[src * hw..(src + 1) * hw]);
                    }
                }
                (Op::ChannelShuffle { groups: g as u32 }, vec![t], None, v)
            }
            Action::Reshape(i) => {
                let t = pick(*i);
                let s = b.shape(t).to_vec();
                let shape = vec![1, s[1], s[3], s[2]];
                (
                    Op::Reshape,
                    vec![t],
                    Some(shape),
                    naive.values[t as usize].clone(),
                )
            }
            Action::Conv1x1(i, oc) => {
                let t = pick(*i);
                let (op, v) = conv1x1(&mut b, &naive, &name, t, *oc);
                (op, vec![t], None, v)
            }
            Action::ConvAdd(i, j, swap, relu) => {
                let (t, u) = (pick(*i), pick(*j));
                if b.shape(t)[2..] != b.shape(u)[2..] {
                    continue;
                }
                let oc = b.shape(u)[1];
                let (op, v) = conv1x1(&mut b, &naive, &format!("{name}.conv"), t, oc);
                let conv = b
                    .add_node(&format!("{name}.conv"), op, &[t])
                    .expect("valid conv");
                let act = if *relu {
                    Activation::Relu
                } else {
                    Activation::None
                };
                let sum = v
                    .iter()
                    .zip(&naive.values[u as usize])
                    .map(|(x, y)| act.apply(x + y))
                    .collect();
                naive.values.push(v);
                live.push(conv);
                let op = Op::Binary {
                    kind: BinaryKind::Add,
                    activation: act,
                };
                let inputs = if *swap { vec![u, conv] } else { vec![conv, u] };
                (op, inputs, None, sum)
            }
        };
        let out = b
            .add_node_with_shape(&name, op, &inputs, shape)
            .expect("valid random node");
        naive.values.push(value);
        live.push(out);
    }
    (b, naive)
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn session_matches_naive_interpreter(
        actions in prop::collection::vec(action(), 1..24),
        c0 in 1u32..9,
        hw in 1u32..5,
        outputs in prop::collection::vec(0usize..64, 1..4),
    ) {
        let (mut b, naive) = build(&actions, c0, hw);
        let n = b.graph.tensors.len();
        let mut outs: Vec<TensorId> = outputs.iter().map(|&o| (o % n) as TensorId).collect();
        outs.push((n - 1) as TensorId);
        outs.dedup();
        b.set_outputs(&outs);
        let bytes = b.to_bytes(Default::default()).unwrap();
        let model = prunus::Model::from_bytes(&bytes).unwrap();
        let input = &naive.values[0];
        for retain in [prunus::Retain::Outputs, prunus::Retain::All] {
            let all = retain == prunus::Retain::All;
            let mut session = model.session(prunus::Options { retain, ..Default::default() }).unwrap();
            if all {
                // Every tensor stays readable: no convolution output is fused away.
                prop_assert_eq!(session.report().fused_residuals, 0);
            }
            session.run(&[input]).unwrap();
            for (k, &t) in outs.iter().enumerate() {
                prop_assert!(close(session.output(k).unwrap(), &naive.values[t as usize]), "output {k} (tensor {t})");
            }
            if all {
                for (t, info) in b.graph.tensors.iter().enumerate() {
                    prop_assert!(close(session.tensor(&info.name).unwrap(), &naive.values[t]), "tensor {}", info.name);
                }
            }
        }
    }
}
