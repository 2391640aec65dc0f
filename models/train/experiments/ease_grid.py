"""EASE on lastfm-2k with three input weightings over a grid of lambda."""
from common import *
from chorus_train.ease import EASE

GRID = {"log1p": (1000, 2000, 4000), "binary": (100, 300, 1000), "user_log1p": (30, 60, 100, 300, 1000)}
ls = load()
for weighting, lams in GRID.items():
    for lam in lams:
        t = time.time()
        r = recall(EASE(lam, weighting=weighting).fit(ls.train), ls)
        log(f"{weighting} lam={lam}: {r[0]:.4f}/{r[1]:.4f} ({time.time()-t:.0f}s)")
