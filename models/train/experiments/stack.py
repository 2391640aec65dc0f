"""The stacked hybrid with EASE(1500) candidates (QUALITY.md's exploratory row) and extra features.
Arguments: modes, `base` or a comma list of knn, z, rank, len."""
from common import *
import pickle, torch
from chorus_train import lastfm_eval
from chorus_train.baselines import ImplicitALS, ItemKNN
from chorus_train.ease import EASE
from chorus_train.nets import train_neumf, train_hybrid
from chorus_train.pipeline import lastfm_features, _Ranked, K
torch.set_num_threads(2)
ls = load()
CACHE = os.environ.get("PROBE_CACHE", "/tmp/chorus-lastfm-probe.pkl")
if os.path.exists(CACHE):
    inner, models = pickle.load(open(CACHE, "rb"))
else:
    inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
    models = {}
    for tag, tr in (("inner", inner.train), ("full", ls.train)):
        als = ImplicitALS(K, 0.1, 10.0, 1.0, iterations=10).fit(tr)
        ncf = train_neumf(tr, K, als.item_factors / (np.linalg.norm(als.item_factors, axis=1).mean() + 1e-9), epochs=30, log=log)
        ncf.eval()
        ease = EASE(1500.0).fit(tr)
        knn = ItemKNN(100).fit(tr)
        models[tag] = (als, ncf, ease, knn)
        log(f"fitted {tag}")
    pickle.dump((inner, models), open(CACHE, "wb"))

def feats(tag, split_train, users, extra_mode):
    als, ncf, ease, knn = models[tag]
    cand, f = lastfm_features(ncf, als, split_train, users, item_item=ease)
    extras = []
    if "knn" in extra_mode: extras.append(np.take_along_axis(knn.score(users), cand, 1))
    if "rank" in extra_mode:
        r = np.argsort(np.argsort(-f[:, :, 2], axis=1), axis=1)
        extras.append(np.log1p(r))
    if "len" in extra_mode:
        hist_len = np.diff(split_train.indptr)[users]
        extras.append(np.repeat(np.log1p(hist_len)[:, None], cand.shape[1], 1))
    if extras: f = np.concatenate([f, np.stack(extras, -1).astype(np.float32)], -1)
    if "z" in extra_mode:
        cols = [0, 1, 2] + list(range(7, f.shape[-1]))
        m = f[:, :, cols].mean(1, keepdims=True); s = f[:, :, cols].std(1, keepdims=True) + 1e-6
        f[:, :, cols] = (f[:, :, cols] - m) / s
    return cand, f

for mode in sys.argv[1:]:
    m = "" if mode == "base" else mode
    users = np.asarray([u for u, t in enumerate(inner.test) if t])
    cand, f = feats("inner", inner.train, users, m)
    labels = np.stack([np.isin(cand[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
    keep = labels.sum(1) > 0
    ranker = train_hybrid(f[keep], labels[keep], epochs=300, log=lambda *_: None); ranker.eval()
    tu = np.asarray([u for u, t in enumerate(ls.test) if t])
    cand, f = feats("full", ls.train, tu, m)
    with torch.no_grad(): sc = ranker(torch.as_tensor(f)).numpy()
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, cand, sc), ls)
    log(f"{mode}: recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
