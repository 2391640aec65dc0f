"""The served lastfm hybrid's ranker with inputs the server could derive from the eight features
it already has, and ensembles of rankers. Uses the fits `folds.py` caches (inner split seed 7 and
the full training data); run `folds.py 7` first. Prints the candidate recall (the ceiling any
ranker has) and Recall@20 / NDCG@20 per variant:
  base      the pipeline's ranker (raw inputs, 300 epochs, 32 hidden)
  ranks     + each candidate's rank within its list by retrieval, item-item and NCF score (0..1)
  z         + each feature standardised within its list
  seeds:N   the base ranker's scores averaged over N training seeds
  cand:N:M  N candidates, M of them from the item-item neighbours (base ranker, standardised)
  nb:L:N    the item-item neighbours from EASE(L) with N per artist (ranker standardised)
  gbdt:N    gradient-boosted trees (N iterations) on the eight features, pointwise"""
from common import *
import pickle, torch
from chorus_train import lastfm_eval
from chorus_train.nets import train_hybrid
from chorus_train.pipeline import lastfm_features, _Ranked
torch.set_num_threads(2)
ls = load()
fits = pickle.load(open(os.environ.get("PROBE_CACHE", "/tmp/chorus-lastfm-folds.pkl"), "rb"))
inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
als, ncf, ii = fits["inner7"]
users = np.asarray([u for u, t in enumerate(inner.test) if t])
cand, f = lastfm_features(ncf, als, inner.train, users, item_item=ii)
y = np.stack([np.isin(cand[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
keep = y.sum(1) > 0
train_f, train_y = f[keep], y[keep]
als, ncf, ii = fits["full"]
tu = np.asarray([u for u, t in enumerate(ls.test) if t])
test_cand, test_f = lastfm_features(ncf, als, ls.train, tu, item_item=ii)
covered = np.mean([len(set(test_cand[r]) & ls.test[u]) / len(ls.test[u]) for r, u in enumerate(tu)])
log(f"held-out artists among the {test_cand.shape[1]} candidates: {covered:.4f}")


def ranks(f):
    out = []
    for col in (0, 1, 7):
        order = np.argsort(np.argsort(-f[:, :, col], axis=1, kind="stable"), axis=1)
        out.append(order / f.shape[1])
    return np.concatenate([f, np.stack(out, axis=-1).astype(np.float32)], axis=-1)


def z(f):
    mean, std = f.mean(axis=1, keepdims=True), f.std(axis=1, keepdims=True) + 1e-6
    return np.concatenate([f, ((f - mean) / std).astype(np.float32)], axis=-1)


def score(tr, te, seeds=1, **kw):
    total = 0
    for seed in range(seeds):
        ranker = train_hybrid(tr, train_y, epochs=300, seed=seed, log=lambda *_: None, **kw)
        ranker.eval()
        with torch.no_grad():
            s = ranker(torch.as_tensor(te)).numpy()
        total = total + (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-9)
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, test_cand, total), ls)
    return f"recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}"


for variant in sys.argv[1:] or ["base"]:
    name, _, arg = variant.partition(":")
    if name == "base":
        log(f"{variant}: {score(train_f, test_f)}")
    elif name == "std":
        log(f"{variant}: {score(train_f, test_f, standardise=True)}")
    elif name == "ranks":
        log(f"{variant}: {score(ranks(train_f), ranks(test_f), standardise=True)}")
    elif name == "z":
        log(f"{variant}: {score(z(train_f), z(test_f), standardise=True)}")
    elif name == "seeds":
        log(f"{variant}: {score(train_f, test_f, seeds=int(arg))}")
    elif name == "gbdt":
        from sklearn.ensemble import HistGradientBoostingClassifier
        trees = HistGradientBoostingClassifier(max_iter=int(arg or 200), learning_rate=0.05,
                                               max_leaf_nodes=31, random_state=0)
        trees.fit(train_f.reshape(-1, train_f.shape[-1]), train_y.ravel())
        s = trees.predict_proba(test_f.reshape(-1, test_f.shape[-1]))[:, 1].reshape(test_f.shape[:2])
        r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, test_cand, s), ls)
        log(f"{variant}: recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
    elif name == "cand":
        n, m = (int(x) for x in arg.split(":"))
        als, ncf, ii = fits["inner7"]
        c, f = lastfm_features(ncf, als, inner.train, users, item_item=ii, candidates=n, from_item_item=m)
        yy = np.stack([np.isin(c[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
        k = yy.sum(1) > 0
        als, ncf, ii = fits["full"]
        tc, tf = lastfm_features(ncf, als, ls.train, tu, item_item=ii, candidates=n, from_item_item=m)
        cov = np.mean([len(set(tc[r]) & ls.test[u]) / len(ls.test[u]) for r, u in enumerate(tu)])
        ranker = train_hybrid(f[k], yy[k], epochs=300, standardise=True, log=lambda *_: None)
        ranker.eval()
        with torch.no_grad():
            s = ranker(torch.as_tensor(tf)).numpy()
        r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, tc, s), ls)
        log(f"{variant}: coverage {cov:.4f} recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
    elif name == "nb":
        from chorus_train.ease import EASE
        from chorus_train.item_item import ItemItem
        lam, n = arg.split(":")
        ii_inner = ItemItem.from_ease(EASE(float(lam)).fit(inner.train), int(n))
        ii_full = ItemItem.from_ease(EASE(float(lam)).fit(ls.train), int(n))
        als, ncf, _ = fits["inner7"]
        c, f = lastfm_features(ncf, als, inner.train, users, item_item=ii_inner)
        yy = np.stack([np.isin(c[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
        k = yy.sum(1) > 0
        als, ncf, _ = fits["full"]
        tc, tf = lastfm_features(ncf, als, ls.train, tu, item_item=ii_full)
        cov = np.mean([len(set(tc[r]) & ls.test[u]) / len(ls.test[u]) for r, u in enumerate(tu)])
        for std in (False, True):
            ranker = train_hybrid(f[k], yy[k], epochs=300, standardise=std, log=lambda *_: None)
            ranker.eval()
            with torch.no_grad():
                s = ranker(torch.as_tensor(tf)).numpy()
            r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, tc, s), ls)
            log(f"{variant} std={std}: coverage {cov:.4f} recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
