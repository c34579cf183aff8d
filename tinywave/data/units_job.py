"""Fitting a speech tokenizer: pick audio from a manifest, collect feature vectors in
parallel workers, fit one k-means codebook per stream.

Deterministic for a seed: the audio is chosen by a seeded shuffle, vectors come back in
manifest order whatever the worker count, the k-means subsample and init are seeded.
"""

from __future__ import annotations

import functools
import logging
import random
from typing import Any

import numpy as np
import soundfile as sf

from tinywave.audio.features import Analysis
from tinywave.audio.io import AudioError, load_audio
from tinywave.data.manifest import BadItem, ManifestItem
from tinywave.progress import bar
from tinywave.speech.extractor import Features
from tinywave.speech.kmeans import Codebook
from tinywave.speech.pool import ordered_map
from tinywave.speech.tokenizer import chunks

log = logging.getLogger(__name__)
STANDARDIZE = {"hubert": False, "pitch": False, "style": True}  # style dimensions have unrelated scales


def audio_seconds(path: Any) -> float:
    """Duration from the file header (0 when unreadable: loading will report why)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError):
        return 0.0
    return info.frames / info.samplerate if info.samplerate else 0.0


def select_items(items: list[ManifestItem], max_seconds: float, seed: int) -> tuple[list[ManifestItem], float]:
    """A seeded random subset of about ``max_seconds`` of audio (0: everything), and its duration."""
    order = list(items)
    random.Random(seed).shuffle(order)
    chosen, total = [], 0.0
    for item in order:
        if max_seconds and total >= max_seconds:
            break
        chosen.append(item)
        total += audio_seconds(item.audio)
    return chosen, total


class VectorCollector:
    """Per item: load the audio, cut 100 s chunks, return each stream's vectors (or a BadItem)."""

    def __init__(self, features: dict[str, Features], min_seconds: float = 0.08):
        self.features = features
        self.min_seconds = min_seconds

    def __call__(self, item: ManifestItem) -> dict[str, np.ndarray] | BadItem:
        try:
            wav, _ = load_audio(item.audio, self.min_seconds)
        except AudioError as exc:
            return BadItem(item.id, str(item.audio), exc.reason, exc.detail)
        out: dict[str, list[np.ndarray]] = {name: [] for name in self.features}
        for chunk in chunks(wav):
            an = Analysis(chunk)
            for name, feats in self.features.items():
                out[name].append(feats.vectors(an))
        return {name: np.concatenate(parts) for name, parts in out.items() if parts}


def collect_vectors(items: list[ManifestItem], features: dict[str, Features], workers: int,
                    min_seconds: float = 0.08) -> tuple[dict[str, np.ndarray], list[BadItem]]:
    """Stacked vectors per stream over all items (in order) and the items that failed."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in features}
    bad: list[BadItem] = []
    results = ordered_map(functools.partial(VectorCollector, features, min_seconds), items, workers)
    for res in bar(results, total=len(items), desc="features", unit="utt"):
        if isinstance(res, BadItem):
            bad.append(res)
            continue
        for name, vecs in res.items():
            parts[name].append(vecs)
    stacked = {name: np.concatenate(p).astype(np.float32) for name, p in parts.items() if p}
    missing = sorted(set(features) - set(stacked))
    if missing:
        raise ValueError(f"no usable audio to fit {missing}: all {len(items)} selected items failed (first: {bad[0].detail if bad else 'none'})")
    return stacked, bad


def fit_codebooks(vectors: dict[str, np.ndarray], n_codes: dict[str, int], seed: int, max_points: int) -> dict[str, Codebook]:
    """One k-means codebook per stream (style standardized), seeded."""
    books = {}
    for name, x in vectors.items():
        log.info("fitting %d %s codes on %d vectors of dim %d", n_codes[name], name, min(len(x), max_points), x.shape[1])
        books[name] = Codebook.fit(x, n_codes[name], seed, max_points, standardize=STANDARDIZE[name], what=f"{name} vectors")
    return books
