"""PyTorch models and their training loops. Each exports to ONNX with a dynamic batch axis.

- `NeuMF`: Neural Collaborative Filtering (He et al. 2017) with an inductive user side. The user
  is the weighted mean of the item vectors of their history (computed by the caller — the server
  does the same from live feedback — so new users and groups need no retraining). Per candidate
  item vector e and user vector u: GMF branch u*e, MLP branch over [u, e, u*e], fused by a final
  linear layer. ONNX inputs `user` [B, k], `items` [B, C, k]; output `score` [B, C] (logits).
- `ContentNet`: track features -> an embedding in the same item space (for cold-start tracks),
  plus genre and mood heads.
- `HybridRanker`: per-candidate features -> final score."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class NeuMF(nn.Module):
    def __init__(self, n_items: int, k: int, init: np.ndarray | None = None):
        super().__init__()
        self.items = nn.Embedding(n_items, k)
        if init is not None:
            self.items.weight.data.copy_(torch.as_tensor(init, dtype=torch.float32))
        else:
            nn.init.normal_(self.items.weight, std=0.05)
        self.mlp = nn.Sequential(nn.Linear(3 * k, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.out = nn.Linear(k + 32, 1)

    def score_vectors(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """user [B, k], items [B, C, k] -> logits [B, C]."""
        u = user.unsqueeze(1).expand_as(items)
        gmf = u * items
        mlp = self.mlp(torch.cat([u, items, gmf], dim=-1))
        return self.out(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def user_vectors(self, history: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """history [B, H] item ids (padding weight 0), weights [B, H] -> [B, k]."""
        e = self.items(history)
        w = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-9)
        return (e * w.unsqueeze(-1)).sum(dim=1)


class _ScoreOnly(nn.Module):
    """What ncf.onnx contains: scoring from vectors, so cold-start items (content vectors) and
    groups (any user vector) go through the same graph.

    The same function as `NeuMF.score_vectors`, factored per user: the first MLP layer
    W·[u, e, u*e] + b is (W_u·u + b) + (W_e + W_g·diag(u))·e and the GMF half of the output layer
    w·(u*e) is (w*u)·e, so each user's two matrices are formed once and every candidate costs one
    64×64 product instead of 192×64 (and no [B, C, 3k] concatenation is copied). The serving
    threads score a few users over many candidates, where this is ~2.5× fewer operations."""

    def __init__(self, model: NeuMF):
        super().__init__()
        k = model.items.weight.shape[1]
        first, out = model.mlp[0], model.out

        def frozen(w: torch.Tensor) -> torch.Tensor:  # a fixed buffer of the exported graph
            return w.detach().clone().contiguous()

        self.register_buffer("w_user", frozen(first.weight[:, :k].t()))
        self.register_buffer("w_item", frozen(first.weight[:, k:2 * k].t()))
        self.register_buffer("w_gmf", frozen(first.weight[:, 2 * k:].t()))
        self.register_buffer("b_first", frozen(first.bias))
        self.register_buffer("w_out_gmf", frozen(out.weight[0, :k]))
        # [32, 1], not [32]: ONNX Runtime multiplies by a 1-D right operand several times slower.
        self.register_buffer("w_out_mlp", frozen(out.weight[0, k:].unsqueeze(-1)))
        self.register_buffer("b_out", frozen(out.bias))
        self.second = model.mlp[2]

    def forward(self, user, items):
        # [B, k, 64]: per user, item vector -> first hidden layer.
        per_user = self.w_item.unsqueeze(0) + user.unsqueeze(-1) * self.w_gmf.unsqueeze(0)
        hidden = torch.relu(items @ per_user + (user @ self.w_user + self.b_first).unsqueeze(1))
        hidden = torch.relu(self.second(hidden))
        gmf = (items @ (user * self.w_out_gmf).unsqueeze(-1)).squeeze(-1)
        return gmf + (hidden @ self.w_out_mlp).squeeze(-1) + self.b_out


def train_neumf(train: sp.csr_matrix, k: int, init: np.ndarray | None, epochs=30, negatives=4,
                max_history=64, seed=0, log=print) -> NeuMF:
    """Denoising objective: each step, a user's items are split at random into a history (the
    input) and targets (positives), scored against uniformly sampled negatives with BCE."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = NeuMF(train.shape[1], k, init)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    users = np.flatnonzero(np.diff(train.indptr) >= 2)
    weights_all = train.copy()
    weights_all.data = np.log1p(weights_all.data).astype(np.float32)
    for epoch in range(epochs):
        rng.shuffle(users)
        total = 0.0
        for start in range(0, len(users), 128):
            batch = users[start:start + 128]
            hist, hw, pos, neg = [], [], [], []
            for u in batch:
                s, e = train.indptr[u], train.indptr[u + 1]
                items, w = train.indices[s:e], weights_all.data[s:e]
                order = rng.permutation(len(items))
                cut = max(1, int(len(items) * rng.uniform(0.5, 0.8)))
                h, t = order[:cut][:max_history], order[cut:]
                if len(t) == 0:
                    t = order[-1:]
                target = items[rng.choice(t)]
                hist.append(np.pad(items[h], (0, max_history - len(h))))
                hw.append(np.pad(w[h], (0, max_history - len(h))))
                pos.append(target)
                neg.append(rng.integers(0, train.shape[1], negatives))
            hist_t = torch.as_tensor(np.asarray(hist), dtype=torch.long)
            hw_t = torch.as_tensor(np.asarray(hw), dtype=torch.float32)
            cand = torch.as_tensor(np.column_stack([pos, np.asarray(neg)]), dtype=torch.long)
            labels = torch.zeros(cand.shape, dtype=torch.float32)
            labels[:, 0] = 1.0
            user = model.user_vectors(hist_t, hw_t)
            logits = model.score_vectors(user, model.items(cand))
            loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        if epoch % 10 == 9 or epoch == epochs - 1 or epochs < 10:
            log(f"  ncf epoch {epoch + 1}/{epochs}: loss {total / max(1, len(users)):.4f}")
    return model


