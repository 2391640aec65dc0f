"""spotify-songs split and playlist-continuation evaluation.

Split (seeded, fixed): 20% of playlists are held out entirely (their ids go into the manifest);
of every other playlist, 20% of its tracks are held out as validation (the hybrid ranker trains
on those); the rest is training data. No model ever trains on held-out playlists.

Continuation: each held-out playlist is seeded with its first 20–50% of tracks (a seeded fraction
per playlist, file order) and the rest are to be predicted, ranking every catalog track except the
seeds. R-precision, NDCG@20 and Recall@50 are reported over all targets and separately for
targets seen in training and unseen ones (cold start)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import SpotifyData
from .metrics import ndcg_at_k, r_precision, recall_at_k, top_k

SEED = 20200121


@dataclass
class SpotifySplit:
    train: sp.csr_matrix                 # playlists x tracks (held-out playlists have empty rows)
    validation: list[set[int]]           # per playlist, held-out tracks of training playlists
    heldout_playlists: np.ndarray        # playlist indices held out entirely
    seeds: dict[int, np.ndarray]         # held-out playlist -> seed tracks
    targets: dict[int, set[int]]         # held-out playlist -> tracks to predict
    seen: np.ndarray                     # bool per track: appears in train


def split(data: SpotifyData, seed: int = SEED) -> SpotifySplit:
    rng = np.random.default_rng(seed)
    n_playlists = len(data.playlists)
    heldout = np.sort(rng.permutation(n_playlists)[: int(round(0.2 * n_playlists))])
    heldout_set = set(heldout.tolist())
    rows, cols = [], []
    validation: list[set[int]] = [set() for _ in range(n_playlists)]
    for p, tracks in enumerate(data.playlists):
        if p in heldout_set:
            continue
        order = rng.permutation(len(tracks))
        n_val = int(round(0.2 * len(tracks)))
        validation[p] = set(tracks[order[:n_val]].tolist())
        kept = tracks[order[n_val:]]
        rows += [p] * len(kept)
        cols += kept.tolist()
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_playlists, data.n_tracks))
    seeds, targets = {}, {}
    for p in heldout:
        tracks = data.playlists[p]
        fraction = rng.uniform(0.2, 0.5)
        n_seed = max(1, int(round(fraction * len(tracks))))
        seeds[int(p)] = tracks[:n_seed]
        targets[int(p)] = set(tracks[n_seed:].tolist())
    seen = np.asarray(train.sum(axis=0)).ravel() > 0
    return SpotifySplit(train, validation, heldout, seeds, targets, seen)


def evaluate(score_fn, s: SpotifySplit) -> dict[str, float]:
    """`score_fn(seed_tracks) -> scores over all tracks`."""
    out: dict[str, list[float]] = {k: [] for k in (
        "r_precision", "ndcg@20", "recall@50",
        "seen_r_precision", "seen_ndcg@20", "seen_recall@50",
        "unseen_r_precision", "unseen_ndcg@20", "unseen_recall@50",
    )}
    for p, seed_tracks in s.seeds.items():
        targets = s.targets[p]
        if not targets:
            continue
        scores = np.asarray(score_fn(seed_tracks), dtype=np.float64).copy()
        scores[seed_tracks] = -np.inf
        ranked = top_k(scores[None, :], max(50, len(targets)))[0]
        for prefix, rel in (("", targets),
                            ("seen_", {t for t in targets if s.seen[t]}),
                            ("unseen_", {t for t in targets if not s.seen[t]})):
            if not rel:
                continue
            out[prefix + "r_precision"].append(r_precision(ranked, rel))
            out[prefix + "ndcg@20"].append(ndcg_at_k(ranked, rel, 20))
            out[prefix + "recall@50"].append(recall_at_k(ranked, rel, 50))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()} | {"playlists": len(s.seeds)}
