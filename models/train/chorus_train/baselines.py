"""Reference recommenders for the offline evaluation: ItemPop, ItemKNN and implicit ALS (the
tuned dot-product MF). Each `fit` takes a users x items CSR matrix of positive weights and each
`score(users)` returns a dense [len(users), n_items] score matrix (seen items not yet masked)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class ItemPop:
    name = "ItemPop"

    def fit(self, train: sp.csr_matrix) -> "ItemPop":
        self.popularity = np.asarray((train > 0).sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity, (len(users), 1))


class ItemKNN:
    """Item-based kNN: cosine similarity of item columns (log-scaled weights), each item keeping
    its `neighbours` most similar items; a user's score for j sums sim(i, j) over their items."""

    name = "ItemKNN"

    def __init__(self, neighbours: int = 100, shrink: float = 10.0):
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, train: sp.csr_matrix) -> "ItemKNN":
        x = train.copy().astype(np.float32)
        x.data = np.log1p(x.data)
        self.train = x
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        sim = (x.T @ x).toarray()
        sim /= np.outer(norms, norms) + self.shrink
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < sim.shape[0]:
            cut = np.argpartition(-sim, self.neighbours, axis=1)[:, self.neighbours:]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        self.sim = sim.astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.train[users] @ self.sim)


class ImplicitALS:
    """Hu, Koren & Volinsky (2008): confidence c = 1 + alpha * log(1 + w / eps), preference 1 for
    observed pairs; alternating exact ridge solves. The fold-in `user_vector` is the same solve
    the server runs for live feedback."""

    name = "iALS"

    def __init__(self, factors=64, regularization=0.1, alpha=10.0, eps=1.0, iterations=15, seed=0):
        self.factors, self.reg, self.alpha, self.eps = factors, regularization, alpha, eps
        self.iterations, self.seed = iterations, seed

    def confidence(self, weights: np.ndarray) -> np.ndarray:
        return self.alpha * np.log1p(weights / self.eps)

    def fit(self, train: sp.csr_matrix) -> "ImplicitALS":
        rng = np.random.default_rng(self.seed)
        n_users, n_items = train.shape
        c = train.copy().astype(np.float64)
        c.data = self.confidence(c.data)
        self.user_factors = rng.normal(0, 0.01, (n_users, self.factors))
        self.item_factors = rng.normal(0, 0.01, (n_items, self.factors))
        ct = c.T.tocsr()
        for _ in range(self.iterations):
            self.user_factors = self._solve(c, self.item_factors)
            self.item_factors = self._solve(ct, self.user_factors)
        self.train = train
        return self

    def _solve(self, conf: sp.csr_matrix, fixed: np.ndarray) -> np.ndarray:
        k = fixed.shape[1]
        gram = fixed.T @ fixed + self.reg * np.eye(k)
        out = np.zeros((conf.shape[0], k))
        for row in range(conf.shape[0]):
            start, end = conf.indptr[row], conf.indptr[row + 1]
            if start == end:
                continue
            idx, cu = conf.indices[start:end], conf.data[start:end]
            y = fixed[idx]
            a = gram + (y.T * cu) @ y
            b = (y.T * (1.0 + cu)).sum(axis=1)
            out[row] = np.linalg.solve(a, b)
        return out

    def user_vector(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Fold-in: the user factor that the fitted item factors imply for this history."""
        y = self.item_factors[items]
        cu = self.confidence(weights)
        a = self.item_factors.T @ self.item_factors + self.reg * np.eye(self.factors) + (y.T * cu) @ y
        return np.linalg.solve(a, (y.T * (1.0 + cu)).sum(axis=1))

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T
