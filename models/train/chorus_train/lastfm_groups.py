"""The group benchmark on lastfm-2k (docs/QUALITY.md, "Groups on lastfm-2k"): synthetic groups of
test users, as in the group-recommendation literature, ranked by the lastfm stack the way the
server ranks a room (`src/inference/group.rs`, `src/aggregate.rs`), each member scored on their
own held-out artists.

- Members: lastfm test users (80/20 split, seed 2011). Groups of 2, 3, 5 and 8: random; similar
  (a random user and their nearest neighbours by iALS user-vector cosine); divergent (a random
  user, then greedily the user least similar to everyone already in, among 300 drawn at random).
- The room's pool, as served: every member's own best candidates from the served hybrid (an
  equal share of 100, at least 8), filled up to 100 by the members' mean dot product; every
  member's played artists excluded.
- Utilities: each member's hybrid ranker score on the pool through Platt scaling fitted to the
  ranker's scores on the inner split it was trained on (the server fits its scaling likewise to
  the ranker's scores; see the Groups section).
- Methods: the four served strategies (the same rules as `aggregate.rs`), popularity (most played
  artists nobody in the group played), round-robin of the members' own hybrid lists.
"""

from __future__ import annotations

import numpy as np
import torch

from .metrics import ndcg_at_k, recall_at_k

STRATEGIES = ("average", "least_misery", "most_pleasure", "fair")
FAIRNESS_EPSILON = 1e-3
POOL = 100
LIST = 20
SIZES = (2, 3, 5, 8)


def platt(scores: np.ndarray, labels: np.ndarray, iterations=50) -> tuple[float, float]:
    """Logistic regression of the labels on the scores (Newton's method): p = σ(a·s + b)."""
    x = np.stack([scores.astype(np.float64), np.ones(len(scores))], axis=1)
    y = labels.astype(np.float64)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y)
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def select(strategy: str, u: np.ndarray, k: int) -> list[int]:
    """`aggregate::select` of the server: members × candidates utilities → k picks in order;
    ties to the lower candidate index."""
    n = u.shape[1]
    k = min(k, n)
    if strategy != "fair":
        score = {"average": u.mean(axis=0), "least_misery": u.min(axis=0),
                 "most_pleasure": u.max(axis=0)}[strategy]
        return list(np.lexsort((np.arange(n), -score))[:k])
    ideal = -np.sort(-u, axis=1)[:, :k].sum(axis=1)
    got = np.zeros(u.shape[0])
    taken = np.zeros(n, dtype=bool)
    picks = []
    for _ in range(k):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ideal[:, None] > 0, np.clip((got[:, None] + u) / ideal[:, None], 0, 1), 1.0)
        welfare = np.log(FAIRNESS_EPSILON + ratio).sum(axis=0)
        welfare[taken] = -np.inf
        i = int(np.argmax(welfare))
        taken[i] = True
        got += u[:, i]
        picks.append(i)
    return picks


def make_groups(kind: str, size: int, count: int, vectors: np.ndarray, rng) -> list[list[int]]:
    """Indices into `vectors` (one row per candidate member)."""
    unit = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9)
    out = []
    for _ in range(count):
        first = int(rng.integers(len(unit)))
        if kind == "random":
            rest = [int(i) for i in rng.choice(np.delete(np.arange(len(unit)), first), size - 1, replace=False)]
        elif kind == "similar":
            sim = unit @ unit[first]
            sim[first] = -np.inf
            rest = [int(i) for i in np.argsort(-sim, kind="stable")[:size - 1]]
        else:
            pool = [int(i) for i in rng.choice(len(unit), 300, replace=False) if i != first]
            rest = []
            for _ in range(size - 1):
                chosen = [first] + rest
                closest = (unit[pool] @ unit[chosen].T).max(axis=1)
                pick = pool[int(np.argmin(closest))]
                rest.append(pick)
                pool.remove(pick)
        out.append([first] + rest)
    return out


def run(ls, als, ncf, item_item, ranked, features, log, per_cell=60, seed=2011) -> str:
    """The benchmark as a markdown section body. `ranked`: the served hybrid on the test users
    (with `.ranker` and `.inner`); `features`: `pipeline.lastfm_features`."""
    a, b = platt(*ranked.inner)
    log(f"  lastfm groups: Platt on the ranker's inner-split scores a={a:.4f} b={b:.4f}")
    users = np.asarray(sorted(ranked.rows))
    train = ls.train
    played = [set(train.indices[train.indptr[u]:train.indptr[u + 1]]) for u in range(train.shape[0])]
    counts = np.asarray((train > 0).sum(axis=0)).ravel()
    by_popularity = np.argsort(-counts, kind="stable")
    solo = {int(u): ranked.rows[int(u)][0][np.argsort(-ranked.rows[int(u)][1], kind="stable")] for u in users}
    rng = np.random.default_rng(seed)
    methods = ("popularity", "round-robin") + STRATEGIES
    lines = ["| groups | size | method | mean NDCG@10 | least-served NDCG@10 | mean Recall@20 | least-served Recall@20 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    summary = {}
    for kind in ("random", "similar", "divergent"):
        for size in SIZES:
            groups = make_groups(kind, size, per_cell, als.user_factors[users], rng)
            scores = {m: [] for m in methods}
            for g in groups:
                members = users[g]
                excluded = set().union(*(played[u] for u in members))
                share = max(8, POOL // (size + 1))
                pool: list[int] = []
                for u in members:
                    own = [int(i) for i in solo[int(u)] if int(i) not in excluded and int(i) not in pool]
                    pool.extend(own[:share])
                dot = als.score(members).mean(axis=0)
                dot[list(excluded | set(pool))] = -np.inf
                need = max(0, POOL - len(pool))
                pool.extend(int(i) for i in np.argsort(-dot, kind="stable")[:need])
                _, feats = features(ncf, als, train, members, item_item=item_item,
                                    given=np.tile(np.asarray(pool), (len(members), 1)))
                with torch.no_grad():
                    logits = ranked.ranker(torch.as_tensor(feats)).numpy()
                u = 1.0 / (1.0 + np.exp(-(a * logits + b)))
                lists = {s: [pool[i] for i in select(s, u, LIST)] for s in STRATEGIES}
                lists["popularity"] = [int(i) for i in by_popularity if int(i) not in excluded][:LIST]
                rr, seen = [], set()
                for rank in range(LIST * 2):
                    for m in members:
                        own = [int(i) for i in solo[int(m)] if int(i) not in excluded]
                        if len(rr) < LIST and rank < len(own) and own[rank] not in seen:
                            seen.add(own[rank])
                            rr.append(own[rank])
                lists["round-robin"] = rr
                for method, items in lists.items():
                    arr = np.asarray(items)
                    per = [(ndcg_at_k(arr, ls.test[m], 10), recall_at_k(arr, ls.test[m], LIST)) for m in members]
                    scores[method].append(per)
            for method in methods:
                per_group = scores[method]
                mean_n = np.mean([np.mean([p[0] for p in g]) for g in per_group])
                least_n = np.mean([min(p[0] for p in g) for g in per_group])
                mean_r = np.mean([np.mean([p[1] for p in g]) for g in per_group])
                least_r = np.mean([min(p[1] for p in g) for g in per_group])
                summary[(kind, size, method)] = (mean_n, least_n, mean_r, least_r)
                lines.append(f"| {kind} | {size} | {method} | {mean_n:.4f} | {least_n:.4f} | {mean_r:.4f} | {least_r:.4f} |")
            log(f"  lastfm groups: {kind} groups of {size} done")
    return "\n".join(lines), summary
