"""Shared helpers for the lastfm-2k probes: the same split and metrics as docs/QUALITY.md."""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np
from chorus_train import lastfm_eval
from chorus_train.data import load_lastfm
def log(m): print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)
def load():
    lf = load_lastfm(os.environ.get("LASTFM", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../shared/datasets/lastfm-2k")))
    return lastfm_eval.split_per_user(lf.matrix)
def recall(model, ls, k=20):
    r = lastfm_eval.evaluate(model, ls)
    return r["recall@20"], r["ndcg@20"]


def inner_lists(fitted, inner, **features):
    """The hybrid ranker's training lists: candidates and features of the inner split's users
    from the models `fitted` (iALS, NCF, item-item) on its 90%, labelled with its 10%; lists
    without a held-out artist are dropped. `features`: more `lastfm_features` arguments."""
    from chorus_train.pipeline import lastfm_features
    als, ncf, item_item = fitted
    users = np.asarray([u for u, t in enumerate(inner.test) if t])
    cand, f = lastfm_features(ncf, als, inner.train, users, item_item=item_item, **features)
    y = np.stack([np.isin(cand[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
    keep = y.sum(1) > 0
    return f[keep], y[keep]


def test_lists(fitted, ls, **features):
    """The test users, their candidates and features from the full-data models, and the share
    of their held-out artists among the candidates (what any ranker can reach)."""
    from chorus_train.pipeline import lastfm_features
    als, ncf, item_item = fitted
    users = np.asarray([u for u, t in enumerate(ls.test) if t])
    cand, f = lastfm_features(ncf, als, ls.train, users, item_item=item_item, **features)
    coverage = np.mean([len(set(cand[r]) & ls.test[u]) / len(ls.test[u]) for r, u in enumerate(users)])
    return users, cand, f, coverage


def ranked_recall(ls, users, cand, scores):
    """Recall@20 and NDCG@20 of the candidates ordered by `scores` (users × candidates)."""
    from chorus_train.pipeline import _Ranked
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], users, cand, scores), ls)
    return r["recall@20"], r["ndcg@20"]


def ranker_recall(train_f, train_y, ls, users, cand, test_f, **training):
    """The hybrid ranker trained on the inner lists, then `ranked_recall` of the test lists."""
    import torch
    from chorus_train.nets import train_hybrid
    ranker = train_hybrid(train_f, train_y, epochs=training.pop("epochs", 300), log=lambda *_: None, **training)
    ranker.eval()
    with torch.no_grad():
        scores = ranker(torch.as_tensor(test_f)).numpy()
    return ranked_recall(ls, users, cand, scores)


def cached_fits(ls):
    """The fits `folds.py` caches (run `folds.py 7` first) and the inner split they were made on."""
    import pickle
    fits = pickle.load(open(os.environ.get("PROBE_CACHE", "/tmp/chorus-lastfm-folds.pkl"), "rb"))
    return fits, lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
