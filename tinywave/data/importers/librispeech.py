"""LibriSpeech folders -> manifest items.

Layout (one chapter)::

    <split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   lines "<utt-id> TEXT"
    <split>/<speaker>/<chapter>/<utt-id>.flac                    (or .wav)

``--src`` may be the corpus root (every split under it), one split, or any folder below;
``--split NAME`` reads ``src/NAME`` only. Items come in path order, transcript lines in
file order. Text is lower-cased (tinywave/data/importers/transcript.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tinywave.data.importers.options import ImportOptions
from tinywave.data.importers.transcript import normalize_text
from tinywave.data.manifest import BadItem, ManifestItem

AUDIO_SUFFIXES = (".flac", ".wav")  # tried in this order
_TRANS_NAME = re.compile(r"^([^-/]+)-([^-/]+)\.trans\.txt$")


def transcript_files(root: Path) -> list[Path]:
    """Every ``*.trans.txt`` under ``root``, sorted by path."""
    return sorted(Path(d) / f for d, _, files in os.walk(root) for f in files if f.endswith(".trans.txt"))


def chapter_audio(folder: Path) -> dict[str, Path]:
    """utt-id -> audio file of one chapter folder (.flac before .wav when both exist)."""
    found: dict[str, Path] = {}
    names = set(os.listdir(folder))
    for suffix in reversed(AUDIO_SUFFIXES):
        for name in names:
            if name.endswith(suffix):
                found[name[: -len(suffix)]] = folder / name
    return found


def split_name(trans: Path, speaker: str, chapter: str) -> str | None:
    """The split folder (``dev-clean``) when ``trans`` sits in ``<split>/<speaker>/<chapter>/``."""
    if trans.parent.name == chapter and trans.parent.parent.name == speaker and trans.parent.parent.parent.name:
        return trans.parent.parent.parent.name
    return None


def read_chapter(trans: Path) -> list[ManifestItem | BadItem]:
    """The utterances of one ``<speaker>-<chapter>.trans.txt``: items, and bad items for
    lines without audio and audio without a line."""
    m = _TRANS_NAME.match(trans.name)
    if m is None:
        return [BadItem(None, str(trans), "bad_name", "a LibriSpeech transcript is named <speaker>-<chapter>.trans.txt; rename it")]
    speaker, chapter = m.group(1), m.group(2)
    split = split_name(trans, speaker, chapter)
    try:
        lines = trans.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [BadItem(None, str(trans), "unreadable", f"cannot read the transcript ({exc}); restore it from the corpus archive")]
    audio = chapter_audio(trans.parent)
    out: list[ManifestItem | BadItem] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        uid, _, text = line.strip().partition(" ")
        seen.add(uid)
        path = audio.get(uid)
        if path is None:
            out.append(BadItem(uid, f"{trans}:{n}", "missing",
                               f"no {uid}.flac or {uid}.wav in {trans.parent}; restore the audio or delete the line"))
            continue
        extra: dict[str, object] = {"chapter": chapter}
        if split is not None:
            extra["split"] = split
        out.append(ManifestItem(uid, path, normalize_text(text), None, speaker, extra))
    for uid in sorted(set(audio) - seen):
        out.append(BadItem(uid, str(audio[uid]), "no_transcript", f"{trans.name} has no line for {uid}; add '{uid} TEXT' to it or remove the audio"))
    return out


def read_librispeech(opts: ImportOptions) -> list[ManifestItem | BadItem]:
    """All chapters under ``opts.src`` (or ``opts.src/opts.split``), in path order."""
    root = opts.src / opts.split if opts.split else opts.src
    if not root.is_dir():
        hint = f"; the splits there are {sorted(p.name for p in opts.src.iterdir() if p.is_dir())}" if opts.split and opts.src.is_dir() else ""
        raise FileNotFoundError(f"LibriSpeech folder {root} not found{hint}; --src takes e.g. LibriSpeech/ or LibriSpeech/dev-clean")
    files = transcript_files(root)
    if not files:
        raise FileNotFoundError(f"found no *.trans.txt under {root}; --src should be a LibriSpeech folder holding "
                                "<speaker>/<chapter>/<speaker>-<chapter>.trans.txt (e.g. LibriSpeech/dev-clean)")
    out: list[ManifestItem | BadItem] = []
    for trans in files:
        out += read_chapter(trans)
    return out
