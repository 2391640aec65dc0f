"""The served lastfm hybrid (docs/QUALITY.md's row) with the pipeline's iALS replaced by the
configuration given as `FACTORS,REG,ALPHA,ITERATIONS`: iALS is the hybrid's dot-product
retrieval and the start of NCF's item vectors, so its tuning reaches the served figure only
through the whole stack. Prints every lastfm row as the pipeline computes them (30 NCF epochs)."""
from common import *
from chorus_train import pipeline
from chorus_train.baselines import ImplicitALS

k, reg, alpha, it = sys.argv[1].split(",")
pipeline.lastfm_als = lambda train: ImplicitALS(
    int(k), float(reg), float(alpha), 1.0, iterations=int(it)).fit(train)
path = os.environ.get("LASTFM", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                             "../../../../shared/datasets/lastfm-2k"))
t = time.time()
res, groups = pipeline.evaluate_lastfm(path, int(os.environ.get("EPOCHS", "30")), log)
if os.environ.get("SHOW_GROUPS"):
    print(groups)
log(f"iALS {sys.argv[1]}: served hybrid recall@20 {res[pipeline.SERVED_LASTFM]['recall@20']:.4f} "
    f"ndcg@20 {res[pipeline.SERVED_LASTFM]['ndcg@20']:.4f} ({time.time() - t:.0f}s)")
