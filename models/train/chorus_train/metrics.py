"""Ranking metrics. `recall_at_k` divides hits by the number of held-out items (capped at k, so a
user with more than k held-out items can still reach 1.0); `ndcg_at_k` uses binary relevance."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (rows: users)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def recall_at_k(ranked: np.ndarray, relevant: set[int], k: int) -> float:
    if not relevant:
        return float("nan")
    hits = sum(1 for i in ranked[:k] if i in relevant)
    return hits / min(k, len(relevant))


def ndcg_at_k(ranked: np.ndarray, relevant: set[int], k: int) -> float:
    if not relevant:
        return float("nan")
    dcg = sum(1.0 / np.log2(pos + 2) for pos, i in enumerate(ranked[:k]) if i in relevant)
    ideal = sum(1.0 / np.log2(pos + 2) for pos in range(min(k, len(relevant))))
    return dcg / ideal


def r_precision(ranked: np.ndarray, relevant: set[int]) -> float:
    r = len(relevant)
    if r == 0:
        return float("nan")
    return sum(1 for i in ranked[:r] if i in relevant) / r
