//! Constant tensors: decoding ONNX `TensorProto`s (initializers and `Constant` values) into a
//! small host tensor that the constant folder evaluates and the lowering turns into weights.
//!
//! Only two element kinds are kept: every floating type becomes `f32` and every integer or
//! boolean type becomes `i64`. That is all the folder needs for PyTorch shape subgraphs and
//! all the runtime needs for weights.

use super::ImportError;
use super::proto::TensorProto;
use super::proto::tensor_proto::{DataLocation, DataType};

/// Largest number of elements a folded (computed) constant may have: guards against
/// `ConstantOfShape`/`Expand`/`Range` in a hostile model allocating unbounded memory.
pub const FOLD_MAX_NUMEL: usize = 1 << 26;

/// Element values of a [`Tensor`].
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// Any floating-point ONNX type, widened or narrowed to `f32`.
    F32(Vec<f32>),
    /// Any integer or boolean ONNX type, widened to `i64`.
    I64(Vec<i64>),
}

/// A constant host tensor in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Data,
}

impl Data {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values picked at `indices` (each must be `< self.len()`, checked by callers).
    pub fn take(&self, indices: &[usize]) -> Data {
        match self {
            Data::F32(v) => Data::F32(indices.iter().filter_map(|&i| v.get(i).copied()).collect()),
            Data::I64(v) => Data::I64(indices.iter().filter_map(|&i| v.get(i).copied()).collect()),
        }
    }
}

impl Tensor {
    /// A tensor of `f32` values.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor {
            shape,
            data: Data::F32(data),
        }
    }

    /// A tensor of `i64` values.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Tensor {
        Tensor {
            shape,
            data: Data::I64(data),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The values as `f32` (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as `i64` (floats truncated toward zero, as ONNX `Cast` does).
    pub fn to_i64(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
        }
    }

    /// The single value of a one-element tensor, as `f32`.
    pub fn scalar_f32(&self) -> Option<f32> {
        (self.numel() == 1)
            .then(|| self.to_f32().first().copied())
            .flatten()
    }
}

/// Product of `dims`, or `None` on overflow.
pub fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn type_name(data_type: i32) -> String {
    DataType::try_from(data_type)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| format!("data type {data_type}"))
}

/// Decodes one `TensorProto` (raw little-endian bytes or typed fields).
pub fn decode(t: &TensorProto) -> Result<Tensor, ImportError> {
    let name = t.name.clone().unwrap_or_default();
    let bad = |reason: String| ImportError::InvalidTensor {
        tensor: name.clone(),
        reason,
    };
    if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty() {
        return Err(ImportError::ExternalData { tensor: name });
    }
    if t.segment.is_some() {
        return Err(bad("segmented tensors are not supported".into()));
    }
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let numel = checked_numel(&shape).ok_or_else(|| bad(format!("dims {:?} overflow", t.dims)))?;
    let dt = t.data_type.unwrap_or(0);
    let data = match &t.raw_data {
        Some(raw) if !raw.is_empty() || numel == 0 => decode_raw(dt, raw, numel, &name)?,
        _ => decode_typed(t, dt, &name)?,
    };
    if data.len() != numel {
        return Err(bad(format!(
            "{} values for dims {:?} ({numel} elements)",
            data.len(),
            t.dims
        )));
    }
    Ok(Tensor { shape, data })
}

