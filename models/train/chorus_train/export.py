"""ONNX assembly beyond `torch.onnx.export`: the content model's genre output averages the
PyTorch genre network with a gradient-boosted tree ensemble (scikit-learn, converted by
skl2onnx), inside one graph, so the server runs a single model."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

MLP_GENRE = "genre_mlp_probabilities"
GENRE = "genre_probabilities"


def attach_trees(torch_path: str, trees, n_features: int, out_path: str, opset: int = 17) -> None:
    base = onnx.load(torch_path)
    forest = to_onnx(trees, initial_types=[("features", FloatTensorType([None, n_features]))],
                     options={id(trees): {"zipmap": False}}, target_opset={"": opset, "ai.onnx.ml": 3})
    prefix = "trees_"
    rename = lambda name: name if name in ("features", "") else prefix + name  # noqa: E731
    for node in forest.graph.node:
        node.name = prefix + node.name
        node.input[:] = [rename(i) for i in node.input]
        node.output[:] = [rename(o) for o in node.output]
    for init in forest.graph.initializer:
        init.name = rename(init.name)
    probabilities = rename(forest.graph.output[1].name)
    base.graph.node.extend(forest.graph.node)
    base.graph.initializer.extend(forest.graph.initializer)
    base.graph.initializer.append(numpy_helper.from_array(np.array(0.5, dtype=np.float32), "genre_half"))
    base.graph.node.extend([
        helper.make_node("Add", [MLP_GENRE, probabilities], ["genre_sum"], name="genre_average_add"),
        helper.make_node("Mul", ["genre_sum", "genre_half"], [GENRE], name="genre_average_mul"),
    ])
    outputs = []
    for out in base.graph.output:
        if out.name == MLP_GENRE:
            dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
            outputs.append(helper.make_tensor_value_info(GENRE, TensorProto.FLOAT, dims))
        else:
            outputs.append(out)
    del base.graph.output[:]
    base.graph.output.extend(outputs)
    if not any(o.domain == "ai.onnx.ml" for o in base.opset_import):
        base.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    onnx.checker.check_model(base)
    onnx.save(base, out_path)
