//! Constant folding: a small evaluator for nodes whose inputs are all constants.
//!
//! PyTorch exports shape arithmetic as subgraphs (`Shape → Gather → Unsqueeze → Concat →
//! Reshape`, `ConstantOfShape`, `Range`, ...). With static shapes every such node has
//! constant inputs, so the importer evaluates it here instead of lowering it; `Shape` of an
//! activation is answered by the importer from the activation's static shape.

use super::ImportError;
use super::attrs::NodeRef;
use super::proto::tensor_proto::DataType;
use super::shape::{
    broadcast_shape, broadcast_strides, normalize_axis, reshape_target, slice_bounds,
    strided_indices, strides,
};
use super::tensor::{Data, FOLD_MAX_NUMEL, Tensor, checked_numel};

type R<T> = Result<T, ImportError>;

/// Evaluates `node` on constant `inputs` (one entry per input slot, `None` for an omitted
/// optional input). Returns `Ok(None)` when the op is not one the folder knows, so the
/// caller can lower it (or report it) instead.
pub fn eval(n: &NodeRef, inputs: &[Option<&Tensor>]) -> R<Option<Vec<Tensor>>> {
    let input = |i: usize| -> R<&Tensor> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| n.error(format!("input {i} is missing")))
    };
    let opt = |i: usize| inputs.get(i).copied().flatten();
    let out = match n.op {
        "Identity" | "Dropout" => input(0)?.clone(),
        "Cast" => cast(n, input(0)?)?,
        "Reshape" => {
            let x = input(0)?;
            let shape = reshape_target(&x.shape, &input(1)?.to_i64(), n.int("allowzero", 0)? != 0)
                .map_err(|e| n.error(e))?;
            Tensor {
                shape,
                data: x.data.clone(),
            }
        }
        "Flatten" => {
            let x = input(0)?;
            let axis = normalize_axis(n.int("axis", 1)?, x.shape.len() + 1)
                .ok_or_else(|| n.unsupported("axis", n.int("axis", 1)))?;
            let outer = x.shape[..axis].iter().product();
            Tensor {
                shape: vec![outer, x.numel() / outer.max(1)],
                data: x.data.clone(),
            }
        }
        "Unsqueeze" | "Squeeze" => squeeze(n, input(0)?, opt(1))?,
        "Gather" => gather(n, input(0)?, input(1)?)?,
        "Concat" => concat(n, inputs)?,
        "Slice" => slice(n, input(0)?, input(1)?, input(2)?, opt(3), opt(4))?,
        "Transpose" => transpose(n, input(0)?)?,
        "Expand" => {
            let x = input(0)?;
            let target = dims(n, &input(1)?.to_i64())?;
            let shape =
                broadcast_shape(&x.shape, &target).ok_or_else(|| n.error("bad Expand shape"))?;
            view(
                n,
                x,
                &shape.clone(),
                &broadcast_strides(&x.shape, &shape),
                0,
            )?
        }
        "ConstantOfShape" => {
            let shape = dims(n, &input(0)?.to_i64())?;
            let numel = limit(n, &shape)?;
            let value = match n.tensor_opt("value")? {
                Some(t) => super::tensor::decode(t)?,
                None => Tensor::f32(vec![1], vec![0.0]),
            };
            match value.data {
                Data::F32(v) if v.len() == 1 => Tensor::f32(shape, vec![v[0]; numel]),
                Data::I64(v) if v.len() == 1 => Tensor::i64(shape, vec![v[0]; numel]),
                _ => return Err(n.unsupported("value", "a non-scalar tensor")),
            }
        }
        "Range" => range(n, input(0)?, input(1)?, input(2)?)?,
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Min" | "Max" | "Equal" | "Less" | "Greater" => {
            let mut acc = input(0)?.clone();
            for i in 1..inputs.len().max(2) {
                acc = binary(n, &acc, input(i)?)?;
            }
            acc
        }
        "Where" => where_(n, input(0)?, input(1)?, input(2)?)?,
        "Neg" | "Abs" | "Sqrt" | "Reciprocal" | "Floor" | "Ceil" | "Exp" | "Not" => {
            unary(n, input(0)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

/// Non-negative dimensions from an `i64` shape tensor.
fn dims(n: &NodeRef, v: &[i64]) -> R<Vec<usize>> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| n.error(format!("negative dimension in {v:?}"))))
        .collect()
}

