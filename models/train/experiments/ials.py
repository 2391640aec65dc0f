from common import *
import scipy.sparse as sp
class IALS:
    def __init__(s, factors, reg, alpha, eps=1.0, iters=10, seed=0, conf="log", nu=0.0):
        s.k, s.reg, s.alpha, s.eps, s.iters, s.seed, s.conf, s.nu = factors, reg, alpha, eps, iters, seed, conf, nu
    def c(s, w):
        return s.alpha * np.log1p(w / s.eps) if s.conf == "log" else s.alpha * np.ones_like(w)
    def fit(s, train):
        rng = np.random.default_rng(s.seed)
        n_u, n_i = train.shape
        c = train.copy().astype(np.float64); c.data = s.c(c.data)
        s.U = rng.normal(0, 0.01, (n_u, s.k)); s.V = rng.normal(0, 0.01, (n_i, s.k))
        ct = c.T.tocsr()
        for _ in range(s.iters):
            s.U = s.solve(c, s.V); s.V = s.solve(ct, s.U)
        return s
    def solve(s, conf, Y):
        k = Y.shape[1]; G = Y.T @ Y
        out = np.zeros((conf.shape[0], k))
        cnt = np.diff(conf.indptr)
        for r in range(conf.shape[0]):
            a0, b0 = conf.indptr[r], conf.indptr[r+1]
            if a0 == b0: continue
            idx, cu = conf.indices[a0:b0], conf.data[a0:b0]
            y = Y[idx]
            reg = s.reg * (cnt[r] ** s.nu if s.nu else 1.0)
            A = G + reg * np.eye(k) + (y.T * cu) @ y
            out[r] = np.linalg.solve(A, (y.T * (1.0 + cu)).sum(1))
        return out
    def score(s, users): return s.U[users] @ s.V.T
if __name__ == "__main__":
    ls = load()
    for spec in sys.argv[1:]:
        k, reg, alpha, nu = spec.split(",")
        t = time.time()
        m = IALS(int(k), float(reg), float(alpha), nu=float(nu)).fit(ls.train)
        r, n = recall(m, ls)
        log(f"k={k} reg={reg} alpha={alpha} nu={nu}: recall {r:.4f} ndcg {n:.4f} ({time.time()-t:.0f}s)")
