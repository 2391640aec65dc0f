"""Extra item-item features for the served lastfm hybrid's ranker (standardised inputs, 300
epochs): `norm` (the score over the listener's total history weight), `support` (how many liked
artists point to the candidate), `max` (the largest single contribution), `len` (log history
length). Uses `folds.py`'s cached fits. Arguments: comma lists of extras, or `none`."""
from common import *
import pickle, torch
from chorus_train import lastfm_eval
from chorus_train.nets import train_hybrid
from chorus_train.pipeline import lastfm_features, _Ranked
torch.set_num_threads(2)
ls = load()
fits = pickle.load(open(os.environ.get("PROBE_CACHE", "/tmp/chorus-lastfm-folds.pkl"), "rb"))

def extras(ii, train, users, cand):
    out = np.zeros((len(users), cand.shape[1], 4), dtype=np.float32)
    for r, u in enumerate(users):
        s, e = train.indptr[u], train.indptr[u + 1]
        hist, x = train.indices[s:e], np.log1p(train.data[s:e])
        sub = ii.b[hist][:, cand[r]].toarray() * x[:, None]
        out[r, :, 0] = sub.sum(0) / max(x.sum(), 1e-9)
        out[r, :, 1] = (sub > 0).sum(0)
        out[r, :, 2] = sub.max(0) if len(hist) else 0.0
        out[r, :, 3] = np.log1p(len(hist))
    return out

inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
als, ncf, ii = fits["inner7"]
users = np.asarray([u for u, t in enumerate(inner.test) if t])
cand, f = lastfm_features(ncf, als, inner.train, users, item_item=ii)
fx = extras(ii, inner.train, users, cand)
y = np.stack([np.isin(cand[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
keep = y.sum(1) > 0
als, ncf, ii = fits["full"]
tu = np.asarray([u for u, t in enumerate(ls.test) if t])
tc, tf = lastfm_features(ncf, als, ls.train, tu, item_item=ii)
tfx = extras(ii, ls.train, tu, tc)
names = ["norm", "support", "max", "len"]
for variant in sys.argv[1:]:
    cols = [] if variant == "none" else [names.index(n) for n in variant.split(",")]
    a = np.concatenate([f, fx[:, :, cols]], -1)
    b = np.concatenate([tf, tfx[:, :, cols]], -1)
    ranker = train_hybrid(a[keep], y[keep], epochs=300, standardise=True, log=lambda *_: None)
    ranker.eval()
    with torch.no_grad(): sc = ranker(torch.as_tensor(b)).numpy()
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, tc, sc), ls)
    inside = np.mean([len(set(tc[i]) & ls.test[u]) / len(ls.test[u]) for i, u in enumerate(tu)])
    log(f"{variant}: recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f} (held-out artists among the candidates: {inside:.3f})")