/// Checks that a computed tensor stays under [`FOLD_MAX_NUMEL`]; returns its element count.
fn limit(n: &NodeRef, shape: &[usize]) -> R<usize> {
    match checked_numel(shape) {
        Some(k) if k <= FOLD_MAX_NUMEL => Ok(k),
        _ => Err(n.error(format!("constant of shape {shape:?} is too large to fold"))),
    }
}

/// A strided view of `x` materialised as a new tensor of shape `out`.
fn view(n: &NodeRef, x: &Tensor, out: &[usize], st: &[isize], offset: isize) -> R<Tensor> {
    limit(n, out)?;
    let idx = strided_indices(out, st, offset);
    if idx.iter().any(|&i| i >= x.numel()) && !idx.is_empty() {
        return Err(n.error("index out of range"));
    }
    Ok(Tensor {
        shape: out.to_vec(),
        data: x.data.take(&idx),
    })
}

fn cast(n: &NodeRef, x: &Tensor) -> R<Tensor> {
    let to = n
        .int_opt("to")?
        .ok_or_else(|| n.error("missing attribute 'to'"))?;
    let float = [
        DataType::Float,
        DataType::Double,
        DataType::Float16,
        DataType::Bfloat16,
    ];
    Ok(match DataType::try_from(to as i32) {
        Ok(t) if float.contains(&t) => Tensor::f32(x.shape.clone(), x.to_f32()),
        Ok(DataType::Bool) => Tensor::i64(
            x.shape.clone(),
            x.to_f32().iter().map(|&v| (v != 0.0) as i64).collect(),
        ),
        Ok(DataType::String | DataType::Undefined) | Err(_) => return Err(n.unsupported("to", to)),
        Ok(_) => Tensor::i64(x.shape.clone(), x.to_i64()),
    })
}

/// `axes` of `Squeeze`/`Unsqueeze`/`ReduceMean`: an input from opset 13 (18 for reductions),
/// an attribute before; either form is accepted whatever the opset.
pub fn axes_of(n: &NodeRef, input: Option<&Tensor>) -> R<Option<Vec<i64>>> {
    match input {
        Some(t) => Ok(Some(t.to_i64())),
        None => Ok(n.ints_opt("axes")?.map(<[i64]>::to_vec)),
    }
}

fn squeeze(n: &NodeRef, x: &Tensor, axes_in: Option<&Tensor>) -> R<Tensor> {
    let axes = axes_of(n, axes_in)?;
    let shape = if n.op == "Unsqueeze" {
        let axes = axes.ok_or_else(|| n.error("Unsqueeze needs axes"))?;
        unsqueeze_shape(&x.shape, &axes).ok_or_else(|| n.unsupported("axes", &axes))?
    } else {
        squeeze_shape(&x.shape, axes.as_deref()).ok_or_else(|| n.unsupported("axes", &axes))?
    };
    Ok(Tensor {
        shape,
        data: x.data.clone(),
    })
}

/// Shape after `Unsqueeze` with `axes` (relative to the output rank).
pub fn unsqueeze_shape(shape: &[usize], axes: &[i64]) -> Option<Vec<usize>> {
    let rank = shape.len() + axes.len();
    let mut ones = vec![false; rank];
    for &a in axes {
        let a = normalize_axis(a, rank)?;
        if std::mem::replace(&mut ones[a], true) {
            return None;
        }
    }
    let mut rest = shape.iter();
    ones.iter()
        .map(|&one| if one { Some(1) } else { rest.next().copied() })
        .collect()
}

