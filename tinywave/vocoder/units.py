"""What a vocoder reads: aligned unit streams, from a speech string or a dict of streams.

A speech string (``[St..][Pi..][Hu..]...``) holds *deduplicated* phonetic units; its
pitch and style values are aligned one per Hu (``string_to_units``), and durations must
be predicted. A dict from ``SpeechTokenizer.encode_units`` holds *raw* frames at each
stream's own rate (hubert 25 Hz, pitch 12.5 Hz, style 1 Hz), one frame per unit hop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tinywave.speech.format import string_to_units


@dataclass(frozen=True)
class Units:
    """Unit streams for one utterance. ``deduplicated``: pitch/style aligned one per Hu."""

    hubert: tuple[int, ...]
    pitch: tuple[int, ...] | None = None
    style: tuple[int, ...] | None = None
    deduplicated: bool = False

    def __len__(self) -> int:
        return len(self.hubert)


def _ints(values: Sequence[int] | str | None, name: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):  # SpiritLM's "12 7 7 40" stream strings
        values = values.split()
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"unit stream '{name}' must hold integers, got {str(values)[:60]!r}") from None
    return tuple(v for v in out if v >= 0)  # negative codes are dropped, as the reference does


def as_units(units: "Units | str | dict[str, Sequence[int] | str]", deduplicated: bool | None = None, seed: int = 0) -> Units:
    """Normalize a speech string, a dict of streams or ``Units`` to ``Units``.

    ``deduplicated`` defaults to True for strings and False for dicts (raw frames).
    """
    if isinstance(units, Units):
        return units
    if isinstance(units, str):
        streams = string_to_units(units, seed=seed)
        dedup = True if deduplicated is None else deduplicated
        return Units(_ints(streams["hubert"], "hubert"), _ints(streams.get("pitch"), "pitch"), _ints(streams.get("style"), "style"), dedup)
    if isinstance(units, dict):
        if "hubert" not in units:
            raise ValueError(f"unit dict needs a 'hubert' stream, got keys {sorted(units)}")
        return Units(_ints(units["hubert"], "hubert"), _ints(units.get("pitch"), "pitch"), _ints(units.get("style"), "style"),
                     bool(deduplicated))
    raise ValueError(f"units must be a speech string or a dict of streams, got {type(units).__name__}")


def deduplicate(units: Units, f0_ratio: float = 2, style_ratio: float = 25) -> tuple[Units, np.ndarray]:
    """Collapse runs of raw hubert frames: (deduplicated units, run lengths (N,)).

    Pitch and style (``f0_ratio`` / ``style_ratio`` hubert frames per code) are re-aligned
    to one value per kept unit: the value at its first frame.
    """
    if units.deduplicated:
        raise ValueError("units are already deduplicated")
    h = np.asarray(units.hubert, dtype=np.int64)
    if len(h) == 0:
        return Units((), None, None, True), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], h[1:] != h[:-1]]))  # (N,) first frame of each run
    runs = np.diff(np.concatenate([starts, [len(h)]]))

    def at(stream: tuple[int, ...] | None, ratio: float) -> tuple[int, ...] | None:
        if stream is None:
            return None
        s = np.asarray(stream)
        return tuple(int(s[min(int(i // ratio), len(s) - 1)]) for i in starts)

    return Units(tuple(int(v) for v in h[starts]), at(units.pitch, f0_ratio), at(units.style, style_ratio), True), runs


def check_range(units: Units, limits: dict[str, int | None]) -> None:
    """ValueError when a code is outside a vocoder's tables (``limits``: stream -> table size)."""
    for name in ("hubert", "pitch", "style"):
        values, limit = getattr(units, name), limits.get(name)
        if values and limit is not None and max(values) >= limit:
            raise ValueError(f"{name} unit {max(values)} is outside this vocoder's {limit} codes; "
                             f"use a vocoder trained with the same speech tokenizer as the model")
