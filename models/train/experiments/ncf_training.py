"""The served lastfm hybrid with NCF trained on more of each step's signal: `train_neumf` scores
one held-back artist per user and step against 4 uniform negatives (~450 steps in 30 epochs on
lastfm); these variants score up to T held-back artists per user and step, each against N
negatives drawn uniformly or by popularity^0.75 (harder: the hybrid's candidates are popular).
Uses the iALS and item-item fits `folds.py` caches; run `folds.py 7` first.
Arguments: variants `T:N:uniform|pop:epochs`, e.g. 16:4:pop:30."""
from common import *
import torch
from torch import nn
from chorus_train.nets import NeuMF
from chorus_train.pipeline import K
torch.set_num_threads(2)
ls = load()
fits, inner = cached_fits(ls)


def train(train, als, targets, negatives, sampling, epochs, max_history=64, seed=0):
    init = als.item_factors / (np.linalg.norm(als.item_factors, axis=1).mean() + 1e-9)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = NeuMF(train.shape[1], K, init)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    users = np.flatnonzero(np.diff(train.indptr) >= 2)
    w_all = np.log1p(train.data).astype(np.float32)
    counts = np.asarray((train > 0).sum(axis=0)).ravel().astype(np.float64)
    p = counts ** 0.75
    p /= p.sum()
    for epoch in range(epochs):
        rng.shuffle(users)
        total = 0.0
        for start in range(0, len(users), 128):
            batch = users[start:start + 128]
            hist, hw, pos, mask = [], [], [], []
            for u in batch:
                s, e = train.indptr[u], train.indptr[u + 1]
                items, w = train.indices[s:e], w_all[s:e]
                order = rng.permutation(len(items))
                cut = max(1, int(len(items) * rng.uniform(0.5, 0.8)))
                h, t = order[:cut][:max_history], order[cut:]
                if len(t) == 0:
                    t = order[-1:]
                t = t[:targets]
                hist.append(np.pad(items[h], (0, max_history - len(h))))
                hw.append(np.pad(w[h], (0, max_history - len(h))))
                pos.append(np.pad(items[t], (0, targets - len(t))))
                mask.append(np.pad(np.ones(len(t)), (0, targets - len(t))))
            n = len(batch) * targets * negatives
            neg = (rng.choice(len(p), n, p=p) if sampling == "pop" else rng.integers(0, len(p), n))
            cand = np.concatenate([np.asarray(pos), neg.reshape(len(batch), -1)], axis=1)
            m = np.asarray(mask)
            weight = np.concatenate([m, np.repeat(m, negatives, axis=1)], axis=1)
            labels = np.zeros(cand.shape, dtype=np.float32)
            labels[:, :targets] = 1.0
            user = model.user_vectors(torch.as_tensor(np.asarray(hist), dtype=torch.long),
                                      torch.as_tensor(np.asarray(hw), dtype=torch.float32))
            logits = model.score_vectors(user, model.items(torch.as_tensor(cand, dtype=torch.long)))
            wt = torch.as_tensor(weight, dtype=torch.float32)
            loss = (nn.functional.binary_cross_entropy_with_logits(
                logits, torch.as_tensor(labels), reduction="none") * wt).sum() / wt.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
    model.eval()
    return model


for variant in sys.argv[1:]:
    t, n, sampling, epochs = variant.split(":")
    started = time.time()
    als, _, ii = fits["inner7"]
    f, y = inner_lists((als, train(inner.train, als, int(t), int(n), sampling, int(epochs)), ii), inner)
    als, _, ii = fits["full"]
    tu, tc, tf, _ = test_lists((als, train(ls.train, als, int(t), int(n), sampling, int(epochs)), ii), ls)
    # NCF alone over the hybrid's candidates, then the hybrid.
    alone, _ = ranked_recall(ls, tu, tc, tf[:, :, 0])
    line = f"{variant}: NCF over the candidates {alone:.4f}"
    for std in (False, True):
        r = ranker_recall(f, y, ls, tu, tc, tf, standardise=std)
        line += f"; hybrid std={std} recall {r[0]:.4f} ndcg {r[1]:.4f}"
    log(f"{line} ({time.time() - started:.0f}s)")