/// Shape after `Squeeze` of `axes` (all size-1 axes when `None`).
pub fn squeeze_shape(shape: &[usize], axes: Option<&[i64]>) -> Option<Vec<usize>> {
    let mut drop = vec![false; shape.len()];
    match axes {
        None => shape.iter().zip(&mut drop).for_each(|(&d, k)| *k = d == 1),
        Some(axes) => {
            for &a in axes {
                let a = normalize_axis(a, shape.len())?;
                if shape[a] != 1 {
                    return None;
                }
                drop[a] = true;
            }
        }
    }
    Some(
        shape
            .iter()
            .zip(&drop)
            .filter(|(_, k)| !**k)
            .map(|(&d, _)| d)
            .collect(),
    )
}

fn gather(n: &NodeRef, x: &Tensor, indices: &Tensor) -> R<Tensor> {
    let axis = normalize_axis(n.int("axis", 0)?, x.shape.len())
        .ok_or_else(|| n.unsupported("axis", n.int("axis", 0)))?;
    let dim = x.shape[axis] as i64;
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut shape = x.shape[..axis].to_vec();
    shape.extend(&indices.shape);
    shape.extend(&x.shape[axis + 1..]);
    limit(n, &shape)?;
    let mut idx = Vec::with_capacity(outer * indices.numel() * inner);
    for o in 0..outer {
        for &i in &indices.to_i64() {
            let i = if i < 0 { i + dim } else { i };
            if !(0..dim).contains(&i) {
                return Err(n.error(format!("index {i} out of range for axis of size {dim}")));
            }
            let base = (o * dim as usize + i as usize) * inner;
            idx.extend(base..base + inner);
        }
    }
    Ok(Tensor {
        shape,
        data: x.data.take(&idx),
    })
}

fn concat(n: &NodeRef, inputs: &[Option<&Tensor>]) -> R<Tensor> {
    let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
    let first = parts.first().ok_or_else(|| n.error("no inputs"))?;
    let rank = first.shape.len();
    let axis = normalize_axis(n.int("axis", 0)?, rank)
        .ok_or_else(|| n.unsupported("axis", n.int("axis", 0)))?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for p in &parts {
        let same = p.shape.len() == rank
            && p.shape
                .iter()
                .enumerate()
                .all(|(i, &d)| i == axis || d == first.shape[i]);
        if !same {
            return Err(n.error(format!(
                "cannot concatenate {:?} and {:?}",
                first.shape, p.shape
            )));
        }
        shape[axis] += p.shape[axis];
    }
    limit(n, &shape)?;
    let outer: usize = shape[..axis].iter().product();
    let float = parts.iter().any(|p| matches!(p.data, Data::F32(_)));
    let blocks = |p: &Tensor| p.shape[axis..].iter().product::<usize>();
    let data = if float {
        let vs: Vec<Vec<f32>> = parts.iter().map(|p| p.to_f32()).collect();
        let mut out = Vec::new();
        for o in 0..outer {
            for (p, v) in parts.iter().zip(&vs) {
                let b = blocks(p);
                out.extend_from_slice(&v[o * b..(o + 1) * b]);
            }
        }
        Data::F32(out)
    } else {
        let vs: Vec<Vec<i64>> = parts.iter().map(|p| p.to_i64()).collect();
        let mut out = Vec::new();
        for o in 0..outer {
            for (p, v) in parts.iter().zip(&vs) {
                let b = blocks(p);
                out.extend_from_slice(&v[o * b..(o + 1) * b]);
            }
        }
        Data::I64(out)
    };
    Ok(Tensor { shape, data })
}

