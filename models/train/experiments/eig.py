"""How close can a rank-k dot product get to EASE? Item vectors from the shrunk eigenvectors of
EASE's Gram matrix: -P off its diagonal is U diag(s / (s + lam)) U^T / lam."""
from common import *
ls = load()
train = ls.train
x = train.copy().astype(np.float64); x.data = np.log1p(x.data)
n_items = train.shape[1]
counts = np.asarray((train > 0).sum(axis=0)).ravel()
keep = np.flatnonzero(counts >= 2)
log(f"items {n_items}, kept {len(keep)}")
xk = x[:, keep].tocsr()
G = (xk.T @ xk).toarray()
t = time.time()
s, U = np.linalg.eigh(G)
log(f"eigh {time.time()-t:.0f}s")
order = np.argsort(-s); s, U = s[order], U[:, order]
class Lin:
    def __init__(s_, V, scale=None): s_.V, s_.scale = V, scale
    def score(s_, users):
        out = np.full((len(users), n_items), -1e9)
        sc = (xk[users] @ s_.V) @ s_.V.T
        if s_.scale is not None: sc = sc * s_.scale
        out[:, keep] = sc
        return out
for lam in (500, 1500, 3000):
    # diag of P = (G + lam I)^-1 via eigen: sum_k U_jk^2 / (s_k + lam)
    Pdiag = (U**2 / (s + lam)).sum(1)
    for k in (64, 128, 256):
        V = U[:, :k] * np.sqrt(s[:k] / (s[:k] + lam))
        r1 = recall(Lin(V), ls)
        r2 = recall(Lin(V, scale=1.0 / (lam * Pdiag)), ls)
        log(f"lam={lam} k={k}: symmetric {r1[0]:.4f}/{r1[1]:.4f}  with EASE item scale {r2[0]:.4f}/{r2[1]:.4f}")
