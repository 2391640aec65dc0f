"""Playlist continuation through the *shipped* ONNX artifacts, at several retrieval candidate
counts: how much ranking quality the server's `inference.candidates` setting trades for speed.

    PYTHONPATH=models/train .local/venv-train/bin/python -m chorus_train.serving_eval \
        --spotify ../shared/datasets/spotify-songs/spotify_songs.csv --models-dir models \
        --candidates 50 100 150 200 300

Same split, seeds and metrics as docs/QUALITY.md (spotify_eval); same candidates and features as
the server (pipeline.Served; half of each list from the item-item neighbours). Prints a markdown
table."""

from __future__ import annotations

import argparse
import os

import numpy as np
import onnxruntime
import torch

from . import pipeline, spotify_eval
from .data import load_spotify
from .item_item import ItemItem


class OnnxNcf:
    """`pipeline.Served` calls `ncf.score_vectors(user, items)`; this answers through ncf.onnx."""

    def __init__(self, path: str):
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def score_vectors(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        (score,) = self.session.run(["score"], {"user": user.numpy(), "items": items.numpy()})
        return torch.as_tensor(score)


class OnnxHybrid:
    def __init__(self, path: str):
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        (score,) = self.session.run(["score"], {"features": features.numpy()})
        return torch.as_tensor(score)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spotify", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--candidates", type=int, nargs="+", default=[50, 100, 150, 200, 300])
    args = ap.parse_args(argv)
    out = args.models_dir
    d = load_spotify(args.spotify)
    s = spotify_eval.split(d)
    ids = open(os.path.join(out, "item_ids.txt")).read().split()
    assert ids == list(d.track_ids), "item_ids.txt follows the dataset's track order"
    vectors = np.fromfile(os.path.join(out, "item_vectors.f32"), dtype="<f4").reshape(len(ids), -1)
    content = onnxruntime.InferenceSession(os.path.join(out, "content.onnx"), providers=["CPUExecutionProvider"])
    (emb,) = content.run(["embedding"], {"features": pipeline.content_inputs(d)})
    item_item = ItemItem.load(os.path.join(out, "item_neighbours.bin"), len(ids))
    served = pipeline.Served(OnnxNcf(os.path.join(out, "ncf.onnx")), vectors, emb, d.popularity,
                             d.year.astype(np.float32), item_item, OnnxHybrid(os.path.join(out, "hybrid.onnx")))
    print("| candidates | NDCG@20 | R-precision | Recall@50 | seen NDCG@20 | unseen NDCG@20 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for c in args.candidates:
        pipeline.CANDIDATES = c
        r = spotify_eval.evaluate(lambda seeds: served.scores(seeds, "hybrid"), s)
        print(f"| {c} | {r['ndcg@20']:.4f} | {r['r_precision']:.4f} | {r['recall@50']:.4f} | "
              f"{r['seen_ndcg@20']:.4f} | {r['unseen_ndcg@20']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
