"""The served lastfm hybrid's ranker alone, varied: inputs standardised inside the model (fixed
training mean/std, exported with the graph), epochs, hidden width, learning rate. Uses the fits
`folds.py` caches (inner split seed 7 and the full training data); run that first.
Arguments: variants `std|raw:epochs:hidden:lr`, e.g. std:1000:64:0.003."""
from common import *
import torch
torch.set_num_threads(2)
ls = load()
fits, inner = cached_fits(ls)
train_f, train_y = inner_lists(fits["inner7"], inner)
tu, test_cand, test_f, _ = test_lists(fits["full"], ls)
for variant in sys.argv[1:]:
    mode, epochs, hidden, lr = variant.split(":")
    r = ranker_recall(train_f, train_y, ls, tu, test_cand, test_f, epochs=int(epochs),
                      hidden=int(hidden), lr=float(lr), standardise=mode == "std")
    log(f"{variant}: recall {r[0]:.4f} ndcg {r[1]:.4f}")
