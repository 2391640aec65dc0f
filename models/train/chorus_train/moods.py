"""Mood labels, defined by rules on Spotify audio features (no human annotation exists for this
catalog, so the classes are explicit functions of the features, applied in this order):

1. focus     — instrumentalness >= 0.5 and speechiness < 0.1 (little or no voice)
2. energetic — energy >= 0.8
3. calm      — energy < 0.4
4. happy     — valence >= 0.5
5. sad       — everything else (valence < 0.5 with energy in [0.4, 0.8))

The first rule that holds wins. The mood head learns these rules from features; its accuracy on
held-out tracks measures how faithfully the exported model reproduces them."""

from __future__ import annotations

import numpy as np

from .data import AUDIO_FEATURES

MOODS = ["happy", "sad", "energetic", "calm", "focus"]


def mood_labels(features: np.ndarray) -> np.ndarray:
    f = {name: features[:, i] for i, name in enumerate(AUDIO_FEATURES)}
    labels = np.full(len(features), MOODS.index("sad"), dtype=np.int64)
    labels[f["valence"] >= 0.5] = MOODS.index("happy")
    labels[f["energy"] < 0.4] = MOODS.index("calm")
    labels[f["energy"] >= 0.8] = MOODS.index("energetic")
    labels[(f["instrumentalness"] >= 0.5) & (f["speechiness"] < 0.1)] = MOODS.index("focus")
    return labels
