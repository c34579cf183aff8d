"""From espeak's events to timed words and phones, and from spoken pieces to utterances.

Pure functions, no library calls: ``espeak.py`` speaks, this module measures.

- A phone lasts from its PHONEME event to the next one; pauses (``_...``) end the phone
  before them and are dropped, as are zero-length phones.
- A word spans its first to its last phone. espeak speaks some unstressed words as part
  of the previous one ("on the" -> one phonological word, no WORD event for "the"): the
  phones are split again where the joined word's standalone first phoneme recurs.
- A piece (one segment) is trimmed to its audible region with a 10 ms margin; pieces
  are joined with fixed silences and resampled 22.05 -> 16 kHz once (soxr), and the
  timings move with the samples, so they stay exact after trimming.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from tinywave.audio.io import SAMPLE_RATE, resample
from tinywave.data.manifest import Word

EV_WORD, EV_END, EV_PHONEME = 1, 5, 7  # espeak_EVENT_TYPE values


class Phone(NamedTuple):
    symbol: str
    start: float
    end: float


class Utterance(NamedTuple):
    """16 kHz mono float32 audio with its word and phoneme timings (seconds)."""

    wav: np.ndarray  # (T,)
    words: list[Word]
    phones: list[Phone]

    @property
    def seconds(self) -> float:
        return len(self.wav) / SAMPLE_RATE


@dataclass(frozen=True)
class Segment:
    """One piece of text spoken in one espeak call. ``phonemes`` marks ``[[...]]`` input."""

    text: str
    phonemes: bool = False


def word_spans(text: str) -> list[tuple[int, int]]:
    """(first, last) 1-based character positions of each space-separated word."""
    spans, pos = [], 1
    for w in text.split(" "):
        spans.append((pos, pos + len(w) - 1))
        pos += len(w) + 1
    return spans


def owned_phones(events: list, n_samples: int, text: str, merged: dict[str, list[str]]) -> list[list[tuple[str, int, int]]]:
    """The (symbol, start, end) phones of each word. A phone lasts until the next phoneme
    event (pauses ``_...`` end the one before them and are dropped, as are zero-length phones)."""
    marks = [(e[2], e[1], e[3]) for e in events if e[0] == EV_PHONEME]  # (sample, text position, symbol)
    ends = [m[0] for m in marks[1:]] + [n_samples]
    spans = word_spans(text)
    owned: list[list[tuple[str, int, int]]] = [[] for _ in spans]
    for (start, pos, sym), end in zip(marks, ends):
        end = min(end, n_samples)
        if sym.startswith("_") or end <= start:
            continue
        for i, (first, last) in enumerate(spans):
            if first <= pos <= last:
                owned[i].append((sym, start, end))
    for i in range(1, len(spans)):  # split phones of words espeak joined to the previous one
        want = merged.get(str(spans[i][0]))
        prev = owned[i - 1]
        if owned[i] or not want or len(prev) < 2:
            continue
        # where the joined word starts: its first phoneme, else as many phones as it has alone
        cut = max((j for j in range(1, len(prev)) if prev[j][0] == want[0]), default=max(1, len(prev) - len(want)))
        owned[i], owned[i - 1] = prev[cut:], prev[:cut]
    return owned


def timings(events: list, n_samples: int, text: str, merged: dict[str, list[str]]) -> tuple[list[tuple[int, int]], list[tuple[str, int, int]]]:
    """Word (start, end) and phone (symbol, start, end) sample spans from the events.

    A word spans its first to its last phone; a word without phones gets a zero-length
    span where the previous one ends. Words are monotonic and never overlap.
    """
    owned = owned_phones(events, n_samples, text, merged)
    bounds: list[tuple[int, int]] = []
    for mine in owned:
        if mine:
            bounds.append((mine[0][1], mine[-1][2]))
        else:
            at = bounds[-1][1] if bounds else 0
            bounds.append((at, at))
    for i in range(1, len(bounds)):
        s, e = bounds[i]
        prev_end = bounds[i - 1][1]
        bounds[i] = (max(s, prev_end), max(e, s, prev_end))
    return bounds, sorted((p for mine in owned for p in mine), key=lambda p: p[1])


def trim_bounds(samples: np.ndarray, rate: int, margin: float = 0.01, threshold: float = 0.01) -> tuple[int, int]:
    """[first, last) sample of the audible region (|x| above ``threshold`` of the peak) plus a margin."""
    x = np.abs(samples.astype(np.float32))
    peak = float(x.max()) if len(x) else 0.0
    if peak == 0.0:
        return 0, len(samples)
    loud = np.flatnonzero(x > threshold * peak)
    pad = int(margin * rate)
    return max(0, int(loud[0]) - pad), min(len(samples), int(loud[-1]) + 1 + pad)


@dataclass
class Piece:
    """One spoken segment at the engine rate: trimmed int16 samples, word and phone sample spans."""

    samples: np.ndarray  # (T,) int16 at ``Synthesizer.engine_rate``
    words: list[tuple[str, int, int]]
    phones: list[tuple[str, int, int]]


def labels(segment: Segment) -> list[str]:
    """The words of a segment (for ``[[...]]`` input: each bracket group's mnemonics)."""
    if not segment.phonemes:
        return segment.text.split(" ")
    return [g.strip("[]") for g in segment.text.split(" ")]


def make_piece(result: dict[str, Any], segment: Segment, rate: int) -> Piece:
    """A child's result for one segment (samples, events, merged words) -> a trimmed Piece."""
    samples = result["samples"]
    events = [tuple(e) for e in result["events"]]
    bounds, phones = timings(events, len(samples), segment.text, result.get("merged", {}))  # [[...]] groups count as words
    lo, hi = trim_bounds(samples, rate)
    lo = min(lo, min((s for s, _ in bounds), default=lo))
    hi = max(hi, max((e for _, e in bounds), default=hi))

    def shift(s: int, e: int) -> tuple[int, int]:
        return min(max(s - lo, 0), hi - lo), min(max(e - lo, 0), hi - lo)

    words = [(w, *shift(s, e)) for w, (s, e) in zip(labels(segment), bounds)]
    kept = [(sym, *shift(s, e)) for sym, s, e in phones]
    return Piece(samples[lo:hi], words, [p for p in kept if p[2] > p[1]])


def assemble(pieces: list[Piece], rate: int, lead: float, pause: float) -> tuple[np.ndarray, list[Word], list[Phone], list[float]]:
    """Concatenate pieces with ``lead`` silence around and ``pause`` between; resample to 16 kHz."""
    gap_lead = np.zeros(int(round(lead * rate)), np.int16)
    gap_pause = np.zeros(int(round(pause * rate)), np.int16)
    parts, words, phones, starts, offset = [gap_lead], [], [], [], len(gap_lead)
    for i, p in enumerate(pieces):
        if i:
            parts.append(gap_pause)
            offset += len(gap_pause)
        starts.append(offset / rate)
        words += [Word(w, (offset + s) / rate, (offset + e) / rate) for w, s, e in p.words]
        phones += [Phone(sym, (offset + s) / rate, (offset + e) / rate) for sym, s, e in p.phones]
        parts.append(p.samples)
        offset += len(p.samples)
    parts.append(gap_lead)
    wav = resample(np.concatenate(parts).astype(np.float32) / 32768.0, rate, SAMPLE_RATE)
    limit = len(wav) / SAMPLE_RATE
    words = [Word(w.word, min(w.start, limit), min(w.end, limit)) for w in words]
    phones = [Phone(p.symbol, min(p.start, limit), min(p.end, limit)) for p in phones]
    return wav, words, phones, starts
