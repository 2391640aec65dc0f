"""Sparse item-item neighbours: each item's strongest positive EASE weights, the server's second
candidate source beside the 64-d dot product (which caps lastfm-2k Recall@20 near 0.24, see
models/train/experiments/README.md).

A listener with history items h and weights x_h scores item j as sum_h x_h * B[h, j] over the
kept neighbours of each h. Items EASE left out (fewer than `min_users` training users) have no
neighbours and receive no item-item score.

File layout (`item_neighbours.bin`, little-endian): `indptr` as uint32[count + 1], then
`indices` as uint32[nnz], then `weights` as float32[nnz], with nnz = indptr[count]; row h lists
the neighbours of item h, strongest first."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .ease import EASE


class ItemItem:
    def __init__(self, neighbours: sp.csr_matrix):
        """`neighbours`: rows of B, each row's entries strongest first (the saved order)."""
        self.b = neighbours

    @classmethod
    def from_ease(cls, ease: EASE, keep: int = 100) -> "ItemItem":
        """The `keep` largest positive weights of each row of the fitted EASE matrix."""
        n = ease.n
        rows, cols, vals = [], [], []
        for r, item in enumerate(ease.keep):
            w = ease.b[r]
            top = np.argpartition(-w, min(keep, len(w) - 1))[:keep]
            top = top[w[top] > 0]
            top = top[np.argsort(-w[top], kind="stable")]
            rows.append(np.full(len(top), item))
            cols.append(ease.keep[top])
            vals.append(w[top])
        rows, cols, vals = (np.concatenate(a) if a else np.empty(0) for a in (rows, cols, vals))
        # Keep each row's strongest-first order: build the CSR arrays directly, not via COO.
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows.astype(np.int64), minlength=n)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(sp.csr_matrix((vals[order].astype(np.float32), cols[order].astype(np.int64), indptr),
                                 shape=(n, n)))

    def score(self, seeds: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Dense item-item scores for one listener (0 where no history item points)."""
        w = np.ones(len(seeds), dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
        return np.asarray(self.b[seeds].T @ w).ravel()

    def score_users(self, x: sp.csr_matrix) -> np.ndarray:
        """Dense scores for many listeners at once: rows of `x` hold the history weights."""
        return np.asarray((x @ self.b).todense())

    @property
    def nnz(self) -> int:
        return int(self.b.nnz)

    def save(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.b.indptr.astype("<u4").tobytes())
            f.write(self.b.indices.astype("<u4").tobytes())
            f.write(self.b.data.astype("<f4").tobytes())

    @classmethod
    def load(cls, path: str, count: int) -> "ItemItem":
        raw = open(path, "rb").read()
        indptr = np.frombuffer(raw, "<u4", count + 1).astype(np.int64)
        nnz = int(indptr[-1])
        off = 4 * (count + 1)
        indices = np.frombuffer(raw, "<u4", nnz, off).astype(np.int64)
        data = np.frombuffer(raw, "<f4", nnz, off + 4 * nnz)
        if len(raw) != off + 8 * nnz:
            raise ValueError(f"{path}: {len(raw)} bytes, expected {off + 8 * nnz}")
        return cls(sp.csr_matrix((data.copy(), indices, indptr), shape=(count, count)))


def union_candidates(primary: np.ndarray, dot: np.ndarray, total: int, from_primary: int) -> np.ndarray:
    """`total` candidate rows: up to `from_primary` with the best positive item-item scores
    (`primary`, already -inf where excluded), then the best dot-product scores (`dot`, likewise
    masked) that are not taken yet. The server builds its candidate lists the same way."""
    positive = np.flatnonzero(primary > 0)
    if len(positive) > from_primary:
        positive = positive[np.argpartition(-primary[positive], from_primary)[:from_primary]]
    chosen = positive[np.argsort(-primary[positive], kind="stable")]
    rest = dot.copy()
    rest[chosen] = -np.inf
    need = total - len(chosen)
    fill = np.argpartition(-rest, need)[:need]
    fill = fill[np.argsort(-rest[fill], kind="stable")]
    return np.concatenate([chosen, fill])
