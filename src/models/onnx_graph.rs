//! Just enough of the ONNX file format (protocol buffers, `onnx.proto3`) to read a graph's nodes
//! and its float initializers: what [`super::Perceptron`] needs to run a tiny model without ONNX
//! Runtime. Anything else in the file is skipped; malformed bytes are an error, never a panic.

use std::collections::HashMap;

/// One node of the graph: its operator and the names of its inputs and outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// A float initializer: its shape and values (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// The graph of an ONNX model: nodes in file order (ONNX requires topological order) and the
/// float initializers by name.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub initializers: HashMap<String, Initializer>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

// Field numbers in onnx.proto3.
const MODEL_GRAPH: u64 = 7;
const GRAPH_NODE: u64 = 1;
const GRAPH_INITIALIZER: u64 = 5;
const GRAPH_INPUT: u64 = 11;
const GRAPH_OUTPUT: u64 = 12;
const NODE_INPUT: u64 = 1;
const NODE_OUTPUT: u64 = 2;
const NODE_OP_TYPE: u64 = 4;
const VALUE_INFO_NAME: u64 = 1;
const TENSOR_DIMS: u64 = 1;
const TENSOR_DATA_TYPE: u64 = 2;
const TENSOR_FLOAT_DATA: u64 = 4;
const TENSOR_NAME: u64 = 8;
const TENSOR_RAW_DATA: u64 = 9;
/// `TensorProto.DataType.FLOAT`.
const FLOAT: u64 = 1;

/// Reads the graph of a serialized `ModelProto`.
pub fn read(bytes: &[u8]) -> Result<Graph, String> {
    let mut graph = None;
    for field in Fields(bytes) {
        let (number, value) = field?;
        if number == MODEL_GRAPH {
            graph = Some(read_graph(value.bytes()?)?);
        }
    }
    graph.ok_or_else(|| "the model has no graph".to_string())
}

fn read_graph(bytes: &[u8]) -> Result<Graph, String> {
    let mut graph = Graph::default();
    for field in Fields(bytes) {
        let (number, value) = field?;
        match number {
            GRAPH_NODE => graph.nodes.push(read_node(value.bytes()?)?),
            GRAPH_INITIALIZER => {
                if let Some((name, initializer)) = read_tensor(value.bytes()?)? {
                    graph.initializers.insert(name, initializer);
                }
            }
            GRAPH_INPUT | GRAPH_OUTPUT => {
                let name = value_info_name(value.bytes()?)?;
                if number == GRAPH_INPUT {
                    graph.inputs.push(name);
                } else {
                    graph.outputs.push(name);
                }
            }
            _ => {}
        }
    }
    Ok(graph)
}

fn read_node(bytes: &[u8]) -> Result<Node, String> {
    let mut node = Node::default();
    for field in Fields(bytes) {
        let (number, value) = field?;
        match number {
            NODE_INPUT => node.inputs.push(value.string()?),
            NODE_OUTPUT => node.outputs.push(value.string()?),
            NODE_OP_TYPE => node.op_type = value.string()?,
            _ => {}
        }
    }
    Ok(node)
}

fn value_info_name(bytes: &[u8]) -> Result<String, String> {
    for field in Fields(bytes) {
        let (number, value) = field?;
        if number == VALUE_INFO_NAME {
            return value.string();
        }
    }
    Err("a graph input or output has no name".to_string())
}

/// A float tensor by name; `None` for other element types (the caller's graph check says
/// whether it needed one).
fn read_tensor(bytes: &[u8]) -> Result<Option<(String, Initializer)>, String> {
    let mut name = String::new();
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut values = Vec::new();
    let mut raw: Option<&[u8]> = None;
    for field in Fields(bytes) {
        let (number, value) = field?;
        match (number, value) {
            (TENSOR_DIMS, Value::Varint(d)) => dims.push(d),
            (TENSOR_DIMS, Value::Bytes(packed)) => {
                let mut rest = packed;
                while !rest.is_empty() {
                    dims.push(varint(&mut rest)?);
                }
            }
            (TENSOR_DATA_TYPE, Value::Varint(t)) => data_type = t,
            (TENSOR_FLOAT_DATA, Value::Fixed32(bits)) => values.push(f32::from_bits(bits)),
            (TENSOR_FLOAT_DATA, Value::Bytes(packed)) => values.extend(floats(packed)?),
            (TENSOR_NAME, value) => name = value.string()?,
            (TENSOR_RAW_DATA, Value::Bytes(bytes)) => raw = Some(bytes),
            _ => {}
        }
    }
    if data_type != FLOAT {
        return Ok(None);
    }
    if let Some(raw) = raw {
        values = floats(raw)?;
    }
    let dims: Vec<usize> = dims
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format!("{name}: a dimension is too large")))
        .collect::<Result<_, _>>()?;
    let expected: usize = dims.iter().product();
    if values.len() != expected {
        return Err(format!(
            "{name}: {} values for shape {dims:?}",
            values.len()
        ));
    }
    Ok(Some((name, Initializer { dims, values })))
}

/// Little-endian `f32`s.
fn floats(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if bytes.len() % 4 != 0 {
        return Err("float data is not a whole number of floats".to_string());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// One field's value by wire type.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    /// Skipped (no field read here has this wire type).
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    fn bytes(self) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            other => Err(format!(
                "expected a length-delimited field, found {other:?}"
            )),
        }
    }

    fn string(self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
    }
}

