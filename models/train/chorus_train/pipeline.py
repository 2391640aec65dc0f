"""One command: train the shipped models on spotify-songs, export them to ONNX, write
models/manifest.json, run the offline evaluation and write docs/QUALITY.md.

    python -m chorus_train.pipeline --spotify PATH/spotify_songs.csv --lastfm PATH/lastfm-2k \
        --models-dir ../../models --quality ../../docs/QUALITY.md

Everything is seeded; rerunning gives the same split and (up to floating-point nondeterminism
in PyTorch's CPU kernels) the same models and metrics."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from . import lastfm_eval, lastfm_groups, spotify_eval
from .baselines import ImplicitALS, ItemKNN, ItemPop
from .data import AUDIO_FEATURES, GENRES, load_lastfm, load_spotify
from .ease import EASE
from .item_item import ItemItem, union_candidates
from .moods import MOODS, mood_labels
from .export import GENRE, MLP_GENRE, attach_trees
from .nets import export_onnx, train_content, train_genre, train_hybrid, train_neumf
from .quality import LASTFM_WITHOUT_ITEM_ITEM, SERVED_LASTFM, write_quality

K = 64
CANDIDATES = 300
LASTFM_CANDIDATES = 200
# Of the candidates, at most this share comes from the item-item neighbours (the rest: the dot
# product). On lastfm-2k 0.5 beat 0.75 and 1.0 (Recall@20 0.2921, 0.2914, 0.2911).
ITEM_ITEM_SHARE = 0.5
NEIGHBOURS = 100
LASTFM_EASE_LAMBDA = 3000.0
SPOTIFY_EASE_LAMBDA = 500.0
HYBRID_FEATURES = ["ncf_score", "retrieval_score", "content_similarity", "popularity", "freshness",
                   "diversity", "group_agreement", "item_item_score"]
CONTENT_INPUTS = AUDIO_FEATURES + ["release_year", "popularity", "duration_min"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def content_inputs(d) -> np.ndarray:
    year = np.where(d.year > 0, d.year, np.median(d.year[d.year > 0])).astype(np.float32)
    return np.column_stack([d.features, year, d.popularity, d.duration_ms / 60000.0]).astype(np.float32)


class Served:
    """The serving pipeline as the server will run it: user vector = weighted mean of history
    item vectors; candidates from the item-item neighbours and the dot product over all item
    vectors (cold tracks: content vectors), merged by `union_candidates`; NCF scores the
    candidates; the hybrid ranker orders them from per-candidate features."""

    def __init__(self, ncf, item_vectors, content_emb, popularity, year, item_item, hybrid=None):
        self.ncf, self.vectors, self.item_item, self.hybrid = ncf, item_vectors, item_item, hybrid
        self.content = content_emb / (np.linalg.norm(content_emb, axis=1, keepdims=True) + 1e-9)
        self.unit = item_vectors / (np.linalg.norm(item_vectors, axis=1, keepdims=True) + 1e-9)
        self.popularity = popularity / 100.0
        self.freshness = np.clip((year - 1950) / 70.0, 0, 1.2)

    def features(self, seeds: np.ndarray, weights: np.ndarray | None = None):
        w = np.ones(len(seeds)) if weights is None else weights
        user = (self.vectors[seeds] * (w / w.sum())[:, None]).sum(0)
        retrieval = self.vectors @ user
        retrieval[seeds] = -np.inf
        item_item = self.item_item.score(seeds, w)
        item_item[seeds] = -np.inf
        cand = union_candidates(item_item, retrieval, CANDIDATES, round(CANDIDATES * ITEM_ITEM_SHARE))
        with torch.no_grad():
            ncf = self.ncf.score_vectors(torch.as_tensor(user[None], dtype=torch.float32),
                                         torch.as_tensor(self.vectors[cand][None], dtype=torch.float32))[0].numpy()
        taste = self.content[seeds].mean(0)
        content_sim = self.content[cand] @ (taste / (np.linalg.norm(taste) + 1e-9))
        diversity = 1.0 - (self.unit[cand] @ self.unit[seeds].T).max(axis=1)
        agreement = self.unit[cand] @ (user / (np.linalg.norm(user) + 1e-9))
        f = np.column_stack([ncf, retrieval[cand], content_sim, self.popularity[cand], self.freshness[cand],
                             diversity, agreement, np.maximum(item_item[cand], 0.0)]).astype(np.float32)
        return cand, f

    def scores(self, seeds: np.ndarray, use: str) -> np.ndarray:
        if use == "retrieval":
            # The dot product alone, over every track (the first stage without item-item).
            return self.vectors @ self.vectors[seeds].mean(0)
        cand, f = self.features(seeds)
        out = np.full(len(self.vectors), -1e9)
        if use == "ncf":
            out[cand] = f[:, 0]
        else:
            with torch.no_grad():
                out[cand] = self.hybrid(torch.as_tensor(f[None]))[0].numpy()
        return out


class NcfReranker:
    """Two-stage scoring for the lastfm evaluation: iALS retrieves 200 candidates, NCF orders
    them from the user's history (log1p listen counts as weights). Items outside the candidates
    score below every candidate, which also makes the sampled metrics pessimistic for NCF."""

    def __init__(self, ncf, retrieval, train, candidates=200):
        self.ncf, self.retrieval, self.train, self.n = ncf, retrieval, train, candidates

    def score(self, users):
        base = self.retrieval.score(users)
        base[self.train[users].nonzero()] = -np.inf
        cand = np.argpartition(-base, self.n, axis=1)[:, :self.n]
        out = np.full(base.shape, -1e9)
        with torch.no_grad():
            for r, u in enumerate(users):
                s, e = self.train.indptr[u], self.train.indptr[u + 1]
                hist = torch.as_tensor(self.train.indices[s:e][None], dtype=torch.long)
                w = torch.as_tensor(np.log1p(self.train.data[s:e])[None], dtype=torch.float32)
                user = self.ncf.user_vectors(hist, w)
                items = self.ncf.items(torch.as_tensor(cand[r][None], dtype=torch.long))
                out[r, cand[r]] = self.ncf.score_vectors(user, items)[0].numpy()
        return out


def lastfm_features(ncf, retrieval, train, users, item_item=None, candidates=LASTFM_CANDIDATES,
                    from_item_item=round(LASTFM_CANDIDATES * ITEM_ITEM_SHARE), given=None):
    """Hybrid features for lastfm users, as the server computes them: candidates from the item-item
    neighbours and the dot product (`union_candidates`), the same eight features, with the two that
    need track metadata (content similarity, freshness) at 0 — artists have no audio features.
    Without `item_item`, the candidates are the dot product's alone and its score is 0. `given`
    (users × n item ids) replaces the candidates: a group's pool, scored for each member."""
    base = retrieval.score(users)
    seen = train[users].nonzero()
    base[seen] = -np.inf
    x = train[users].copy()
    x.data = np.log1p(x.data)
    extra = item_item.score_users(x) if item_item is not None else np.zeros_like(base)
    extra[seen] = -np.inf
    if given is not None:
        cand = np.asarray(given)
        candidates = cand.shape[1]
    else:
        cand = np.stack([union_candidates(extra[r], base[r], candidates,
                                          from_item_item if item_item is not None else 0)
                         for r in range(len(users))])
    counts = np.log1p(np.asarray((train > 0).sum(axis=0)).ravel())
    popularity = counts / counts.max()
    unit = retrieval.item_factors / (np.linalg.norm(retrieval.item_factors, axis=1, keepdims=True) + 1e-9)
    feats = np.zeros((len(users), candidates, len(HYBRID_FEATURES)), dtype=np.float32)
    with torch.no_grad():
        for r, u in enumerate(users):
            s, e = train.indptr[u], train.indptr[u + 1]
            hist = train.indices[s:e]
            w = torch.as_tensor(np.log1p(train.data[s:e])[None], dtype=torch.float32)
            user = ncf.user_vectors(torch.as_tensor(hist[None], dtype=torch.long), w)
            items = ncf.items(torch.as_tensor(cand[r][None], dtype=torch.long))
            uf = retrieval.user_factors[u]
            feats[r, :, 0] = ncf.score_vectors(user, items)[0].numpy()
            feats[r, :, 1] = base[r, cand[r]]
            feats[r, :, 3] = popularity[cand[r]]
            feats[r, :, 5] = 1.0 - (unit[cand[r]] @ unit[hist].T).max(axis=1) if len(hist) else 1.0
            feats[r, :, 6] = unit[cand[r]] @ (uf / (np.linalg.norm(uf) + 1e-9))
            feats[r, :, 7] = np.maximum(extra[r, cand[r]], 0.0)
    return cand, feats


