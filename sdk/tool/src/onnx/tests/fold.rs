//! The constant folder on its own: each op against hand-computed results.

use super::super::attrs::NodeRef;
use super::super::fold::eval;
use super::super::tensor::Tensor;
use super::*;

fn run(
    op: &str,
    attrs: Vec<AttributeProto>,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, ImportError> {
    let proto = NodeProto {
        op_type: Some(op.into()),
        attribute: attrs,
        ..Default::default()
    };
    let n = NodeRef {
        name: "n",
        op,
        proto: &proto,
    };
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
    let mut outs = eval(&n, &refs)?.expect("foldable");
    Ok(outs.remove(0))
}

fn i(shape: &[usize], v: &[i64]) -> Option<Tensor> {
    Some(Tensor::i64(shape.to_vec(), v.to_vec()))
}

fn f(shape: &[usize], v: &[f32]) -> Option<Tensor> {
    Some(Tensor::f32(shape.to_vec(), v.to_vec()))
}

#[test]
fn gather_concat_unsqueeze_squeeze() {
    let shape = i(&[4], &[1, 8, 7, 7]);
    assert_eq!(
        run("Gather", vec![], &[shape.clone(), i(&[], &[-1])]).unwrap(),
        Tensor::i64(vec![], vec![7])
    );
    assert_eq!(
        run("Gather", vec![], &[shape, i(&[2], &[0, 1])]).unwrap(),
        Tensor::i64(vec![2], vec![1, 8])
    );
    let m = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        run("Gather", vec![ai("axis", 1)], &[m.clone(), i(&[1], &[2])]).unwrap(),
        Tensor::f32(vec![2, 1], vec![3.0, 6.0])
    );
    let cat = run(
        "Concat",
        vec![ai("axis", 1)],
        &[m.clone(), f(&[2, 1], &[9.0, 8.0])],
    )
    .unwrap();
    assert_eq!(
        cat,
        Tensor::f32(vec![2, 4], vec![1.0, 2.0, 3.0, 9.0, 4.0, 5.0, 6.0, 8.0])
    );
    let u = run("Unsqueeze", vec![], &[i(&[], &[5]), i(&[1], &[0])]).unwrap();
    assert_eq!(u.shape, vec![1]);
    let u = run(
        "Unsqueeze",
        vec![ais("axes", &[0, -1])],
        std::slice::from_ref(&m),
    )
    .unwrap();
    assert_eq!(u.shape, vec![1, 2, 3, 1]);
    let s = run("Squeeze", vec![], &[Some(u)]).unwrap();
    assert_eq!(s.shape, vec![2, 3]);
    assert!(run("Squeeze", vec![], &[m, i(&[1], &[0])]).is_err());
}

