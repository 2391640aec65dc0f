"""EASE (Steck 2019): a closed-form item-item linear model, B = I - P / diag(P) with
P = (X^T X + lambda I)^-1 and a zero diagonal. Items with fewer than `min_users` training users
are left out of the (dense) inversion; they score below every kept item.

X holds the listen counts after `weighting`: "log1p" (the evaluation's default), "binary", or
"user_log1p" (log1p, then each user's values divided by their mean, so heavy and light listeners
weigh alike)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class EASE:
    name = "EASE"

    def __init__(self, lam: float = 500.0, min_users: int = 2, weighting: str = "log1p"):
        if weighting not in ("log1p", "binary", "user_log1p"):
            raise ValueError(f"unknown weighting {weighting!r}")
        self.lam, self.min_users, self.weighting = lam, min_users, weighting

    def fit(self, train: sp.csr_matrix) -> "EASE":
        x = train.copy().astype(np.float64)
        if self.weighting == "binary":
            x.data[:] = 1.0
        else:
            x.data = np.log1p(x.data)
        if self.weighting == "user_log1p":
            per_user = np.diff(x.indptr)
            means = np.asarray(x.sum(axis=1)).ravel() / np.maximum(per_user, 1)
            x.data /= np.repeat(means, per_user)
        counts = np.asarray((train > 0).sum(axis=0)).ravel()
        self.keep = np.flatnonzero(counts >= self.min_users)
        xk = x[:, self.keep].tocsr()
        g = (xk.T @ xk).toarray()
        g[np.diag_indices_from(g)] += self.lam
        p = np.linalg.inv(g)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self.b, self.x, self.n = b, xk, train.shape[1]
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        s = np.full((len(users), self.n), -1e9)
        s[:, self.keep] = self.x[users] @ self.b
        return s