class _Ranked:
    def __init__(self, n_items, users, cand, scores):
        self.n, self.rows = n_items, {int(u): (cand[r], scores[r]) for r, u in enumerate(users)}

    def score(self, users):
        out = np.full((len(users), self.n), -1e9)
        for r, u in enumerate(users):
            cand, scores = self.rows[int(u)]
            out[r, cand] = scores
        return out


# Tuned on the inner validation split (experiments/ials_tune.py; README there): regularization
# 50 and confidence 2·log1p(plays) reach validation Recall@20 0.2595 against 0.2204 for the
# earlier (0.1, 10, 10 iterations), and test 0.2837 against 0.2415 (`implicit` 0.7.2: 0.2727).
def lastfm_als(train) -> ImplicitALS:
    return ImplicitALS(K, 50.0, 2.0, 1.0, iterations=15).fit(train)


def lastfm_ncf(train, als: ImplicitALS, epochs: int, log):
    """NCF on lastfm, its item vectors started from iALS's (scaled to unit mean norm)."""
    init = als.item_factors / (np.linalg.norm(als.item_factors, axis=1).mean() + 1e-9)
    ncf = train_neumf(train, K, init, epochs=epochs, log=log)
    ncf.eval()
    return ncf


def lastfm_item_item(train) -> ItemItem:
    return ItemItem.from_ease(EASE(LASTFM_EASE_LAMBDA).fit(train), NEIGHBOURS)


