//! Building a model in memory: a [`Graph`] plus owned weight values in their logical
//! (row-major) shape. The tool's ONNX importer, zoo and graph passes work on it, tests and
//! fuzz seeds build small models with it; [`ModelBuilder::to_bytes`] packs it into a file.

use crate::error::FormatError;
use crate::graph::{Encoding, Graph, Layout, Node, Op, TensorId, TensorInfo, WeightId, WeightInfo};
use crate::infer::infer_node;
use crate::write::WriteOptions;

/// A graph under construction, with weight values owned in row-major logical order.
#[derive(Clone, Debug, Default)]
pub struct ModelBuilder {
    /// The graph (weight entries' layout/offset fields are filled in at write time).
    pub graph: Graph,
    /// One row-major vector per entry of `graph.weights`.
    pub weights: Vec<Vec<f32>>,
}

/// A node could not be added: its inputs and op disagree.
#[derive(Debug, thiserror::Error)]
#[error("node '{node}' ({op}): {reason}")]
pub struct BuildError {
    /// Node name.
    pub node: String,
    /// Op kind.
    pub op: &'static str,
    /// What is inconsistent.
    pub reason: String,
}

impl ModelBuilder {
    /// An empty model with the given name and producer string.
    pub fn new(name: &str, producer: &str) -> Self {
        let mut model = ModelBuilder::default();
        model.graph.metadata.name = name.to_string();
        model.graph.metadata.producer = producer.to_string();
        model
    }

    /// Declares a graph input.
    pub fn add_input(&mut self, name: &str, shape: &[u32]) -> TensorId {
        let id = self.add_tensor(name, shape.to_vec());
        self.graph.inputs.push(id);
        id
    }

    /// Adds a weight tensor with its row-major values.
    ///
    /// # Panics
    /// If `data.len()` does not match `shape` (a bug in the caller, not bad input).
    pub fn add_weight(&mut self, name: &str, shape: &[u32], data: Vec<f32>) -> WeightId {
        let numel: usize = shape.iter().map(|&d| d as usize).product();
        assert_eq!(numel, data.len(), "weight '{name}' shape {shape:?}");
        self.graph.weights.push(WeightInfo {
            name: name.to_string(),
            shape: shape.to_vec(),
            layout: Layout::RowMajor,
            encoding: Encoding::F32,
            offset: 0,
            nbytes: 0,
        });
        self.weights.push(data);
        (self.graph.weights.len() - 1) as WeightId
    }

    /// Adds a node whose output shape is inferred; its output tensor is named `name`.
    pub fn add_node(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[TensorId],
    ) -> Result<TensorId, BuildError> {
        self.add_node_with_shape(name, op, inputs, None)
    }

    /// Adds a node with an explicit output shape (needed for Reshape and ceil-mode pools),
    /// checked against shape inference.
    pub fn add_node_with_shape(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[TensorId],
        shape: Option<Vec<u32>>,
    ) -> Result<TensorId, BuildError> {
        let out = self.add_tensor(name, shape.unwrap_or_default());
        let node = Node {
            name: name.to_string(),
            op,
            inputs: inputs.to_vec(),
            outputs: vec![out],
        };
        match infer_node(&self.graph, &node) {
            Ok(shape) => {
                self.graph.tensors[out as usize].shape = shape;
                self.graph.nodes.push(node);
                Ok(out)
            }
            Err(reason) => {
                self.graph.tensors.pop();
                Err(BuildError {
                    node: name.to_string(),
                    op: node.op.kind_name(),
                    reason,
                })
            }
        }
    }

    /// Sets the graph outputs.
    pub fn set_outputs(&mut self, outputs: &[TensorId]) {
        self.graph.outputs = outputs.to_vec();
    }

    /// The tensor with this id.
    pub fn tensor(&self, id: TensorId) -> &TensorInfo {
        &self.graph.tensors[id as usize]
    }

    /// Shape of a tensor.
    pub fn shape(&self, id: TensorId) -> &[u32] {
        &self.graph.tensors[id as usize].shape
    }

    /// Indices of the nodes that read tensor `id`.
    pub fn consumers(&self, id: TensorId) -> Vec<usize> {
        (0..self.graph.nodes.len())
            .filter(|&n| self.graph.nodes[n].inputs.contains(&id))
            .collect()
    }

    /// Whether tensor `id` is a graph output.
    pub fn is_output(&self, id: TensorId) -> bool {
        self.graph.outputs.contains(&id)
    }

    /// Drops tensors no node or graph input/output refers to and weights no op reads,
    /// renumbering the rest (call after passes that remove nodes).
    pub fn compact(&mut self) {
        let g = &mut self.graph;
        let mut tensor_used = vec![false; g.tensors.len()];
        let mut weight_used = vec![false; g.weights.len()];
        for &t in g.inputs.iter().chain(&g.outputs) {
            tensor_used[t as usize] = true;
        }
        for node in &g.nodes {
            for &t in node.inputs.iter().chain(&node.outputs) {
                tensor_used[t as usize] = true;
            }
            for w in node.op.weight_ids() {
                weight_used[w as usize] = true;
            }
        }
        let tensor_map = renumber(&tensor_used);
        let weight_map = renumber(&weight_used);
        let t = |id: &mut TensorId| *id = tensor_map[*id as usize];
        g.inputs.iter_mut().for_each(t);
        g.outputs.iter_mut().for_each(t);
        for node in &mut g.nodes {
            node.inputs.iter_mut().for_each(t);
            node.outputs.iter_mut().for_each(t);
            remap_weights(&mut node.op, &weight_map);
        }
        g.tensors = keep(std::mem::take(&mut g.tensors), &tensor_used);
        g.weights = keep(std::mem::take(&mut g.weights), &weight_used);
        self.weights = keep(std::mem::take(&mut self.weights), &weight_used);
    }

    /// Packs the model into a Prunus file.
    pub fn to_bytes(&self, options: WriteOptions) -> Result<Vec<u8>, FormatError> {
        crate::write::write(&self.graph, &self.weights, options)
    }

    fn add_tensor(&mut self, name: &str, shape: Vec<u32>) -> TensorId {
        self.graph.tensors.push(TensorInfo {
            name: name.to_string(),
            shape,
        });
        (self.graph.tensors.len() - 1) as TensorId
    }
}

fn renumber(used: &[bool]) -> Vec<u32> {
    let mut next = 0;
    used.iter()
        .map(|&u| {
            let id = next;
            next += u as u32;
            id
        })
        .collect()
}

fn keep<T>(items: Vec<T>, used: &[bool]) -> Vec<T> {
    items
        .into_iter()
        .zip(used)
        .filter_map(|(item, &u)| u.then_some(item))
        .collect()
}

/// Rewrites the weight ids an op refers to through `map`.
pub fn remap_weights(op: &mut Op, map: &[u32]) {
    let m = |id: &mut WeightId| *id = map[*id as usize];
    match op {
        Op::Conv(c) => {
            m(&mut c.weight);
            c.bias.iter_mut().for_each(m);
        }
        Op::Gemm { weight, bias, .. } => {
            m(weight);
            bias.iter_mut().for_each(m);
        }
        Op::ScaleShift { scale, shift, .. } => {
            m(scale);
            m(shift);
        }
        _ => {}
    }
}
