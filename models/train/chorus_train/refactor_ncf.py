"""Rewrites a shipped ncf.onnx into the factored graph `nets._ScoreOnly` now exports, from the
weights in the file itself (no retraining), and checks that both give the same scores.

    python -m chorus_train.refactor_ncf models/ncf.onnx

The manifest's sha256 for ncf.onnx has to be updated afterwards (the inputs and outputs are
unchanged). A full `scripts/models.sh` run exports the factored graph directly."""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from .nets import NeuMF, _ScoreOnly, export_onnx


def load_neumf(path: str) -> NeuMF:
    """A NeuMF whose scoring weights are those of the (unfactored) graph at `path`."""
    graph = onnx.load(path).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    matmuls = [n.input[1] for n in graph.node if n.op_type == "MatMul"]
    if len(matmuls) != 3 or "model.mlp.0.bias" not in weights:
        raise SystemExit(f"{path} is not the unfactored NCF graph (already factored?)")
    first, second, out = (torch.as_tensor(weights[m]).t().contiguous() for m in matmuls)
    k = first.shape[1] // 3
    model = NeuMF(1, k)  # the item table is not in the graph (items are inputs)
    with torch.no_grad():
        model.mlp[0].weight.copy_(first)
        model.mlp[0].bias.copy_(torch.as_tensor(weights["model.mlp.0.bias"]))
        model.mlp[2].weight.copy_(second)
        model.mlp[2].bias.copy_(torch.as_tensor(weights["model.mlp.2.bias"]))
        model.out.weight.copy_(out)
        model.out.bias.copy_(torch.as_tensor(weights["model.out.bias"]))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    args = parser.parse_args()
    model = load_neumf(args.path)
    k = model.items.weight.shape[1]
    rng = np.random.default_rng(0)
    user = rng.normal(0, 0.3, (7, k)).astype(np.float32)
    items = rng.normal(0, 0.3, (7, 50, k)).astype(np.float32)
    before = ort.InferenceSession(args.path).run(None, {"user": user, "items": items})[0]
    with tempfile.TemporaryDirectory() as tmp:
        factored = os.path.join(tmp, "ncf.onnx")
        export_onnx(_ScoreOnly(model), (torch.zeros(1, k), torch.zeros(1, 3, k)), factored,
                    ["user", "items"], ["score"],
                    {"user": {0: "batch"}, "items": {0: "batch", 1: "candidates"},
                     "score": {0: "batch", 1: "candidates"}})
        after = ort.InferenceSession(factored).run(None, {"user": user, "items": items})[0]
        reference = model.score_vectors(torch.as_tensor(user), torch.as_tensor(items)).detach().numpy()
        worst = float(np.abs(after - before).max())
        print(f"max |factored - shipped| = {worst:.2e}, vs torch {float(np.abs(after - reference).max()):.2e}"
              f" (scores up to {float(np.abs(before).max()):.1f})")
        if worst > 1e-4:
            raise SystemExit("the factored graph does not reproduce the shipped scores")
        os.replace(factored, args.path)
    print(f"wrote {args.path}")


if __name__ == "__main__":
    main()
