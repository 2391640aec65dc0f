"""Implicit ALS (the pipeline's `baselines.ImplicitALS`) on lastfm-2k over a grid.
Arguments: one `FACTORS,REG,ALPHA` per configuration."""
from common import *
from chorus_train.baselines import ImplicitALS

ls = load()
for spec in sys.argv[1:]:
    k, reg, alpha = spec.split(",")
    t = time.time()
    r = recall(ImplicitALS(int(k), float(reg), float(alpha), iterations=10).fit(ls.train), ls)
    log(f"k={k} reg={reg} alpha={alpha}: recall {r[0]:.4f} ndcg {r[1]:.4f} ({time.time()-t:.0f}s)")
