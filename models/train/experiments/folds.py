"""The served lastfm hybrid with its ranker trained on the lists of several inner 90/10 splits
(each with its own refitted iALS, NCF and item-item neighbours) instead of one.
Arguments: inner split seeds, e.g. 7 8 9 (the pipeline uses 7 alone)."""
from common import *
import pickle, torch
from chorus_train import lastfm_eval
from chorus_train.nets import train_hybrid
from chorus_train.pipeline import lastfm_features, lastfm_item_item, _Ranked, lastfm_als, lastfm_ncf
torch.set_num_threads(2)
ls = load()
CACHE = os.environ.get("PROBE_CACHE", "/tmp/chorus-lastfm-folds.pkl")
fits = pickle.load(open(CACHE, "rb")) if os.path.exists(CACHE) else {}

def fitted(tag, train):
    if tag not in fits:
        als = lastfm_als(train)
        ncf = lastfm_ncf(train, als, 30, lambda *_: None)
        fits[tag] = (als, ncf, lastfm_item_item(train))
        pickle.dump(fits, open(CACHE, "wb"))
        log(f"fitted {tag}")
    return fits[tag]

feats, labels = [], []
for seed in [int(a) for a in sys.argv[1:]]:
    inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=seed)
    als, ncf, ii = fitted(f"inner{seed}", inner.train)
    users = np.asarray([u for u, t in enumerate(inner.test) if t])
    cand, f = lastfm_features(ncf, als, inner.train, users, item_item=ii)
    y = np.stack([np.isin(cand[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
    keep = y.sum(1) > 0
    feats.append(f[keep]); labels.append(y[keep])
    als, ncf, ii = fitted("full", ls.train)
    ranker = train_hybrid(np.concatenate(feats), np.concatenate(labels), epochs=300, log=lambda *_: None); ranker.eval()
    tu = np.asarray([u for u, t in enumerate(ls.test) if t])
    cand, f = lastfm_features(ncf, als, ls.train, tu, item_item=ii)
    with torch.no_grad(): sc = ranker(torch.as_tensor(f)).numpy()
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, cand, sc), ls)
    log(f"folds up to seed {seed} ({sum(len(x) for x in feats)} lists): recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
