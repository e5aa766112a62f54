//! Typed access to a node's attributes, with errors that name the node, op and attribute.

use super::ImportError;
use super::proto::attribute_proto::AttributeType;
use super::proto::{AttributeProto, NodeProto, TensorProto};

/// A node's identity for error messages plus its attributes.
#[derive(Clone, Copy, Debug)]
pub struct NodeRef<'a> {
    /// Node name (or a generated label when the model left it empty).
    pub name: &'a str,
    /// ONNX op type.
    pub op: &'a str,
    /// The node itself.
    pub proto: &'a NodeProto,
}

fn kind(a: &AttributeProto) -> Option<AttributeType> {
    a.r#type.and_then(|t| AttributeType::try_from(t).ok())
}

impl<'a> NodeRef<'a> {
    fn find(&self, name: &str) -> Option<&'a AttributeProto> {
        self.proto
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// An error for an attribute of the wrong type.
    fn wrong_type(&self, attribute: &str, expected: &str) -> ImportError {
        ImportError::InvalidAttribute {
            node: self.name.to_string(),
            op: self.op.to_string(),
            attribute: attribute.to_string(),
            reason: format!("expected {expected}"),
        }
    }

    /// An error for a well-formed attribute value Prunus does not support.
    pub fn unsupported(&self, attribute: &str, value: impl std::fmt::Debug) -> ImportError {
        ImportError::UnsupportedAttribute {
            node: self.name.to_string(),
            op: self.op.to_string(),
            attribute: attribute.to_string(),
            value: format!("{value:?}"),
        }
    }

    /// An error about this node that is not about one attribute.
    pub fn error(&self, reason: impl Into<String>) -> ImportError {
        ImportError::Node {
            node: self.name.to_string(),
            op: self.op.to_string(),
            reason: reason.into(),
        }
    }

    /// An integer attribute, if present.
    pub fn int_opt(&self, name: &str) -> Result<Option<i64>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), Some(AttributeType::Int) | None) && a.i.is_some() => {
                Ok(a.i)
            }
            Some(_) => Err(self.wrong_type(name, "an INT")),
        }
    }

    /// An integer attribute with a default.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    /// A float attribute, if present.
    pub fn float_opt(&self, name: &str) -> Result<Option<f32>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), Some(AttributeType::Float) | None) && a.f.is_some() => {
                Ok(a.f)
            }
            Some(_) => Err(self.wrong_type(name, "a FLOAT")),
        }
    }

    /// A float attribute with a default.
    pub fn float(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        Ok(self.float_opt(name)?.unwrap_or(default))
    }

    /// An integer-list attribute, if present.
    pub fn ints_opt(&self, name: &str) -> Result<Option<&'a [i64]>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), Some(AttributeType::Ints)) => Ok(Some(&a.ints)),
            Some(a) if kind(a).is_none() && a.i.is_none() => Ok(Some(&a.ints)),
            Some(_) => Err(self.wrong_type(name, "INTS")),
        }
    }

    /// A float-list attribute, if present.
    pub fn floats_opt(&self, name: &str) -> Result<Option<&'a [f32]>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), Some(AttributeType::Floats)) => Ok(Some(&a.floats)),
            Some(a) if kind(a).is_none() && a.f.is_none() => Ok(Some(&a.floats)),
            Some(_) => Err(self.wrong_type(name, "FLOATS")),
        }
    }

    /// A string attribute (UTF-8), if present.
    pub fn string_opt(&self, name: &str) -> Result<Option<String>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), Some(AttributeType::String) | None) => match &a.s {
                Some(s) => String::from_utf8(s.clone())
                    .map(Some)
                    .map_err(|_| self.wrong_type(name, "a UTF-8 STRING")),
                None => Err(self.wrong_type(name, "a STRING")),
            },
            Some(_) => Err(self.wrong_type(name, "a STRING")),
        }
    }

    /// A tensor attribute, if present.
    pub fn tensor_opt(&self, name: &str) -> Result<Option<&'a TensorProto>, ImportError> {
        match self.find(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), Some(AttributeType::Tensor) | None) && a.t.is_some() => {
                Ok(a.t.as_ref())
            }
            Some(_) => Err(self.wrong_type(name, "a TENSOR")),
        }
    }

    /// Names of the attributes present (for "unsupported attribute" checks).
    pub fn names(&self) -> impl Iterator<Item = &'a str> {
        self.proto
            .attribute
            .iter()
            .filter_map(|a| a.name.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, t: AttributeType) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(t as i32),
            ..Default::default()
        }
    }

    #[test]
    fn wrong_attribute_type_names_node_and_attribute() {
        let mut a = attr("group", AttributeType::Float);
        a.f = Some(2.0);
        let node = NodeProto {
            attribute: vec![a],
            ..Default::default()
        };
        let r = NodeRef {
            name: "conv1",
            op: "Conv",
            proto: &node,
        };
        let err = r.int("group", 1).unwrap_err().to_string();
        assert!(
            err.contains("conv1") && err.contains("Conv") && err.contains("group"),
            "{err}"
        );
        assert_eq!(r.float("group", 0.0).unwrap(), 2.0);
        assert_eq!(r.float("alpha", 0.25).unwrap(), 0.25);
    }

    #[test]
    fn lists_and_strings() {
        let mut a = attr("pads", AttributeType::Ints);
        a.ints = vec![1, 2, 3, 4];
        let mut s = attr("auto_pad", AttributeType::String);
        s.s = Some(b"SAME_UPPER".to_vec());
        let node = NodeProto {
            attribute: vec![a, s],
            ..Default::default()
        };
        let r = NodeRef {
            name: "n",
            op: "Conv",
            proto: &node,
        };
        assert_eq!(r.ints_opt("pads").unwrap(), Some(&[1i64, 2, 3, 4][..]));
        assert_eq!(
            r.string_opt("auto_pad").unwrap().as_deref(),
            Some("SAME_UPPER")
        );
        assert!(r.ints_opt("auto_pad").is_err());
        assert_eq!(r.names().count(), 2);
    }
}
