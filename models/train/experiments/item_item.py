"""The stacked hybrid with the served candidate mix: item-item neighbours (sparse top-N EASE rows)
plus dot-product fill, and the item-item score as the eighth feature.
Arguments: variants `lambda:neighbours:from_item_item`, e.g. 1500:100:150."""
from common import *
import pickle, torch
from chorus_train import lastfm_eval
from chorus_train.ease import EASE
from chorus_train.item_item import ItemItem
from chorus_train.nets import train_hybrid
from chorus_train.pipeline import lastfm_features, _Ranked, lastfm_als, lastfm_ncf
torch.set_num_threads(2)
ls = load()
CACHE = os.environ.get("PROBE_CACHE", "/tmp/chorus-lastfm-item-item.pkl")
if os.path.exists(CACHE):
    inner, models = pickle.load(open(CACHE, "rb"))
else:
    inner = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
    models = {}
    for tag, tr in (("inner", inner.train), ("full", ls.train)):
        als = lastfm_als(tr)
        ncf = lastfm_ncf(tr, als, 30, log)
        models[tag] = (als, ncf)
        log(f"fitted {tag}")
    pickle.dump((inner, models), open(CACHE, "wb"))
eases = {}
for variant in sys.argv[1:]:
    lam, keep, take = variant.split(":")
    lam, keep, take = float(lam), int(keep), int(take)
    if lam not in eases:
        eases[lam] = {tag: EASE(lam).fit(tr) for tag, tr in (("inner", inner.train), ("full", ls.train))}
    ii = {tag: ItemItem.from_ease(e, keep) for tag, e in eases[lam].items()}
    users = np.asarray([u for u, t in enumerate(inner.test) if t])
    cand, f = lastfm_features(models["inner"][1], models["inner"][0], inner.train, users, item_item=ii["inner"], from_item_item=take)
    labels = np.stack([np.isin(cand[r], list(inner.test[u])) for r, u in enumerate(users)]).astype(np.float32)
    keep_rows = labels.sum(1) > 0
    ranker = train_hybrid(f[keep_rows], labels[keep_rows], epochs=300, log=lambda *_: None); ranker.eval()
    tu = np.asarray([u for u, t in enumerate(ls.test) if t])
    cand, f = lastfm_features(models["full"][1], models["full"][0], ls.train, tu, item_item=ii["full"], from_item_item=take)
    with torch.no_grad(): sc = ranker(torch.as_tensor(f)).numpy()
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, cand, sc), ls)
    log(f"{variant}: nnz {ii['full'].nnz} recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