fn decode_raw(dt: i32, raw: &[u8], numel: usize, name: &str) -> Result<Data, ImportError> {
    let width = match DataType::try_from(dt) {
        Ok(DataType::Float | DataType::Int32 | DataType::Uint32) => 4,
        Ok(DataType::Double | DataType::Int64 | DataType::Uint64) => 8,
        Ok(DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16) => 2,
        Ok(DataType::Int8 | DataType::Uint8 | DataType::Bool) => 1,
        _ => return Err(unsupported_type(dt, name)),
    };
    if Some(raw.len()) != numel.checked_mul(width) {
        return Err(ImportError::InvalidTensor {
            tensor: name.to_string(),
            reason: format!(
                "raw_data has {} bytes, expected {numel} x {width}",
                raw.len()
            ),
        });
    }
    let words = |n: usize| raw.chunks_exact(n);
    let arr4 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
    let arr8 = |c: &[u8]| [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
    let arr2 = |c: &[u8]| [c[0], c[1]];
    let data = match DataType::try_from(dt) {
        Ok(DataType::Float) => Data::F32(words(4).map(|c| f32::from_le_bytes(arr4(c))).collect()),
        Ok(DataType::Double) => Data::F32(
            words(8)
                .map(|c| f64::from_le_bytes(arr8(c)) as f32)
                .collect(),
        ),
        Ok(DataType::Float16) => Data::F32(
            words(2)
                .map(|c| half::f16::from_le_bytes(arr2(c)).to_f32())
                .collect(),
        ),
        Ok(DataType::Bfloat16) => Data::F32(
            words(2)
                .map(|c| half::bf16::from_le_bytes(arr2(c)).to_f32())
                .collect(),
        ),
        Ok(DataType::Int64) => Data::I64(words(8).map(|c| i64::from_le_bytes(arr8(c))).collect()),
        Ok(DataType::Uint64) => Data::I64(
            words(8)
                .map(|c| u64::from_le_bytes(arr8(c)) as i64)
                .collect(),
        ),
        Ok(DataType::Int32) => Data::I64(
            words(4)
                .map(|c| i32::from_le_bytes(arr4(c)) as i64)
                .collect(),
        ),
        Ok(DataType::Uint32) => Data::I64(
            words(4)
                .map(|c| u32::from_le_bytes(arr4(c)) as i64)
                .collect(),
        ),
        Ok(DataType::Int16) => Data::I64(
            words(2)
                .map(|c| i16::from_le_bytes(arr2(c)) as i64)
                .collect(),
        ),
        Ok(DataType::Uint16) => Data::I64(
            words(2)
                .map(|c| u16::from_le_bytes(arr2(c)) as i64)
                .collect(),
        ),
        Ok(DataType::Int8) => Data::I64(raw.iter().map(|&b| b as i8 as i64).collect()),
        Ok(DataType::Uint8) => Data::I64(raw.iter().map(|&b| b as i64).collect()),
        Ok(DataType::Bool) => Data::I64(raw.iter().map(|&b| (b != 0) as i64).collect()),
        _ => return Err(unsupported_type(dt, name)),
    };
    Ok(data)
}

fn decode_typed(t: &TensorProto, dt: i32, name: &str) -> Result<Data, ImportError> {
    let data = match DataType::try_from(dt) {
        Ok(DataType::Float) => Data::F32(t.float_data.clone()),
        Ok(DataType::Double) => Data::F32(t.double_data.iter().map(|&x| x as f32).collect()),
        // 16-bit floats are stored as their bit patterns in int32_data.
        Ok(DataType::Float16) => Data::F32(
            t.int32_data
                .iter()
                .map(|&b| half::f16::from_bits(b as u16).to_f32())
                .collect(),
        ),
        Ok(DataType::Bfloat16) => Data::F32(
            t.int32_data
                .iter()
                .map(|&b| half::bf16::from_bits(b as u16).to_f32())
                .collect(),
        ),
        Ok(DataType::Int64) => Data::I64(t.int64_data.clone()),
        Ok(
            DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint16
            | DataType::Uint8
            | DataType::Bool,
        ) => Data::I64(t.int32_data.iter().map(|&x| x as i64).collect()),
        Ok(DataType::Uint32 | DataType::Uint64) => {
            Data::I64(t.uint64_data.iter().map(|&x| x as i64).collect())
        }
        _ => return Err(unsupported_type(dt, name)),
    };
    Ok(data)
}

fn unsupported_type(dt: i32, name: &str) -> ImportError {
    ImportError::UnsupportedDataType {
        tensor: name.to_string(),
        data_type: type_name(dt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dt: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            name: Some("t".into()),
            data_type: Some(dt as i32),
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn raw_and_typed_fields_agree() {
        let mut raw = proto(DataType::Float, &[2]);
        raw.raw_data = Some(
            [1.5f32, -2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        let mut typed = proto(DataType::Float, &[2]);
        typed.float_data = vec![1.5, -2.0];
        assert_eq!(decode(&raw).unwrap(), decode(&typed).unwrap());

        let mut ints = proto(DataType::Int32, &[3]);
        ints.raw_data = Some([7i32, -1, 0].iter().flat_map(|v| v.to_le_bytes()).collect());
        assert_eq!(decode(&ints).unwrap(), Tensor::i64(vec![3], vec![7, -1, 0]));
        let mut i64s = proto(DataType::Int64, &[]);
        i64s.int64_data = vec![-5];
        assert_eq!(decode(&i64s).unwrap(), Tensor::i64(vec![], vec![-5]));
    }

    #[test]
    fn float16_is_widened() {
        let mut t = proto(DataType::Float16, &[1]);
        t.raw_data = Some(half::f16::from_f32(0.5).to_le_bytes().to_vec().into());
        assert_eq!(decode(&t).unwrap().to_f32(), vec![0.5]);
    }

    #[test]
    fn inconsistent_sizes_are_errors() {
        let mut t = proto(DataType::Float, &[3]);
        t.float_data = vec![1.0];
        assert!(matches!(decode(&t), Err(ImportError::InvalidTensor { .. })));
        let mut t = proto(DataType::Float, &[i64::MAX, i64::MAX]);
        t.raw_data = Some(vec![0u8; 4].into());
        assert!(matches!(decode(&t), Err(ImportError::InvalidTensor { .. })));
        let t = proto(DataType::Float, &[-1]);
        assert!(decode(&t).is_err());
    }

    #[test]
    fn external_data_is_a_clear_error() {
        let mut t = proto(DataType::Float, &[4]);
        t.data_location = Some(DataLocation::External as i32);
        let err = decode(&t).unwrap_err();
        assert!(matches!(err, ImportError::ExternalData { .. }));
        assert!(err.to_string().contains("external"), "{err}");
    }

    #[test]
    fn unsupported_type_is_named() {
        let mut t = proto(DataType::String, &[1]);
        t.string_data = vec![b"x".to_vec()];
        let err = decode(&t).unwrap_err();
        assert!(err.to_string().contains("STRING"), "{err}");
    }
}
