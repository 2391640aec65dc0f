"""The pipeline's implicit ALS with frequency-scaled regularization (Rendle et al. 2021,
"Revisiting the performance of iALS"): each user's and each item's ridge term is
reg·(n/mean n)^nu, n its number of observed pairs (nu = 0: the pipeline's iALS). Validation only
(the pipeline's inner 90/10 split, seed 7). Arguments: `REG,ALPHA,NU` per configuration (64
factors, 15 iterations); with `--test CONFIG`, that one configuration's test figure."""
from common import *
from chorus_train.baselines import ImplicitALS


class ScaledALS(ImplicitALS):
    def __init__(self, reg, alpha, nu):
        super().__init__(64, reg, alpha, 1.0, iterations=15)
        self.nu = nu

    def _solve(self, conf, fixed):
        k = fixed.shape[1]
        counts = np.diff(conf.indptr).astype(np.float64)
        scale = (np.maximum(counts, 1) / counts[counts > 0].mean()) ** self.nu
        base = fixed.T @ fixed
        out = np.zeros((conf.shape[0], k))
        for row in range(conf.shape[0]):
            start, end = conf.indptr[row], conf.indptr[row + 1]
            if start == end:
                continue
            idx, cu = conf.indices[start:end], conf.data[start:end]
            y = fixed[idx]
            a = base + self.reg * scale[row] * np.eye(k) + (y.T * cu) @ y
            out[row] = np.linalg.solve(a, (y.T * (1.0 + cu)).sum(axis=1))
        return out


ls = load()
if "--test" in sys.argv:
    reg, alpha, nu = (float(x) for x in sys.argv[sys.argv.index("--test") + 1].split(","))
    r = recall(ScaledALS(reg, alpha, nu).fit(ls.train), ls)
    log(f"test reg={reg} alpha={alpha} nu={nu}: recall {r[0]:.4f} ndcg {r[1]:.4f}")
    sys.exit()
inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
for spec in sys.argv[1:]:
    reg, alpha, nu = (float(x) for x in spec.split(","))
    t = time.time()
    r = recall(ScaledALS(reg, alpha, nu).fit(inner.train), inner)
    log(f"validation reg={reg} alpha={alpha} nu={nu}: recall {r[0]:.4f} ndcg {r[1]:.4f} ({time.time()-t:.0f}s)")
