"""Data loaders: spotify-songs (catalog + playlists as implicit-feedback users), hetrec2011
lastfm-2k (users x artists with listen counts) and the generic interactions CSV
(`user_id,track_id,weight,timestamp`, the format `chorus generate` writes).

Everything comes back as plain numpy arrays and Python lists, indexed densely from 0."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

AUDIO_FEATURES = [
    "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
    "instrumentalness", "liveness", "valence", "tempo",
]
GENRES = ["edm", "latin", "pop", "r&b", "rap", "rock"]


@dataclass
class SpotifyData:
    track_ids: list[str]                      # dense index -> Spotify id
    features: np.ndarray                      # [n_tracks, 11] raw audio features
    popularity: np.ndarray                    # [n_tracks] 0..100
    year: np.ndarray                          # [n_tracks] release year (0 if unknown)
    duration_ms: np.ndarray                   # [n_tracks]
    genre: np.ndarray                         # [n_tracks] index into GENRES of the first playlist genre
    playlist_ids: list[str]                   # dense index -> playlist id
    playlists: list[np.ndarray] = field(default_factory=list)  # track indices per playlist, in file order

    @property
    def n_tracks(self) -> int:
        return len(self.track_ids)


def load_spotify(path: str) -> SpotifyData:
    index: dict[str, int] = {}
    playlist_index: dict[str, int] = {}
    feats, pop, year, dur, genre = [], [], [], [], []
    members: list[list[int]] = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            tid = row["track_id"]
            if tid not in index:
                index[tid] = len(index)
                feats.append([float(row[k]) for k in AUDIO_FEATURES])
                pop.append(float(row["track_popularity"]))
                date = row["track_album_release_date"]
                year.append(int(date[:4]) if date[:4].isdigit() else 0)
                dur.append(float(row["duration_ms"]))
                genre.append(GENRES.index(row["playlist_genre"]))
            pid = row["playlist_id"]
            if pid not in playlist_index:
                playlist_index[pid] = len(playlist_index)
                members.append([])
            t = index[tid]
            plist = members[playlist_index[pid]]
            if t not in plist:
                plist.append(t)
    return SpotifyData(
        track_ids=list(index),
        features=np.asarray(feats, dtype=np.float32),
        popularity=np.asarray(pop, dtype=np.float32),
        year=np.asarray(year, dtype=np.int32),
        duration_ms=np.asarray(dur, dtype=np.float32),
        genre=np.asarray(genre, dtype=np.int64),
        playlist_ids=list(playlist_index),
        playlists=[np.asarray(m, dtype=np.int64) for m in members],
    )


@dataclass
class Interactions:
    """A users x items matrix of positive weights (CSR), with the original ids."""

    matrix: sp.csr_matrix
    user_ids: list[str]
    item_ids: list[str]


def load_lastfm(directory: str) -> Interactions:
    """`user_artists.dat`: tab-separated `userID artistID weight` (listen counts). The files mix
    CRLF and ISO-8859-1 in places, so they are read as Latin-1 with universal newlines."""
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    rows, cols, vals = [], [], []
    with open(os.path.join(directory, "user_artists.dat"), encoding="latin-1", newline=None) as f:
        header = f.readline().split()
        assert header[:3] == ["userID", "artistID", "weight"], header
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue
            u, i, w = parts
            rows.append(users.setdefault(u, len(users)))
            cols.append(items.setdefault(i, len(items)))
            vals.append(float(w))
    m = sp.csr_matrix((vals, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    m.sum_duplicates()
    return Interactions(m, list(users), list(items))


def load_generic_interactions(path: str) -> Interactions:
    """`user_id,track_id,weight,timestamp` with a header; weights of repeated pairs add up."""
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    rows, cols, vals = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"user_id", "track_id", "weight"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for row in reader:
            rows.append(users.setdefault(row["user_id"], len(users)))
            cols.append(items.setdefault(row["track_id"], len(items)))
            vals.append(float(row["weight"]))
    m = sp.csr_matrix((vals, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
    m.sum_duplicates()
    return Interactions(m, list(users), list(items))