class ContentNet(nn.Module):
    """Standardisation is part of the graph (`mean`, `std` buffers), so the server passes raw
    features: 11 audio features in Spotify's order, release year, popularity, duration (min).
    The genre classifier is its own wider network (`genre_net`, trained by `train_genre`): sharing
    the embedding's body cost it 3 points of accuracy. Its probabilities are averaged with a
    gradient-boosted tree ensemble when the model is exported (see `export.attach_trees`)."""

    def __init__(self, n_features: int, k: int, n_genres: int, n_moods: int, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.body = nn.Sequential(nn.Linear(n_features, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
        self.embedding = nn.Linear(128, k)
        self.mood = nn.Linear(128, n_moods)
        self.genre_net = nn.Sequential(nn.Linear(n_features, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 256),
                                       nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, n_genres))

    def forward(self, features):
        z = (features - self.mean) / self.std
        h = self.body(z)
        return self.embedding(h), torch.softmax(self.genre_net(z), dim=-1), torch.softmax(self.mood(h), dim=-1)


def train_genre(model: ContentNet, x: np.ndarray, genres: np.ndarray, train_mask: np.ndarray, epochs=150,
                seed=0, log=print) -> None:
    """Trains `model.genre_net` alone: AdamW, cosine schedule, label smoothing 0.05."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = model.genre_net
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    z = (torch.as_tensor(x, dtype=torch.float32) - model.mean) / model.std
    y = torch.as_tensor(genres)
    idx = np.flatnonzero(train_mask)
    for epoch in range(epochs):
        net.train()
        rng.shuffle(idx)
        for start in range(0, len(idx), 256):
            b = idx[start:start + 256]
            loss = nn.functional.cross_entropy(net(z[b]), y[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
        if epoch % 50 == 49:
            log(f"  genre epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}")
    net.eval()


def train_content(x: np.ndarray, target_vectors: np.ndarray, has_vector: np.ndarray, moods: np.ndarray,
                  train_mask: np.ndarray, k: int, n_genres: int, n_moods: int, epochs=60, seed=0,
                  log=print) -> ContentNet:
    """Trains the embedding (cosine to the CF vectors) and the mood head; the genre network is
    trained separately by `train_genre`."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ContentNet(x.shape[1], k, n_genres, n_moods, x[train_mask].mean(0), x[train_mask].std(0) + 1e-6)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-5)
    idx = np.flatnonzero(train_mask)
    xt = torch.as_tensor(x, dtype=torch.float32)
    vt = torch.as_tensor(target_vectors, dtype=torch.float32)
    for epoch in range(epochs):
        rng.shuffle(idx)
        for start in range(0, len(idx), 512):
            b = idx[start:start + 512]
            emb, _, m = model(xt[b])
            loss = nn.functional.nll_loss(torch.log(m + 1e-9), torch.as_tensor(moods[b]))
            hv = torch.as_tensor(has_vector[b])
            if hv.any():
                # Direction matters for dot-product retrieval; cosine loss ignores scale.
                loss = loss + (1 - nn.functional.cosine_similarity(emb[hv], vt[b][hv], dim=-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 20 == 19:
            log(f"  content epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}")
    return model


class HybridRanker(nn.Module):
    """MLP over per-candidate features. Inputs are standardised inside the model with the
    training features' mean and standard deviation (fixed buffers, exported with the graph), so
    callers pass raw features."""

    def __init__(self, n_features: int, hidden: int = 32):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features):  # [B, C, F] -> [B, C]
        return self.net((features - self.mean) / self.std).squeeze(-1)


def train_hybrid(features: np.ndarray, labels: np.ndarray, epochs=200, seed=0, log=print,
                 standardise=False, hidden=32, lr=3e-3) -> HybridRanker:
    """features [N, C, F] candidate lists with labels [N, C] (1 = the list's held-out track);
    listwise softmax loss, so the ranker learns to order candidates within one request."""
    torch.manual_seed(seed)
    model = HybridRanker(features.shape[-1], hidden)
    f = torch.as_tensor(features, dtype=torch.float32)
    if standardise:
        flat = f.reshape(-1, f.shape[-1])
        model.mean.copy_(flat.mean(0))
        model.std.copy_(flat.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(model.net.parameters(), lr=lr, weight_decay=1e-4)
    y = torch.as_tensor(labels, dtype=torch.float32)
    y = y / y.sum(dim=1, keepdim=True).clamp_min(1.0)
    for epoch in range(epochs):
        logits = model(f)
        loss = -(y * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % 50 == 49:
            log(f"  hybrid epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}")
    return model


def export_onnx(module: nn.Module, args: tuple, path: str, input_names, output_names, dynamic_axes):
    module.eval()
    torch.onnx.export(module, args, path, input_names=input_names, output_names=output_names,
                      dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
