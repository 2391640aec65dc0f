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
import torch
from chorus_train.nets import train_hybrid
torch.set_num_threads(2)
ls = load()
fits, inner = cached_fits(ls)
train_f, train_y = inner_lists(fits["inner7"], inner)
tu, test_cand, test_f, covered = test_lists(fits["full"], ls)
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
    r = ranked_recall(ls, tu, test_cand, total)
    return f"recall {r[0]:.4f} ndcg {r[1]:.4f}"


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
        r = ranked_recall(ls, tu, test_cand, s)
        log(f"{variant}: recall {r[0]:.4f} ndcg {r[1]:.4f}")
    elif name == "cand":
        n, m = (int(x) for x in arg.split(":"))
        f, y = inner_lists(fits["inner7"], inner, candidates=n, from_item_item=m)
        t_users, t_cand, t_f, cov = test_lists(fits["full"], ls, candidates=n, from_item_item=m)
        r = ranker_recall(f, y, ls, t_users, t_cand, t_f, standardise=True)
        log(f"{variant}: coverage {cov:.4f} recall {r[0]:.4f} ndcg {r[1]:.4f}")
    elif name == "nb":
        from chorus_train.ease import EASE
        from chorus_train.item_item import ItemItem
        lam, n = arg.split(":")
        neighbours = lambda train: ItemItem.from_ease(EASE(float(lam)).fit(train), int(n))  # noqa: E731
        f, y = inner_lists(fits["inner7"][:2] + (neighbours(inner.train),), inner)
        t_users, t_cand, t_f, cov = test_lists(fits["full"][:2] + (neighbours(ls.train),), ls)
        for std in (False, True):
            r = ranker_recall(f, y, ls, t_users, t_cand, t_f, standardise=std)
            log(f"{variant} std={std}: coverage {cov:.4f} recall {r[0]:.4f} ndcg {r[1]:.4f}")
