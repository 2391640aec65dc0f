"""The served lastfm hybrid with `ials_scaled.py`'s iALS (frequency-scaled regularization) as its
dot-product retrieval and NCF's start, everything else as the pipeline (the item-item fits that
`folds.py` caches). Arguments: REG,ALPHA,NU (chosen on validation with `ials_scaled.py`)."""
from common import *
import torch
sys.argv, spec = sys.argv[:1], sys.argv[1]
from ials_scaled import ScaledALS, ls
from chorus_train.pipeline import lastfm_ncf
torch.set_num_threads(2)
reg, alpha, nu = (float(x) for x in spec.split(","))
fits, inner = cached_fits(ls)
als_i = ScaledALS(reg, alpha, nu).fit(inner.train)
f, y = inner_lists((als_i, lastfm_ncf(inner.train, als_i, 30, lambda *_: None), fits["inner7"][2]), inner)
als_f = ScaledALS(reg, alpha, nu).fit(ls.train)
log(f"test iALS {spec}: {recall(als_f, ls)}")
tu, tc, tf, _ = test_lists((als_f, lastfm_ncf(ls.train, als_f, 30, lambda *_: None), fits["full"][2]), ls)
for std in (False, True):
    r = ranker_recall(f, y, ls, tu, tc, tf, standardise=std)
    log(f"hybrid with iALS {spec}, ranker standardised={std}: recall {r[0]:.4f} ndcg {r[1]:.4f}")
