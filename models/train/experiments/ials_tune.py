"""Tunes the pipeline's implicit ALS for lastfm-2k on a validation split, then reports the test
figure of the chosen configuration only (issue 17: tune on validation, not on the test users).
Validation: the pipeline's inner 90/10 split of each user's training artists (seed 7, as
`LastfmInner`). Arguments: `FACTORS,REG,ALPHA,ITERATIONS` per configuration; with
`--reference`, also `implicit`'s ALS (confidence log1p(playcount), regularization 1, 15
iterations) for the same factors, when the package is installed."""
from common import *
from chorus_train.baselines import ImplicitALS

ls = load()
inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
specs = [s for s in sys.argv[1:] if not s.startswith("--")]
results = []
for spec in specs:
    k, reg, alpha, it = spec.split(",")
    t = time.time()
    model = ImplicitALS(int(k), float(reg), float(alpha), iterations=int(it)).fit(inner.train)
    r = recall(model, inner)
    results.append((r[0], spec))
    log(f"validation k={k} reg={reg} alpha={alpha} iterations={it}: recall {r[0]:.4f} ndcg {r[1]:.4f} ({time.time()-t:.0f}s)")
best = max(results)[1]
k, reg, alpha, it = best.split(",")
r = recall(ImplicitALS(int(k), float(reg), float(alpha), iterations=int(it)).fit(ls.train), ls)
log(f"chosen on validation: {best}; test recall {r[0]:.4f} ndcg {r[1]:.4f}")
if "--reference" in sys.argv:
    import implicit
    from threadpoolctl import threadpool_limits

    class Reference:
        def __init__(self, factors):
            self.model = implicit.als.AlternatingLeastSquares(factors=factors, regularization=1.0,
                                                               iterations=15, random_state=0)

        def fit(self, train):
            c = train.copy().astype(np.float32)
            c.data = np.log1p(c.data)
            with threadpool_limits(1, "blas"):
                self.model.fit(c, show_progress=False)
            self.u, self.i = np.asarray(self.model.user_factors), np.asarray(self.model.item_factors)
            return self

        def score(self, users):
            return self.u[users] @ self.i.T

    for factors in sorted({int(s.split(",")[0]) for s in specs}):
        r = recall(Reference(factors).fit(ls.train), ls)
        log(f"implicit {implicit.__version__} factors={factors}: test recall {r[0]:.4f} ndcg {r[1]:.4f}")
