//! A model of one hidden layer — standardise, `W₁`, bias, ReLU, `W₂`, bias — run in process
//! from the weights in its ONNX file. `hybrid.onnx` is such a model (8 features → 32 → 1): a row
//! is ~300 multiply-adds, so ONNX Runtime's fixed cost per call (tensors, nine kernels, copies)
//! was most of its time; here it is a loop. The graph is checked node by node, so a retrained
//! model of another shape is refused (and the caller runs it through ONNX Runtime instead).

use std::path::Path;

use multiversion::multiversion;

use super::onnx_graph::{self, Graph, Node};

/// Hidden units per step: eight `f32` lanes, one AVX register.
const LANES: usize = 8;
type Lanes = [f32; LANES];

/// The weights, hidden units in groups of [`LANES`] (padded with units of zero weight, which
/// add nothing: ReLU(0) · 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Perceptron {
    inputs: usize,
    mean: Vec<f32>,
    /// `1 / std`.
    scale: Vec<f32>,
    /// `[groups][inputs]`: each group's weights for every input, one after another.
    w1: Vec<Lanes>,
    /// `[groups]`.
    b1: Vec<Lanes>,
    w2: Vec<Lanes>,
    b2: f32,
}

/// The operators in order (`Constant`s, which only feed `Squeeze`'s axes, aside).
const SHAPE: [&str; 8] = [
    "Sub", "Div", "MatMul", "Add", "Relu", "MatMul", "Add", "Squeeze",
];

impl Perceptron {
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Self::from_graph(&onnx_graph::read(&bytes)?)
    }

    pub fn from_graph(graph: &Graph) -> Result<Self, String> {
        let constants: Vec<&str> = graph
            .nodes
            .iter()
            .filter(|n| n.op_type == "Constant")
            .flat_map(|n| n.outputs.iter().map(String::as_str))
            .collect();
        let nodes: Vec<&Node> = graph
            .nodes
            .iter()
            .filter(|n| n.op_type != "Constant")
            .collect();
        let ops: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
        if ops != SHAPE {
            return Err(format!("the graph is {ops:?}, not {SHAPE:?}"));
        }
        let [input] = graph.inputs.as_slice() else {
            return Err(format!("{} graph inputs, not one", graph.inputs.len()));
        };
        // Each node takes the previous node's output and, except ReLU and Squeeze, one weight.
        let mut flowing = input.as_str();
        let mut weights = Vec::new();
        for node in &nodes {
            let mut data = None;
            for name in &node.inputs {
                if let Some(initializer) = graph.initializers.get(name) {
                    weights.push(initializer);
                } else if name == flowing && data.is_none() {
                    data = Some(name);
                } else if !constants.contains(&name.as_str()) {
                    return Err(format!(
                        "{} takes {name}, which is not {flowing}",
                        node.op_type
                    ));
                }
            }
            if data.is_none() {
                return Err(format!("{} does not take {flowing}", node.op_type));
            }
            // x − mean, x / std and x · W: the data comes first where order matters.
            let ordered = matches!(node.op_type.as_str(), "Sub" | "Div" | "MatMul");
            if ordered && node.inputs.first().map(String::as_str) != Some(flowing) {
                return Err(format!("{} takes {flowing} second", node.op_type));
            }
            let [output] = node.outputs.as_slice() else {
                return Err(format!(
                    "{} has {} outputs",
                    node.op_type,
                    node.outputs.len()
                ));
            };
            flowing = output;
        }
        let [mean, std, w1, b1, w2, b2] = weights.as_slice() else {
            return Err(format!("{} weights, not six", weights.len()));
        };
        let inputs = mean.values.len();
        let hidden = b1.values.len();
        let shapes_fit = inputs > 0
            && hidden > 0
            && mean.dims == [inputs]
            && std.dims == [inputs]
            && w1.dims == [inputs, hidden]
            && b1.dims == [hidden]
            && w2.dims == [hidden, 1]
            && b2.values.len() == 1;
        if !shapes_fit {
            return Err(format!(
                "weight shapes {:?} do not chain",
                [&mean.dims, &std.dims, &w1.dims, &b1.dims, &w2.dims, &b2.dims]
            ));
        }
        let lanes = |values: &[f32]| -> Vec<Lanes> {
            values
                .chunks(LANES)
                .map(|chunk| {
                    let mut lanes = [0f32; LANES];
                    lanes[..chunk.len()].copy_from_slice(chunk);
                    lanes
                })
                .collect()
        };
        // W₁'s rows (one per input) cut into groups of units, then regrouped group by group.
        let w1_rows: Vec<Vec<Lanes>> = w1.values.chunks(hidden).map(lanes).collect();
        let groups = hidden.div_ceil(LANES);
        Ok(Self {
            inputs,
            mean: mean.values.clone(),
            scale: std.values.iter().map(|s| 1.0 / s).collect(),
            w1: (0..groups)
                .flat_map(|g| w1_rows.iter().map(move |row| row[g]))
                .collect(),
            b1: lanes(&b1.values),
            w2: lanes(&w2.values),
            b2: b2.values[0],
        })
    }

    /// How many features a row has.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// One score per row of `rows` (`inputs()` features each).
    pub fn score(&self, rows: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() / self.inputs.max(1));
        score_rows(self, rows, &mut out);
        out
    }
}

