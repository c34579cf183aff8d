"""The SpiritLM speech-token string format: units <-> ``[St..][Pi..][Hu..]`` strings.

Rules (docs/SPIRITLM.md, section 3):
- ``[Hu<k>]`` phonetic units and ``[Pi<k>]`` pitch are deduplicated (runs collapse to
  their first frame); ``[St<k>]`` style is not.
- Every kept token carries the timestamp of its *original* frame, ``index / rate``;
  streams are concatenated style, pitch, hubert and stably sorted by timestamp, so ties
  order St < Pi < Hu. SpiritLM's HuBERT rate is 24.99 (not 25).
- The inverse assigns every Hu the most recent Pi/St, back-fills leading gaps with the
  first value, and picks a random common style when pitch exists but style does not.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

HUBERT_RATE = 24.99
PITCH_RATE = 12.5
STYLE_RATE = 1.0
SPIRITLM_RATES = {"hubert": HUBERT_RATE, "pitch": PITCH_RATE, "style": STYLE_RATE}

# stream name -> token prefix, in merge (tie-break) order: style, pitch, hubert
STREAM_PREFIX = {"style": "St", "pitch": "Pi", "hubert": "Hu"}
DEDUPLICATED = {"style": False, "pitch": True, "hubert": True}
MOST_COMMON_STYLES = (71, 68, 98)
TEXT_MARKER = "[Text]"
SPEECH_MARKER = "[Speech]"

_TOKEN_RE = re.compile(r"\[(Hu|Pi|St)(\d+)\]")
_PIECE_RE = re.compile(r"(Hu|Pi|St)(\d+)\]")
_SPEECH_RUN_RE = re.compile(r"(?:\[(?:Hu|Pi|St)\d+\])+")


@dataclass(frozen=True)
class TimedToken:
    """One token of a speech string with the time (seconds) of its original frame."""

    text: str
    time: float
    stream: str


def dedup_with_index(units: Sequence[int], dedup: bool) -> list[tuple[int, int]]:
    """(original index, unit) pairs kept after collapsing runs (when ``dedup``)."""
    kept: list[tuple[int, int]] = []
    for i, u in enumerate(units):
        if not dedup or i == 0 or u != units[i - 1]:
            kept.append((i, int(u)))
    return kept


def timed_tokens(
    hubert: Sequence[int],
    pitch: Sequence[int] | None = None,
    style: Sequence[int] | None = None,
    rates: dict[str, float] | None = None,
) -> list[TimedToken]:
    """The merged token list with timestamps, in string order."""
    rates = {**SPIRITLM_RATES, **(rates or {})}
    streams = {"style": style, "pitch": pitch, "hubert": hubert}
    merged: list[TimedToken] = []
    for name, units in streams.items():  # order style, pitch, hubert = the tie-break order
        if units is None:
            continue
        prefix = STREAM_PREFIX[name]
        merged += [TimedToken(f"[{prefix}{u}]", i / rates[name], name) for i, u in dedup_with_index(units, DEDUPLICATED[name])]
    merged.sort(key=lambda t: t.time)  # stable: ties keep St, Pi, Hu order
    return merged


def units_to_string(
    hubert: Sequence[int],
    pitch: Sequence[int] | None = None,
    style: Sequence[int] | None = None,
    rates: dict[str, float] | None = None,
) -> str:
    """Base string (hubert only) or expressive string (with pitch and/or style)."""
    return "".join(t.text for t in timed_tokens(hubert, pitch, style, rates))


def split_tokens(text: str) -> list[str]:
    """The speech tokens of a string, in order (markers and text are dropped)."""
    return [m.group(0) for m in _TOKEN_RE.finditer(text)]


def string_to_units(text: str, duplicate_hubert_for_multiple_pitch: bool = False, seed: int | None = None) -> dict[str, list[int]]:
    """Inverse of :func:`units_to_string`: aligned ``hubert``/``pitch``/``style`` lists.

    ``pitch`` appears only if a Pi token was seen; ``style`` if a St was seen, or
    (reference behaviour) chosen at random from the most common styles when pitch
    exists without style. Pass ``seed`` to make that choice reproducible.
    """
    hubert: list[int] = []
    pitch: list[int | None] = []
    style: list[int | None] = []
    cur_pitch: int | None = None
    cur_style: int | None = None
    first: dict[str, int | None] = {"Pi": None, "St": None}
    prev_kind = None
    for piece in text.split("["):
        if len(piece) <= 2 or piece[:2] not in ("Hu", "Pi", "St") or not piece[2].isdigit():
            prev_kind = None
            continue
        m = _PIECE_RE.match(piece)
        if m is None:  # an unterminated token such as "[Hu12" (cut-off generation): not a token
            prev_kind = None
            continue
        # The reference takes piece[2:-1] and breaks on text after "]"; we read the digits
        # up to "]" so mixed strings like "[Hu4]hello" parse too.
        kind, value = m.group(1), int(m.group(2))
        if kind == "Hu":
            hubert.append(value)
            pitch.append(cur_pitch)
            style.append(cur_style)
        else:
            if first[kind] is None:
                first[kind] = value
            if kind == "Pi":
                if duplicate_hubert_for_multiple_pitch and prev_kind == "Pi" and hubert:
                    hubert.append(hubert[-1])
                    pitch.append(value)
                    style.append(cur_style)
                cur_pitch = value
            else:
                cur_style = value
        prev_kind = kind
    out: dict[str, list[int]] = {"hubert": hubert}
    if first["Pi"] is not None:
        out["pitch"] = [first["Pi"] if p is None else p for p in pitch]  # type: ignore[misc]
    if first["St"] is not None:
        out["style"] = [first["St"] if s is None else s for s in style]  # type: ignore[misc]
    elif first["Pi"] is not None:
        choice = random.Random(seed).choice(MOST_COMMON_STYLES)
        out["style"] = [choice] * len(hubert)
    return out


def parse_speech_and_text(text: str) -> list[tuple[str, str]]:
    """Split generated text into ('...', 's'|'t') runs; markers dropped, runs merged."""
    text = text.replace(TEXT_MARKER, "").replace(SPEECH_MARKER, "")
    segments: list[tuple[str, str]] = []
    pos = 0
    for m in _SPEECH_RUN_RE.finditer(text):
        if m.start() > pos:
            segments.append((text[pos : m.start()], "t"))
        segments.append((m.group(0), "s"))
        pos = m.end()
    if pos < len(text):
        segments.append((text[pos:], "t"))
    merged: list[tuple[str, str]] = []
    for seg, kind in segments:
        if merged and merged[-1][1] == kind:
            merged[-1] = (merged[-1][0] + seg, kind)
        else:
            merged.append((seg, kind))
    return merged


def ends_with_speech(text: str) -> bool:
    return re.search(r"\[(?:Hu|Pi|St)\d+\]$", text) is not None


def starts_with_speech(text: str) -> bool:
    return re.match(r"\[(?:Hu|Pi|St)\d+\]", text) is not None


def last_speech_start(text: str) -> int | None:
    """Character offset where the final run of speech tokens begins (None: no speech)."""
    start = None
    for m in _SPEECH_RUN_RE.finditer(text):
        start = m.start()
    return start
