"""lastfm-2k offline evaluation: per-user 80/20 split of each user's artists (seeded), full
ranking over every artist (training items excluded), Recall@20 and NDCG@20; plus the NCF paper's
sampled protocol for comparison: one held-out artist per user ranked among 99 sampled artists the
user never listened to, HR@10 and NDCG@10."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .metrics import ndcg_at_k, recall_at_k, top_k


@dataclass
class Split:
    train: sp.csr_matrix
    test: list[set[int]]          # held-out items per user
    sampled: list[np.ndarray]     # per user: [held-out item, 99 negatives]


def split_per_user(matrix: sp.csr_matrix, test_fraction=0.2, negatives=99, seed=2011) -> Split:
    rng = np.random.default_rng(seed)
    n_users, n_items = matrix.shape
    rows, cols, vals = [], [], []
    test: list[set[int]] = []
    sampled: list[np.ndarray] = []
    for u in range(n_users):
        start, end = matrix.indptr[u], matrix.indptr[u + 1]
        items, weights = matrix.indices[start:end], matrix.data[start:end]
        order = rng.permutation(len(items))
        n_test = int(round(len(items) * test_fraction)) if len(items) >= 5 else 0
        held, kept = order[:n_test], order[n_test:]
        rows += [u] * len(kept)
        cols += list(items[kept])
        vals += list(weights[kept])
        test.append(set(int(i) for i in items[held]))
        if n_test:
            seen = set(int(i) for i in items)
            negs = []
            while len(negs) < negatives:
                j = int(rng.integers(n_items))
                if j not in seen and j not in negs:
                    negs.append(j)
            sampled.append(np.asarray([int(items[held[0]])] + negs))
        else:
            sampled.append(np.empty(0, dtype=np.int64))
    train = sp.csr_matrix((vals, (rows, cols)), shape=matrix.shape, dtype=np.float32)
    return Split(train, test, sampled)


def evaluate(model, split: Split, k_full=20, k_sampled=10, batch=256) -> dict[str, float]:
    users = np.asarray([u for u, t in enumerate(split.test) if t])
    recall, ndcg, hr_s, ndcg_s = [], [], [], []
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        scores = model.score(chunk).astype(np.float64)
        sampled_scores = [scores[r, split.sampled[u]].copy() for r, u in enumerate(chunk)]
        seen = split.train[chunk]
        scores[seen.nonzero()] = -np.inf
        ranked = top_k(scores, k_full)
        for r, u in enumerate(chunk):
            recall.append(recall_at_k(ranked[r], split.test[u], k_full))
            ndcg.append(ndcg_at_k(ranked[r], split.test[u], k_full))
            s = sampled_scores[r]
            # Rank of the held-out item (index 0) among the 100; ties count against it.
            rank = int((s[1:] >= s[0]).sum())
            hr_s.append(1.0 if rank < k_sampled else 0.0)
            ndcg_s.append(1.0 / np.log2(rank + 2) if rank < k_sampled else 0.0)
    return {
        "users": len(users),
        "recall@20": float(np.mean(recall)),
        "ndcg@20": float(np.mean(ndcg)),
        "hr@10_sampled": float(np.mean(hr_s)),
        "ndcg@10_sampled": float(np.mean(ndcg_s)),
    }