/// Compiled for AVX2 as well as the baseline (chosen at run time), like retrieval's kernel.
/// Each group of hidden units is summed in one register over the row's features, then goes
/// through ReLU into the output sum: nothing is stored between the two layers.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+avx", "aarch64+neon"))]
fn score_rows(p: &Perceptron, rows: &[f32], out: &mut Vec<f32>) {
    let mut z = vec![0f32; p.inputs];
    for row in rows.chunks_exact(p.inputs) {
        for (((z, &x), &mean), &scale) in z.iter_mut().zip(row).zip(&p.mean).zip(&p.scale) {
            *z = (x - mean) * scale;
        }
        let mut sum = [0f32; LANES];
        for ((&bias, w1), w2) in p.b1.iter().zip(p.w1.chunks_exact(p.inputs)).zip(&p.w2) {
            let mut unit = bias;
            for (&z, w) in z.iter().zip(w1) {
                for l in 0..LANES {
                    unit[l] += z * w[l];
                }
            }
            for l in 0..LANES {
                sum[l] += unit[l].max(0.0) * w2[l];
            }
        }
        out.push(p.b2 + sum.iter().sum::<f32>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::onnx_graph::Initializer;

    fn node(op: &str, inputs: &[&str], output: &str) -> Node {
        Node {
            op_type: op.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_string()],
        }
    }

    fn tensor(dims: &[usize], values: &[f32]) -> Initializer {
        Initializer {
            dims: dims.to_vec(),
            values: values.to_vec(),
        }
    }

    /// 2 inputs → 2 hidden → 1, in the layout `torch.onnx.export` writes.
    fn graph() -> Graph {
        let mut g = Graph {
            nodes: vec![
                node("Sub", &["x", "mean"], "s"),
                node("Div", &["s", "std"], "d"),
                node("MatMul", &["d", "w1"], "m"),
                node("Add", &["b1", "m"], "a"),
                node("Relu", &["a"], "r"),
                node("MatMul", &["r", "w2"], "m2"),
                node("Add", &["b2", "m2"], "a2"),
                node("Constant", &[], "axis"),
                node("Squeeze", &["a2", "axis"], "score"),
            ],
            inputs: vec!["x".to_string()],
            outputs: vec!["score".to_string()],
            ..Graph::default()
        };
        for (name, t) in [
            ("mean", tensor(&[2], &[1.0, 0.0])),
            ("std", tensor(&[2], &[2.0, 1.0])),
            ("w1", tensor(&[2, 2], &[1.0, -1.0, 0.5, 2.0])),
            ("b1", tensor(&[2], &[0.0, 0.25])),
            ("w2", tensor(&[2, 1], &[3.0, -1.0])),
            ("b2", tensor(&[1], &[0.5])),
        ] {
            g.initializers.insert(name.to_string(), t);
        }
        g
    }

    #[test]
    fn scores_as_the_graph_computes() {
        let p = Perceptron::from_graph(&graph()).unwrap();
        assert_eq!(p.inputs(), 2);
        // Row (3, 1): z = (1, 1); hidden = (0 + 1 + 0.5, 0.25 - 1 + 2) = (1.5, 1.25);
        // score = 0.5 + 3 · 1.5 - 1.25 = 3.75. Row (1, -1): z = (0, -1); hidden = (-0.5, -1.75)
        // → ReLU (0, 0); score = 0.5.
        assert_eq!(p.score(&[3.0, 1.0, 1.0, -1.0]), vec![3.75, 0.5]);
    }

    /// Hidden layers that span several groups of lanes, the last one partial, score as the
    /// plain formula does.
    #[test]
    fn wide_hidden_layers_score_as_the_formula() {
        let (inputs, hidden) = (3, 19);
        let value = |i: usize| ((i * 37 % 23) as f32 - 11.0) / 7.0;
        let mut g = graph();
        let weights =
            |n: usize, offset: usize| (0..n).map(|i| value(i + offset)).collect::<Vec<_>>();
        let (mean, std) = (weights(inputs, 1), vec![0.5, 2.0, 1.5]);
        let (w1, b1, w2) = (
            weights(inputs * hidden, 5),
            weights(hidden, 90),
            weights(hidden, 200),
        );
        for (name, t) in [
            ("mean", tensor(&[inputs], &mean)),
            ("std", tensor(&[inputs], &std)),
            ("w1", tensor(&[inputs, hidden], &w1)),
            ("b1", tensor(&[hidden], &b1)),
            ("w2", tensor(&[hidden, 1], &w2)),
            ("b2", tensor(&[1], &[0.125])),
        ] {
            g.initializers.insert(name.to_string(), t);
        }
        let p = Perceptron::from_graph(&g).unwrap();
        let rows = weights(inputs * 40, 300);
        let expected: Vec<f32> = rows
            .chunks(inputs)
            .map(|x| {
                let z: Vec<f32> = (0..inputs).map(|f| (x[f] - mean[f]) / std[f]).collect();
                0.125
                    + (0..hidden)
                        .map(|h| {
                            let a =
                                b1[h] + (0..inputs).map(|f| z[f] * w1[f * hidden + h]).sum::<f32>();
                            a.max(0.0) * w2[h]
                        })
                        .sum::<f32>()
            })
            .collect();
        for (a, e) in p.score(&rows).iter().zip(&expected) {
            assert!((a - e).abs() <= 1e-5 * (1.0 + e.abs()), "{a} vs {e}");
        }
    }

    #[test]
    fn graphs_of_another_shape_are_refused() {
        let mut g = graph();
        g.nodes.remove(4);
        assert!(Perceptron::from_graph(&g)
            .unwrap_err()
            .contains("not [\"Sub\""));
        let mut g = graph();
        g.nodes[2].inputs[0] = "x".to_string();
        assert!(Perceptron::from_graph(&g).unwrap_err().contains("MatMul"));
        let mut g = graph();
        g.initializers
            .insert("w2".to_string(), tensor(&[3, 1], &[1.0, 2.0, 3.0]));
        assert!(Perceptron::from_graph(&g)
            .unwrap_err()
            .contains("do not chain"));
        let mut g = graph();
        g.nodes[0].inputs.reverse();
        assert!(Perceptron::from_graph(&g)
            .unwrap_err()
            .contains("Sub takes x second"));
        let mut g = graph();
        g.initializers.remove("b2");
        assert!(Perceptron::from_graph(&g).is_err());
    }
}