/// The fields of one message, in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = next_field(&mut self.0);
        if field.is_err() {
            // Stop after the first error.
            self.0 = &[];
        }
        Some(field)
    }
}

fn next_field<'a>(bytes: &mut &'a [u8]) -> Result<(u64, Value<'a>), String> {
    let key = varint(bytes)?;
    let value = match key & 7 {
        0 => Value::Varint(varint(bytes)?),
        1 => {
            take(bytes, 8)?;
            Value::Fixed64
        }
        2 => {
            let len = usize::try_from(varint(bytes)?).map_err(|_| "a field is too long")?;
            Value::Bytes(take(bytes, len)?)
        }
        5 => Value::Fixed32(u32::from_le_bytes(
            take(bytes, 4)?.try_into().expect("4 bytes"),
        )),
        wire => return Err(format!("unsupported protobuf wire type {wire}")),
    };
    Ok((key >> 3, value))
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if bytes.len() < len {
        return Err("the file ends inside a field".to_string());
    }
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(head)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or("the file ends inside a number")?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a number is longer than ten bytes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(number: u64, wire: u64) -> Vec<u8> {
        encode_varint((number << 3) | wire)
    }

    fn encode_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(number: u64, body: &[u8]) -> Vec<u8> {
        let mut out = key(number, 2);
        out.extend(encode_varint(body.len() as u64));
        out.extend_from_slice(body);
        out
    }

    fn varint_field(number: u64, v: u64) -> Vec<u8> {
        let mut out = key(number, 0);
        out.extend(encode_varint(v));
        out
    }

    fn model(nodes: &[(&str, &[&str], &[&str])], tensors: &[Vec<u8>]) -> Vec<u8> {
        let mut graph = Vec::new();
        for (op, inputs, outputs) in nodes {
            let mut node = Vec::new();
            for i in *inputs {
                node.extend(bytes_field(NODE_INPUT, i.as_bytes()));
            }
            for o in *outputs {
                node.extend(bytes_field(NODE_OUTPUT, o.as_bytes()));
            }
            node.extend(bytes_field(NODE_OP_TYPE, op.as_bytes()));
            graph.extend(bytes_field(GRAPH_NODE, &node));
        }
        for t in tensors {
            graph.extend(bytes_field(GRAPH_INITIALIZER, t));
        }
        graph.extend(bytes_field(
            GRAPH_INPUT,
            &bytes_field(VALUE_INFO_NAME, b"x"),
        ));
        // An unknown field (ir_version, a varint) before the graph is skipped.
        let mut out = varint_field(1, 8);
        out.extend(bytes_field(MODEL_GRAPH, &graph));
        out
    }

    fn raw_tensor(name: &str, dims: &[u64], values: &[f32]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            t.extend(varint_field(TENSOR_DIMS, d));
        }
        t.extend(varint_field(TENSOR_DATA_TYPE, FLOAT));
        t.extend(bytes_field(TENSOR_NAME, name.as_bytes()));
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.extend(bytes_field(TENSOR_RAW_DATA, &raw));
        t
    }

    #[test]
    fn reads_nodes_inputs_and_float_initializers_in_both_encodings() {
        // float_data packed, dims packed.
        let mut packed = Vec::new();
        let dims: Vec<u8> = [2u64, 1].iter().flat_map(|&d| encode_varint(d)).collect();
        packed.extend(bytes_field(TENSOR_DIMS, &dims));
        packed.extend(varint_field(TENSOR_DATA_TYPE, FLOAT));
        packed.extend(bytes_field(TENSOR_NAME, b"b"));
        let data: Vec<u8> = [0.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        packed.extend(bytes_field(TENSOR_FLOAT_DATA, &data));
        let bytes = model(
            &[
                ("MatMul", &["x", "w"], &["y"]),
                ("Add", &["y", "b"], &["z"]),
            ],
            &[raw_tensor("w", &[1, 3], &[1.0, 2.0, 3.0]), packed],
        );
        let graph = read(&bytes).unwrap();
        assert_eq!(graph.inputs, vec!["x".to_string()]);
        assert_eq!(graph.nodes.len(), 2);
        assert_eq!(graph.nodes[0].op_type, "MatMul");
        assert_eq!(
            graph.nodes[1].inputs,
            vec!["y".to_string(), "b".to_string()]
        );
        assert_eq!(
            graph.initializers["w"],
            Initializer {
                dims: vec![1, 3],
                values: vec![1.0, 2.0, 3.0]
            }
        );
        assert_eq!(graph.initializers["b"].values, vec![0.5, -2.0]);
        assert_eq!(graph.initializers["b"].dims, vec![2, 1]);
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let bytes = model(
            &[("Relu", &["x"], &["y"])],
            &[raw_tensor("w", &[2], &[1.0, 2.0])],
        );
        // Every truncation of a valid file is refused or read without the cut part; none panics.
        for end in 0..bytes.len() {
            let _ = read(&bytes[..end]);
        }
        assert!(read(&bytes[..bytes.len() - 3]).is_err());
        assert!(read(&[0xff; 11]).is_err());
        assert_eq!(read(&[]).unwrap_err(), "the model has no graph");
        // A shape that does not match the values.
        let wrong = model(&[], &[raw_tensor("w", &[3], &[1.0, 2.0])]);
        assert!(read(&wrong).unwrap_err().contains("2 values for shape [3]"));
    }
}