class ItemItemOnly:
    """The item-item neighbours alone as a lastfm model (histories weighted log1p)."""

    def __init__(self, item_item: ItemItem, train):
        self.item_item, self.x = item_item, train.copy()
        self.x.data = np.log1p(self.x.data)

    def score(self, users):
        return self.item_item.score_users(self.x[users])


class LastfmInner:
    """The stacked hybrid's training side, fitted once: an inner 90/10 split of each user's
    training artists, and iALS, NCF and the item-item neighbours refitted on the 90%."""

    def __init__(self, ls, epochs, log):
        self.split = lastfm_eval.split_per_user(ls.train, test_fraction=0.1, seed=7)
        self.als = lastfm_als(self.split.train)
        self.ncf = lastfm_ncf(self.split.train, self.als, epochs, log)
        self.item_item = lastfm_item_item(self.split.train)


def lastfm_hybrid(ls, inner: LastfmInner, als, ncf, item_item: ItemItem | None, log):
    """Stacking without leakage: the ranker learns from the inner split's 10% with features from
    the models fitted on its 90%; at test time it scores the full-data models' features. Without
    `item_item` (the full-data neighbours), neither side uses the item-item source."""
    train = inner.split.train
    users = np.asarray([u for u, t in enumerate(inner.split.test) if t])
    cand, feats = lastfm_features(inner.ncf, inner.als, train, users,
                                  item_item=inner.item_item if item_item is not None else None)
    labels = np.stack([np.isin(cand[r], list(inner.split.test[u])) for r, u in enumerate(users)]).astype(np.float32)
    keep = labels.sum(axis=1) > 0
    ranker = train_hybrid(feats[keep], labels[keep], epochs=300, log=log)
    ranker.eval()
    with torch.no_grad():
        inner_scores = ranker(torch.as_tensor(feats[keep])).numpy()
    test_users = np.asarray([u for u, t in enumerate(ls.test) if t])
    cand, feats = lastfm_features(ncf, als, ls.train, test_users, item_item=item_item)
    with torch.no_grad():
        scores = ranker(torch.as_tensor(feats)).numpy()
    ranked = _Ranked(ls.train.shape[1], test_users, cand, scores)
    ranked.ranker = ranker
    # The ranker's scores on the lists it learned from, with their labels: what the group
    # benchmark fits its Platt scaling to (as the server's is fitted to the ranker's scores).
    ranked.inner = (inner_scores.ravel(), labels[keep].ravel())
    return ranked


