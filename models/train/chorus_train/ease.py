"""EASE (Steck 2019): a closed-form item-item linear model, B = I - P / diag(P) with
P = (X^T X + lambda I)^-1 and a zero diagonal. Items with fewer than `min_users` training users
are left out of the (dense) inversion; they score below every kept item."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class EASE:
    name = "EASE"

    def __init__(self, lam: float = 500.0, min_users: int = 2):
        self.lam, self.min_users = lam, min_users

    def fit(self, train: sp.csr_matrix) -> "EASE":
        x = train.copy().astype(np.float64)
        x.data = np.log1p(x.data)
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
