"""The served lastfm hybrid's ranker alone, varied: inputs standardised inside the model (fixed
training mean/std, exported with the graph), epochs, hidden width, learning rate. Uses the fits
`folds.py` caches (inner split seed 7 and the full training data); run that first.
Arguments: variants `std|raw:epochs:hidden:lr`, e.g. std:1000:64:0.003."""
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
for variant in sys.argv[1:]:
    mode, epochs, hidden, lr = variant.split(":")
    ranker = train_hybrid(train_f, train_y, epochs=int(epochs), hidden=int(hidden), lr=float(lr),
                          standardise=mode == "std", log=lambda *_: None)
    ranker.eval()
    with torch.no_grad(): sc = ranker(torch.as_tensor(test_f)).numpy()
    r = lastfm_eval.evaluate(_Ranked(ls.train.shape[1], tu, test_cand, sc), ls)
    log(f"{variant}: recall {r['recall@20']:.4f} ndcg {r['ndcg@20']:.4f}")
