"""The served lastfm hybrid with `ials_scaled.py`'s iALS (frequency-scaled regularization) as its
dot-product retrieval and NCF's start, everything else as the pipeline (the item-item fits that
`folds.py` caches). Arguments: REG,ALPHA,NU (chosen on validation with `ials_scaled.py`)."""
from common import *
import pickle, torch
sys.argv, spec = sys.argv[:1], sys.argv[1]
from ials_scaled import ScaledALS, ls
from chorus_train import lastfm_eval
from chorus_train.nets import train_hybrid
from chorus_train.pipeline import lastfm_features, lastfm_ncf, _Ranked
torch.set_num_threads(2)
reg, alpha, nu = (float(x) for x in spec.split(","))
fits = pickle.load(open(os.environ.get("PROBE_CACHE", "/tmp/chorus-lastfm-folds.pkl"), "rb"))
inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
als_i = ScaledALS(reg, alpha, nu).fit(inner.train)
ncf_i = lastfm_ncf(inner.train, als_i, 30, lambda *_: None)
als_f = ScaledALS(reg, alpha, nu).fit(ls.train)
log(f"test iALS {spec}: {recall(als_f, ls)}")
ncf_f = lastfm_ncf(ls.train, als_f, 30, lambda *_: None)
users = np.asarray([u for u, t in enumerate(inner.test) if t])
c, f = lastfm_features(ncf_i, als_i, inner.train, users, item_item=fits["inner7"][2])
y = np.stack([np.isin(c[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
k = y.sum(1) > 0
tu = np.asarray([u for u, t in enumerate(ls.test) if t])
tc, tf = lastfm_features(ncf_f, als_f, ls.train, tu, item_item=fits["full"][2])
for std in (False, True):
    ranker = train_hybrid(f[k], y[k], epochs=300, standardise=std, log=lambda *_: None)
    ranker.eval()
    with torch.no_grad():
        s = ranker(torch.as_tensor(tf)).numpy()
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, tc, s), ls)
    log(f"hybrid with iALS {spec}, ranker standardised={std}: recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
