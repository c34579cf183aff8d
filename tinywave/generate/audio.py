"""Turning generated tokens into text and audio, incrementally.

``split_output`` parses generated ids into text and speech runs (markers and special
tokens dropped, runs of one modality merged, as SpiritLM's ``_parse_speech_and_text``).
``ChunkedVocoder`` vocodes a growing run of speech tokens in chunks: each chunk is
synthesized with ``context`` units of left context (the prompt's trailing speech for a
continuation) and ``lookahead`` units of right context, and only the samples of its own
units are emitted, so chunk joins are seamless up to the vocoder's receptive field and the
concatenated chunks have exactly the length of a one-shot synthesis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinywave.text.vocab import VocabLayout
from tinywave.vocoder.units import Units, as_units

log = logging.getLogger(__name__)


def classify(token: int, layout: VocabLayout) -> str:
    """'s' speech token, 'm' marker, 't' text, 'x' not a token of the layout."""
    if layout.hu_offset <= token < layout.size:
        return "s"
    if token in (layout.text_id, layout.speech_id):
        return "m"
    return "t" if 0 <= token < layout.text_size else "x"


def split_output(ids: Sequence[int], layout: VocabLayout, tokenizer: Any) -> tuple[list[tuple[str, str]], str]:
    """([('t', text) | ('s', speech string)], transcript with the model's markers)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    pieces: list[tuple[str, list[int]]] = []
    for tok in ids:
        kind = classify(int(tok), layout)
        if kind == "x" or (kind == "t" and tok in special):
            continue
        if pieces and pieces[-1][0] == kind and kind != "m":
            pieces[-1][1].append(int(tok))
        else:
            pieces.append((kind, [int(tok)]))
    decoders = {"s": layout.ids_to_speech_string, "m": layout.ids_to_speech_string,
                "t": lambda run: tokenizer.decode(run, skip_special_tokens=True)}
    decoded = [(kind, decoders[kind](run)) for kind, run in pieces]
    runs: list[tuple[str, str]] = []
    for kind, text in decoded:
        if kind == "m":
            continue
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + text)
        else:
            runs.append((kind, text))
    return runs, "".join(text for _, text in decoded)


def _slice(units: Units, a: int, b: int) -> Units:
    def cut(s: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if s is None else s[a:b]

    return Units(units.hubert[a:b], cut(units.pitch), cut(units.style), True)


def _keep_known(units: Units, limit: int) -> Units:
    keep = [i for i, u in enumerate(units.hubert) if u < limit]
    if len(keep) == len(units.hubert):
        return units
    log.warning("dropping %d unit(s) the vocoder does not know (>= %d)", len(units.hubert) - len(keep), limit)

    def pick(s: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if s is None else tuple(s[i] for i in keep)

    return Units(pick(units.hubert) or (), pick(units.pitch), pick(units.style), True)


class ChunkedVocoder:
    """Feed speech tokens as they come; get audio chunks out. ``flush()`` emits the rest."""

    def __init__(self, vocoder: Any, speaker: int | str = 0, prefix: str = "", chunk_units: int = 25,
                 *, context: int | None = None, lookahead: int = 4, seed: int = 0):
        self.vocoder, self.speaker, self.seed = vocoder, speaker, seed
        self.chunk_units, self.lookahead = max(1, chunk_units), max(0, lookahead)
        model = getattr(vocoder, "model", None)
        self.context = context if context is not None else (model.receptive_units() if model is not None else 8)
        self.text = prefix
        self.start = len(self._units())  # prefix units are context only
        self.emitted = self.start

    def _units(self) -> Units:
        units = as_units(self.text, deduplicated=True, seed=self.seed)
        return _keep_known(units, self.vocoder.limits.get("hubert") or 1 << 30)

    def _render(self, units: Units, upto: int) -> np.ndarray:
        """Samples of units [emitted, upto), synthesized with left context and everything known to the right."""
        w0 = max(0, self.emitted - self.context)
        wav, per_unit = self.vocoder.vocode_aligned(_slice(units, w0, len(units)), self.speaker, deduplicated=True)
        edges = np.concatenate([[0], np.cumsum(per_unit)])
        chunk = wav[edges[self.emitted - w0] : edges[upto - w0]]
        self.emitted = upto
        return chunk

    def push(self, speech: str) -> np.ndarray | None:
        """Add speech tokens; returns a chunk once ``chunk_units`` new units are safely renderable."""
        self.text += speech
        units = self._units()
        ready = len(units) - self.lookahead
        if ready - self.emitted < self.chunk_units:
            return None
        return self._render(units, ready)

    def flush(self) -> np.ndarray:
        units = self._units()
        if len(units) <= self.emitted:
            return np.zeros(0, dtype=np.float32)
        return self._render(units, len(units))