def evaluate_lastfm(path: str, epochs: int, log) -> dict:
    """Every lastfm-2k row of docs/QUALITY.md, each model fitted once."""
    lf = load_lastfm(path)
    ls = lastfm_eval.split_per_user(lf.matrix)
    res = {}
    res["ItemPop"] = lastfm_eval.evaluate(ItemPop().fit(ls.train), ls)
    res["ItemKNN"] = lastfm_eval.evaluate(ItemKNN(100).fit(ls.train), ls)
    als = lastfm_als(ls.train)
    res["iALS"] = lastfm_eval.evaluate(als, ls)
    for lam in (500.0, 1500.0, LASTFM_EASE_LAMBDA):
        ease = EASE(lam).fit(ls.train)
        res[f"EASE (lambda={lam:g})"] = lastfm_eval.evaluate(ease, ls)
        if lam == LASTFM_EASE_LAMBDA:
            item_item = ItemItem.from_ease(ease, NEIGHBOURS)
    res[f"item-item neighbours (EASE lambda={LASTFM_EASE_LAMBDA:g}, top {NEIGHBOURS})"] = lastfm_eval.evaluate(
        ItemItemOnly(item_item, ls.train), ls)
    log("  NCF on lastfm (re-ranking the top 200 iALS candidates)")
    ncf = lastfm_ncf(ls.train, als, epochs, log)
    res["NCF (iALS top-200, re-ranked)"] = lastfm_eval.evaluate(NcfReranker(ncf, als, ls.train), ls)
    log("  hybrid on lastfm as served (item-item + iALS candidates; ranker trained on an inner 90/10 split)")
    inner = LastfmInner(ls, epochs, log)
    served = lastfm_hybrid(ls, inner, als, ncf, item_item, log)
    res[SERVED_LASTFM] = lastfm_eval.evaluate(served, ls)
    log("  groups of lastfm listeners, ranked as the server ranks a room")
    groups, _ = lastfm_groups.run(ls, als, ncf, item_item, served, lastfm_features, log)
    log("  the same without the item-item source (iALS candidates only, item-item feature 0)")
    res[LASTFM_WITHOUT_ITEM_ITEM] = lastfm_eval.evaluate(lastfm_hybrid(ls, inner, als, ncf, None, log), ls)
    for name, r in res.items():
        log(f"  {name}: recall@20 {r['recall@20']:.4f}")
    return res, groups


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def io_spec(path: str) -> dict:
    model = onnx.load(path)
    def spec(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                        "shape": [d.dim_param or d.dim_value for d in t.shape.dim]})
        return out
    return {"inputs": spec(model.graph.input), "outputs": spec(model.graph.output)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spotify", required=True)
    ap.add_argument("--lastfm", required=True)
    ap.add_argument("--models-dir", required=True)
    ap.add_argument("--quality", required=True)
    ap.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    # NCF on spotify-songs memorises its ~20k playlist-track pairs after a few epochs (training
    # loss 0.41 -> 0.01 between epochs 10 and 30, held-out NDCG@20 0.046 -> 0.031), so it stops
    # early; lastfm-2k has four times the data per item and trains longer.
    spotify_epochs = 3 if args.quick else 6
    epochs = 5 if args.quick else 30
    results: dict = {"spotify": {}, "lastfm": {}, "genre": {}, "mood": {}}

    log("spotify-songs: loading and splitting")
    d = load_spotify(args.spotify)
    s = spotify_eval.split(d)
    log(f"  {d.n_tracks} tracks, {len(d.playlists)} playlists, {len(s.heldout_playlists)} held out, "
        f"{int(s.seen.sum())} tracks seen in training")

    log("iALS (initial item vectors)")
    als = ImplicitALS(K, 1.0, 20.0, 1.0, iterations=10).fit(s.train)
    init = als.item_factors / (np.linalg.norm(als.item_factors[s.seen], axis=1).mean() + 1e-9)
    log("NCF")
    ncf = train_neumf(s.train, K, init, epochs=spotify_epochs, log=log)
    ncf.eval()
    cf_vectors = ncf.items.weight.detach().numpy().copy()

    log("content model")
    out = args.models_dir
    os.makedirs(out, exist_ok=True)
    x = content_inputs(d)
    moods = mood_labels(d.features)
    content = train_content(x, cf_vectors, s.seen, moods, s.seen, K, len(GENRES), len(MOODS),
                            epochs=20 if args.quick else 60, log=log)
    train_genre(content, x, d.genre, s.seen, epochs=50 if args.quick else 150, log=log)
    content.eval()
    log("gradient-boosted trees (baseline, and half of the exported genre output)")
    gbt = HistGradientBoostingClassifier(random_state=0).fit(x[s.seen], d.genre[s.seen])
    torch_path = os.path.join(out, "content.torch.onnx")
    export_onnx(content, (torch.zeros(1, x.shape[1]),), torch_path, ["features"],
                ["embedding", MLP_GENRE, "mood_probabilities"],
                {"features": {0: "batch"}, "embedding": {0: "batch"}, MLP_GENRE: {0: "batch"},
                 "mood_probabilities": {0: "batch"}})
    attach_trees(torch_path, gbt, x.shape[1], os.path.join(out, "content.onnx"))
    os.remove(torch_path)
    # Everything downstream uses the exported model's own outputs.
    session = onnxruntime.InferenceSession(os.path.join(out, "content.onnx"), providers=["CPUExecutionProvider"])
    emb, genre_probs, mood_probs = session.run(["embedding", GENRE, "mood_probabilities"], {"features": x})
    with torch.no_grad():
        network_genre = content(torch.as_tensor(x))[1].numpy()
    scale = np.linalg.norm(cf_vectors[s.seen], axis=1).mean() / (np.linalg.norm(emb, axis=1).mean() + 1e-9)
    item_vectors = np.where(s.seen[:, None], cf_vectors, emb * scale).astype(np.float32)

    log("item-item neighbours (EASE on the training playlists)")
    item_item = ItemItem.from_ease(EASE(SPOTIFY_EASE_LAMBDA, weighting="binary").fit(s.train), NEIGHBOURS)
    log(f"  {item_item.nnz} neighbour weights")
    served = Served(ncf, item_vectors, emb, d.popularity, d.year.astype(np.float32), item_item)
    log("hybrid ranker (trained on validation tracks of training playlists)")
    feats, labels = [], []
    for p in range(len(d.playlists)):
        if not s.validation[p]:
            continue
        seeds = s.train.indices[s.train.indptr[p]:s.train.indptr[p + 1]]
        if len(seeds) == 0:
            continue
        cand, f = served.features(seeds)
        y = np.isin(cand, list(s.validation[p])).astype(np.float32)
        if y.sum() > 0:
            feats.append(f)
            labels.append(y)
    hybrid = train_hybrid(np.stack(feats), np.stack(labels), epochs=100 if args.quick else 300, log=log)
    hybrid.eval()
    served.hybrid = hybrid

    log("evaluating playlist continuation")
    pop = np.asarray(s.train.sum(axis=0)).ravel() + d.popularity / 1000.0
    z = (x - x[s.seen].mean(0)) / (x[s.seen].std(0) + 1e-9)
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-9
    sp_res = results["spotify"]
    sp_res["ItemPop"] = spotify_eval.evaluate(lambda seeds: pop, s)
    sp_res["content-kNN"] = spotify_eval.evaluate(lambda seeds: z @ z[seeds].mean(0), s)
    sp_res["iALS"] = spotify_eval.evaluate(
        lambda seeds: als.item_factors @ als.user_vector(seeds, np.ones(len(seeds))), s)
    sp_res["item-item neighbours"] = spotify_eval.evaluate(lambda seeds: item_item.score(seeds), s)
    sp_res["retrieval (NCF+content vectors)"] = spotify_eval.evaluate(lambda seeds: served.scores(seeds, "retrieval"), s)
    sp_res["NCF"] = spotify_eval.evaluate(lambda seeds: served.scores(seeds, "ncf"), s)
    sp_res["hybrid (served)"] = spotify_eval.evaluate(lambda seeds: served.scores(seeds, "hybrid"), s)
    for name, r in sp_res.items():
        log(f"  {name}: ndcg@20 {r['ndcg@20']:.4f} unseen ndcg@20 {r['unseen_ndcg@20']:.4f}")

    log("genre and mood on held-out tracks (not seen in training)")
    test = ~s.seen
    for name, pred in (("content.onnx (network + trees)", genre_probs.argmax(1)),
                       ("genre network alone", network_genre.argmax(1)),
                       ("gradient-boosted trees", gbt.predict(x))):
        results["genre"][name] = {
            "accuracy": float(accuracy_score(d.genre[test], pred[test])),
            "macro_f1": float(f1_score(d.genre[test], pred[test], average="macro")),
            "confusion": confusion_matrix(d.genre[test], pred[test], labels=range(len(GENRES))).tolist(),
        }
    results["mood"] = {"accuracy": float(accuracy_score(moods[test], mood_probs.argmax(1)[test])),
                       "tracks": int(test.sum())}

    log("lastfm-2k: full-ranking evaluation")
    results["lastfm"], results["lastfm_groups"] = evaluate_lastfm(args.lastfm, epochs, log)

    log("exporting ONNX models")
    from .nets import _ScoreOnly
    export_onnx(_ScoreOnly(ncf), (torch.zeros(1, K), torch.zeros(1, 3, K)), os.path.join(out, "ncf.onnx"),
                ["user", "items"], ["score"], {"user": {0: "batch"}, "items": {0: "batch", 1: "candidates"},
                                               "score": {0: "batch", 1: "candidates"}})
    export_onnx(hybrid, (torch.zeros(1, 3, len(HYBRID_FEATURES)),), os.path.join(out, "hybrid.onnx"), ["features"],
                ["score"], {"features": {0: "batch", 1: "candidates"}, "score": {0: "batch", 1: "candidates"}})
    item_vectors.astype("<f4").tofile(os.path.join(out, "item_vectors.f32"))
    item_item.save(os.path.join(out, "item_neighbours.bin"))
    with open(os.path.join(out, "item_ids.txt"), "w") as f:
        f.write("\n".join(d.track_ids) + "\n")

    # A fixed sample the Rust test reproduces: content outputs for 8 tracks, NCF and hybrid scores
    # for 2 held-out playlists' candidate lists.
    sample_tracks = np.arange(0, d.n_tracks, d.n_tracks // 8)[:8]
    sample_playlists = [int(p) for p in s.heldout_playlists[:2]]
    sample = {"content": {"track_ids": [d.track_ids[i] for i in sample_tracks], "features": x[sample_tracks].tolist(),
                          "embedding": emb[sample_tracks].tolist(), "genre_probabilities": genre_probs[sample_tracks].tolist(),
                          "mood_probabilities": mood_probs[sample_tracks].tolist()}, "playlists": []}
    for p in sample_playlists:
        cand, f = served.features(s.seeds[p])
        with torch.no_grad():
            ncf_scores = f[:, 0].tolist()
            hybrid_scores = hybrid(torch.as_tensor(f[None]))[0].numpy().tolist()
        sample["playlists"].append({"seed_track_ids": [d.track_ids[i] for i in s.seeds[p]], "candidates": CANDIDATES,
                                    "candidate_track_ids": [d.track_ids[i] for i in cand[:50]],
                                    "features": f[:50].tolist(), "ncf": ncf_scores[:50], "hybrid": hybrid_scores[:50]})
    # And the genre/mood metrics on the first 1,000 held-out tracks, which the Rust test recomputes
    # through ONNX Runtime and compares with the numbers recorded here.
    held = np.flatnonzero(test)[:1000]
    sample["classification"] = {
        "features": x[held].tolist(),
        "genres": d.genre[held].tolist(),
        "moods": moods[held].tolist(),
        "genre_accuracy": float((genre_probs.argmax(1)[held] == d.genre[held]).mean()),
        "mood_accuracy": float((mood_probs.argmax(1)[held] == moods[held]).mean()),
    }
    with open(os.path.join(out, "sample.json"), "w") as f:
        json.dump(sample, f)

    command = ("scripts/models.sh  # = python -m chorus_train.pipeline --spotify <spotify_songs.csv> "
               "--lastfm <lastfm-2k> --models-dir models --quality docs/QUALITY.md")
    split_info = {"data": "spotify-songs (TidyTuesday 2020-01-21), playlists as users",
                  "seed": spotify_eval.SEED,
                  "heldout_playlists": [d.playlist_ids[p] for p in s.heldout_playlists],
                  "validation": "20% of the tracks of every other playlist (seeded); trains the hybrid ranker only"}
    def entry(file, extra):
        path = os.path.join(out, file)
        return {"file": file, "sha256": sha256(path), **io_spec(path), "id_mapping": "item_ids.txt",
                "training_command": command, "data": split_info["data"], "split_seed": spotify_eval.SEED, **extra}
    hyb = sp_res["hybrid (served)"]
    manifest = {
        "version": 1,
        "embedding_dim": K,
        "items": {"count": d.n_tracks, "ids": {"file": "item_ids.txt", "sha256": sha256(os.path.join(out, "item_ids.txt"))},
                  "vectors": {"file": "item_vectors.f32", "dtype": "float32", "layout": "row-major [count, embedding_dim]",
                              "sha256": sha256(os.path.join(out, "item_vectors.f32"))},
                  "neighbours": {"file": "item_neighbours.bin", "sha256": sha256(os.path.join(out, "item_neighbours.bin")),
                                 "layout": "little-endian uint32 indptr[count + 1], uint32 indices[nnz], float32 weights[nnz]; "
                                           "row h: the items h points to, strongest first",
                                 "model": f"EASE (lambda={SPOTIFY_EASE_LAMBDA:g}, binary playlist membership) on the training "
                                          f"playlists, each item's {NEIGHBOURS} largest positive weights",
                                 "nnz": item_item.nnz, "per_item": NEIGHBOURS, "candidate_share": ITEM_ITEM_SHARE}},
        "split": split_info,
        "sample": {"file": "sample.json", "sha256": sha256(os.path.join(out, "sample.json"))},
        "models": {
            "ncf": entry("ncf.onnx", {"user_vector": "weighted mean of the history's item vectors (weights log1p of counts)",
                                      "metrics": {"spotify_continuation": sp_res["NCF"]}}),
            "content": entry("content.onnx", {"feature_order": CONTENT_INPUTS, "genres": GENRES, "moods": MOODS,
                                              "metrics": {"genre": {k: v for k, v in results["genre"]["content.onnx (network + trees)"].items() if k != "confusion"},
                                                          "mood_accuracy": results["mood"]["accuracy"]}}),
            "hybrid": entry("hybrid.onnx", {"feature_order": HYBRID_FEATURES, "candidates": CANDIDATES,
                                            "metrics": {"spotify_continuation": hyb}}),
        },
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    write_quality(args.quality, results, manifest)
    log(f"wrote {out}/manifest.json and {args.quality}")


if __name__ == "__main__":
    main()
