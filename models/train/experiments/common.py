"""Shared helpers for the lastfm-2k probes: the same split and metrics as docs/QUALITY.md."""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np
from chorus_train import lastfm_eval
from chorus_train.data import load_lastfm
def log(m): print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)
def load():
    lf = load_lastfm(os.environ.get("LASTFM", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../shared/datasets/lastfm-2k")))
    return lastfm_eval.split_per_user(lf.matrix)
def recall(model, ls, k=20):
    r = lastfm_eval.evaluate(model, ls)
    return r["recall@20"], r["ndcg@20"]
