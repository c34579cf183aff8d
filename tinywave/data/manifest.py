"""Corpus manifests: JSON lines, one utterance each.

    {"id": "utt1", "audio": "wavs/utt1.wav", "text": "the cat sat",
     "words": [{"word": "the", "start": 0.10, "end": 0.21}, ...], "speaker": "en-f1"}

``audio`` may be relative to the manifest's folder. ``text``, ``words`` and ``speaker``
are optional; extra keys (voice, pitch, rate, ...) are kept untouched.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinywave.files import atomic_write_text, read_jsonl


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass
class ManifestItem:
    id: str
    audio: Path
    text: str | None = None
    words: list[Word] | None = None
    speaker: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        audio = self.audio
        if root is not None:
            try:
                audio = audio.relative_to(root)
            except ValueError:
                pass
        out: dict[str, Any] = {"id": self.id, "audio": str(audio)}
        if self.text is not None:
            out["text"] = self.text
        if self.words is not None:
            out["words"] = [{"word": w.word, "start": round(w.start, 4), "end": round(w.end, 4)} for w in self.words]
        if self.speaker is not None:
            out["speaker"] = self.speaker
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class BadItem:
    """A manifest line or utterance that was skipped, with the reason."""

    id: str | None
    where: str
    reason: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "where": self.where, "reason": self.reason, "detail": self.detail}


_KNOWN = {"id", "audio", "text", "words", "speaker"}


def _parse_words(raw: Any) -> list[Word]:
    if not isinstance(raw, list):
        raise ValueError("'words' must be a list of {word, start, end}")
    words = []
    for i, w in enumerate(raw):
        if not isinstance(w, dict) or not {"word", "start", "end"} <= set(w):
            raise ValueError(f"words[{i}] must be an object with word, start and end")
        try:
            start, end = float(w["start"]), float(w["end"])
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"words[{i}] start/end are not numbers: {w['start']!r}, {w['end']!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise ValueError(f"words[{i}] ({w['word']!r}) has start {start} and end {end}; need 0 <= start <= end")
        if words and start < words[-1].start:
            raise ValueError(f"words[{i}] ({w['word']!r}) starts before the previous word; word timings must be in order")
        words.append(Word(str(w["word"]), start, end))
    return words


def parse_item(obj: dict[str, Any], root: Path) -> ManifestItem:
    """One manifest object -> ManifestItem; ValueError names the problem."""
    uid = obj.get("id")
    if not isinstance(uid, (str, int)) or str(uid) == "":
        raise ValueError("missing or empty 'id'")
    audio = obj.get("audio")
    if not isinstance(audio, str) or audio == "":
        raise ValueError("missing or empty 'audio' path")
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError("'text' must be a string")
    words = _parse_words(obj["words"]) if obj.get("words") is not None else None
    speaker = obj.get("speaker")
    path = Path(audio)
    if not path.is_absolute():
        path = root / path
    extra = {k: v for k, v in obj.items() if k not in _KNOWN}
    return ManifestItem(str(uid), path, text, words, None if speaker is None else str(speaker), extra)


def read_manifest(path: str | Path) -> tuple[list[ManifestItem], list[BadItem]]:
    """All good items and the bad lines (bad JSON, missing keys, duplicate ids)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found; write one JSON object per line with at least 'id' and 'audio'")
    items: list[ManifestItem] = []
    bad: list[BadItem] = []
    seen: set[str] = set()
    for n, obj, err in read_jsonl(path):
        where = f"{path}:{n}"
        if obj is None:
            bad.append(BadItem(None, where, "bad_line", err))
            continue
        try:
            item = parse_item(obj, path.parent)
        except ValueError as exc:
            bad.append(BadItem(str(obj.get("id")) if obj.get("id") is not None else None, where, "bad_entry", str(exc)))
            continue
        if item.id in seen:
            bad.append(BadItem(item.id, where, "duplicate_id", f"id {item.id!r} appears more than once; the first occurrence is kept"))
            continue
        seen.add(item.id)
        items.append(item)
    return items, bad


def write_manifest(path: str | Path, items: list[ManifestItem]) -> None:
    root = Path(path).parent
    atomic_write_text(path, "".join(json.dumps(it.to_json(root), ensure_ascii=False) + "\n" for it in items))