#[test]
fn slice_transpose_expand() {
    let m = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let rev = run(
        "Slice",
        vec![],
        &[
            m.clone(),
            i(&[1], &[-1]),
            i(&[1], &[i64::MIN]),
            i(&[1], &[1]),
            i(&[1], &[-1]),
        ],
    );
    assert_eq!(
        rev.unwrap(),
        Tensor::f32(vec![2, 3], vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0])
    );
    let tail = run(
        "Slice",
        vec![],
        &[m.clone(), i(&[1], &[1]), i(&[1], &[i64::MAX])],
    )
    .unwrap();
    assert_eq!(tail, Tensor::f32(vec![1, 3], vec![4.0, 5.0, 6.0]));
    let t = run(
        "Transpose",
        vec![ais("perm", &[1, 0])],
        std::slice::from_ref(&m),
    )
    .unwrap();
    assert_eq!(
        t,
        Tensor::f32(vec![3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
    );
    let e = run(
        "Expand",
        vec![],
        &[f(&[2, 1], &[1.0, 2.0]), i(&[2], &[2, 2])],
    )
    .unwrap();
    assert_eq!(e, Tensor::f32(vec![2, 2], vec![1.0, 1.0, 2.0, 2.0]));
    // Extreme steps take one element and must not overflow.
    for step in [i64::MAX, i64::MIN] {
        let (start, end) = if step > 0 {
            (0, i64::MAX)
        } else {
            (-1, i64::MIN)
        };
        let args = [
            m.clone(),
            i(&[1], &[start]),
            i(&[1], &[end]),
            i(&[1], &[1]),
            i(&[1], &[step]),
        ];
        let one = run("Slice", vec![], &args).unwrap();
        assert_eq!(one.shape, vec![2, 1], "step {step}");
    }
    assert!(run("Transpose", vec![ais("perm", &[0, 0])], &[m]).is_err());
}

#[test]
fn arithmetic_cast_and_generators() {
    let a = i(&[2], &[7, -7]);
    assert_eq!(
        run("Div", vec![], &[a.clone(), i(&[], &[2])]).unwrap(),
        Tensor::i64(vec![2], vec![3, -3])
    );
    assert!(run("Div", vec![], &[a.clone(), i(&[], &[0])]).is_err());
    let mixed = run("Mul", vec![], &[a.clone(), f(&[], &[0.5])]).unwrap();
    assert_eq!(mixed, Tensor::f32(vec![2], vec![3.5, -3.5]));
    let cast = run(
        "Cast",
        vec![ai("to", DataType::Float as i64)],
        std::slice::from_ref(&a),
    )
    .unwrap();
    assert_eq!(cast, Tensor::f32(vec![2], vec![7.0, -7.0]));
    let eq = run("Equal", vec![], &[a.clone(), i(&[], &[7])]).unwrap();
    let w = run("Where", vec![], &[Some(eq), i(&[], &[1]), a]).unwrap();
    assert_eq!(w, Tensor::i64(vec![2], vec![1, -7]));
    let cos = run(
        "ConstantOfShape",
        vec![atensor("value", tensor_i64("v", &[1], &[3]))],
        &[i(&[2], &[2, 1])],
    );
    assert_eq!(cos.unwrap(), Tensor::i64(vec![2, 1], vec![3, 3]));
    let zeros = run("ConstantOfShape", vec![], &[i(&[1], &[2])]).unwrap();
    assert_eq!(zeros, Tensor::f32(vec![2], vec![0.0, 0.0]));
    let r = run("Range", vec![], &[i(&[], &[1]), i(&[], &[8]), i(&[], &[3])]).unwrap();
    assert_eq!(r, Tensor::i64(vec![3], vec![1, 4, 7]));
    assert!(run("Range", vec![], &[i(&[], &[0]), i(&[], &[1]), i(&[], &[0])]).is_err());
    let sqrt = run("Sqrt", vec![], &[f(&[1], &[4.0])]).unwrap();
    assert_eq!(sqrt, Tensor::f32(vec![1], vec![2.0]));
}

#[test]
fn huge_generated_constants_are_refused() {
    let err = run("ConstantOfShape", vec![], &[i(&[2], &[1 << 20, 1 << 20])]).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    assert!(
        run(
            "Range",
            vec![],
            &[f(&[], &[0.0]), f(&[], &[1e30]), f(&[], &[1.0])]
        )
        .is_err()
    );
    assert!(
        run(
            "Expand",
            vec![],
            &[i(&[1], &[1]), i(&[3], &[1 << 20, 1 << 20, 4])]
        )
        .is_err()
    );
}

#[test]
fn reshape_and_flatten_of_constants() {
    let m = f(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let r = run("Reshape", vec![], &[m.clone(), i(&[2], &[3, -1])]).unwrap();
    assert_eq!(r.shape, vec![3, 2]);
    let fl = run("Flatten", vec![ai("axis", 0)], std::slice::from_ref(&m)).unwrap();
    assert_eq!(fl.shape, vec![1, 6]);
    assert!(run("Reshape", vec![], &[m, i(&[1], &[4])]).is_err());
}

#[test]
fn unknown_ops_are_not_folded() {
    let proto = NodeProto {
        op_type: Some("Conv".into()),
        ..Default::default()
    };
    let n = NodeRef {
        name: "n",
        op: "Conv",
        proto: &proto,
    };
    let x = Tensor::f32(vec![1], vec![1.0]);
    assert!(eval(&n, &[Some(&x)]).unwrap().is_none());
}