fn slice(
    n: &NodeRef,
    x: &Tensor,
    starts: &Tensor,
    ends: &Tensor,
    axes: Option<&Tensor>,
    steps: Option<&Tensor>,
) -> R<Tensor> {
    let (starts, ends) = (starts.to_i64(), ends.to_i64());
    let axes = axes
        .map(Tensor::to_i64)
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps
        .map(Tensor::to_i64)
        .unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(n.error("starts, ends, axes and steps differ in length"));
    }
    let base = strides(&x.shape);
    let mut out = x.shape.clone();
    let mut st: Vec<isize> = base.iter().map(|&s| s as isize).collect();
    let mut offset = 0isize;
    for i in 0..starts.len() {
        let a =
            normalize_axis(axes[i], x.shape.len()).ok_or_else(|| n.unsupported("axes", &axes))?;
        let (first, step, count) = slice_bounds(x.shape[a], starts[i], ends[i], steps[i])
            .ok_or_else(|| n.unsupported("steps", &steps))?;
        out[a] = count;
        offset = offset.wrapping_add((first as isize).wrapping_mul(base[a] as isize));
        st[a] = (base[a] as isize).wrapping_mul(step as isize);
    }
    view(n, x, &out, &st, offset)
}

fn transpose(n: &NodeRef, x: &Tensor) -> R<Tensor> {
    let rank = x.shape.len();
    let perm: Vec<usize> = match n.ints_opt("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<Option<_>>()
            .ok_or_else(|| n.unsupported("perm", p))?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        return Err(n.unsupported("perm", &perm));
    }
    let base = strides(&x.shape);
    let out: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let st: Vec<isize> = perm.iter().map(|&p| base[p] as isize).collect();
    view(n, x, &out, &st, 0)
}

fn range(n: &NodeRef, start: &Tensor, limit_t: &Tensor, delta: &Tensor) -> R<Tensor> {
    let float = [start, limit_t, delta]
        .iter()
        .any(|t| matches!(t.data, Data::F32(_)));
    let s = |t: &Tensor| {
        t.scalar_f32()
            .ok_or_else(|| n.error("Range inputs must be scalars"))
    };
    let (a, b, d) = (s(start)? as f64, s(limit_t)? as f64, s(delta)? as f64);
    let count = ((b - a) / d).ceil();
    if !count.is_finite() {
        return Err(n.error("Range delta must be non-zero"));
    }
    let count = count.max(0.0) as usize;
    limit(n, &[count])?;
    Ok(if float {
        Tensor::f32(
            vec![count],
            (0..count).map(|i| (a + i as f64 * d) as f32).collect(),
        )
    } else {
        Tensor::i64(
            vec![count],
            (0..count).map(|i| (a + i as f64 * d) as i64).collect(),
        )
    })
}

/// Both operands broadcast to a common shape: `(shape, indices into a, indices into b)`.
fn broadcast2(n: &NodeRef, a: &[usize], b: &[usize]) -> R<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    let shape = broadcast_shape(a, b)
        .ok_or_else(|| n.error(format!("cannot broadcast {a:?} with {b:?}")))?;
    limit(n, &shape)?;
    let ia = strided_indices(&shape, &broadcast_strides(a, &shape), 0);
    let ib = strided_indices(&shape, &broadcast_strides(b, &shape), 0);
    Ok((shape, ia, ib))
}

fn binary(n: &NodeRef, a: &Tensor, b: &Tensor) -> R<Tensor> {
    let (shape, ia, ib) = broadcast2(n, &a.shape, &b.shape)?;
    let float = matches!(a.data, Data::F32(_)) || matches!(b.data, Data::F32(_));
    let cmp = |o: std::cmp::Ordering| -> i64 {
        (match n.op {
            "Equal" => o.is_eq(),
            "Less" => o.is_lt(),
            _ => o.is_gt(),
        }) as i64
    };
    if float {
        let (x, y) = (a.to_f32(), b.to_f32());
        let pairs = ia.iter().zip(&ib).map(|(&i, &j)| (x[i], y[j]));
        if matches!(n.op, "Equal" | "Less" | "Greater") {
            let v = pairs
                .map(|(p, q)| p.partial_cmp(&q).map_or(0, cmp))
                .collect();
            return Ok(Tensor::i64(shape, v));
        }
        let f = |p: f32, q: f32| match n.op {
            "Add" => p + q,
            "Sub" => p - q,
            "Mul" => p * q,
            "Div" => p / q,
            "Pow" => p.powf(q),
            "Min" => p.min(q),
            _ => p.max(q),
        };
        Ok(Tensor::f32(shape, pairs.map(|(p, q)| f(p, q)).collect()))
    } else {
        let (x, y) = (a.to_i64(), b.to_i64());
        let mut v = Vec::with_capacity(ia.len());
        for (&i, &j) in ia.iter().zip(&ib) {
            let (p, q) = (x[i], y[j]);
            v.push(match n.op {
                "Add" => p.wrapping_add(q),
                "Sub" => p.wrapping_sub(q),
                "Mul" => p.wrapping_mul(q),
                "Div" => p
                    .checked_div(q)
                    .ok_or_else(|| n.error("integer division by zero"))?,
                "Pow" => p.wrapping_pow(q.clamp(0, u32::MAX as i64) as u32),
                "Min" => p.min(q),
                "Max" => p.max(q),
                _ => cmp(p.cmp(&q)),
            });
        }
        Ok(Tensor::i64(shape, v))
    }
}

fn where_(n: &NodeRef, cond: &Tensor, x: &Tensor, y: &Tensor) -> R<Tensor> {
    let xy = broadcast_shape(&x.shape, &y.shape).ok_or_else(|| n.error("Where shapes"))?;
    let shape = broadcast_shape(&cond.shape, &xy).ok_or_else(|| n.error("Where shapes"))?;
    limit(n, &shape)?;
    let at = |t: &Tensor| strided_indices(&shape, &broadcast_strides(&t.shape, &shape), 0);
    let (ic, ix, iy) = (at(cond), at(x), at(y));
    let c = cond.to_i64();
    let pick: Vec<bool> = ic.iter().map(|&i| c[i] != 0).collect();
    Ok(
        if matches!(x.data, Data::F32(_)) || matches!(y.data, Data::F32(_)) {
            let (xv, yv) = (x.to_f32(), y.to_f32());
            let v = (0..pick.len()).map(|k| if pick[k] { xv[ix[k]] } else { yv[iy[k]] });
            Tensor::f32(shape, v.collect())
        } else {
            let (xv, yv) = (x.to_i64(), y.to_i64());
            let v = (0..pick.len()).map(|k| if pick[k] { xv[ix[k]] } else { yv[iy[k]] });
            Tensor::i64(shape, v.collect())
        },
    )
}

fn unary(n: &NodeRef, x: &Tensor) -> Tensor {
    let shape = x.shape.clone();
    match (&x.data, n.op) {
        (Data::I64(v), "Neg") => Tensor::i64(shape, v.iter().map(|a| a.wrapping_neg()).collect()),
        (Data::I64(v), "Abs") => Tensor::i64(shape, v.iter().map(|a| a.wrapping_abs()).collect()),
        (Data::I64(v), "Not") => Tensor::i64(shape, v.iter().map(|&a| (a == 0) as i64).collect()),
        (Data::I64(v), "Floor" | "Ceil") => Tensor::i64(shape, v.clone()),
        _ => {
            let f = |a: f32| match n.op {
                "Neg" => -a,
                "Abs" => a.abs(),
                "Sqrt" => a.sqrt(),
                "Reciprocal" => 1.0 / a,
                "Floor" => a.floor(),
                "Ceil" => a.ceil(),
                "Not" => (a == 0.0) as i32 as f32,
                _ => a.exp(),
            };
            Tensor::f32(shape, x.to_f32().into_iter().map(f).collect())
        }
    }
}
