"""Lhotse cut manifests (``cuts.jsonl`` / ``cuts.jsonl.gz``, a ``CutSet`` written by Lhotse) -> manifest items.

One JSON object per line, a ``MonoCut``::

    {"id": "84-121123-0000", "start": 0.0, "duration": 2.09, "channel": 0, "type": "MonoCut",
     "recording": {"id": "84-121123-0000", "sampling_rate": 16000, "num_samples": 33440, "duration": 2.09,
                   "sources": [{"type": "file", "channels": [0], "source": "LibriSpeech/dev-clean/84/121123/84-121123-0000.flac"}]},
     "supervisions": [{"id": "84-121123-0000", "recording_id": "84-121123-0000", "start": 0.0, "duration": 2.09,
                       "channel": 0, "text": "GO DO YOU HEAR", "speaker": "84",
                       "alignment": {"word": [{"symbol": "GO", "start": 0.3, "duration": 0.2}, ...]}}]}

Each supervision becomes one item: its id, transcript, speaker, and its word alignment when
the supervision has one (items as ``{"symbol", "start", "duration"}`` objects or as
``[symbol, start, duration, score]`` lists, as Lhotse versions write them). The audio is
the recording's ``file`` source; a relative path is taken relative to the manifest's folder.
The project's manifests hold whole files, so a supervision must cover its whole recording
(within 50 ms); a supervision of part of a longer recording is reported as a bad item
naming the fix (cut the segments to their own files first, e.g. Lhotse's
``cuts.trim_to_supervisions().save_audios(...)``). Recordings plus supervisions without
cuts: make the cuts with ``lhotse cut simple -r recordings.jsonl.gz -s supervisions.jsonl.gz cuts.jsonl.gz``.
Lhotse itself is not needed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from tinywave.data.importers.alignment import attach_words
from tinywave.data.importers.options import ImportOptions
from tinywave.data.importers.transcript import normalize_text
from tinywave.data.manifest import BadItem, ManifestItem, Word

WHOLE_FILE_TOLERANCE = 0.05  # seconds a supervision may fall short of its recording at either end


def read_cut_lines(path: Path) -> list[str]:
    """The lines of a .jsonl or .jsonl.gz cut manifest; errors name the file and what it should be."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise FileNotFoundError(f"Lhotse cut manifest {path} {what}; --src takes a cuts.jsonl or cuts.jsonl.gz file "
                                "(from recordings and supervisions: lhotse cut simple -r R -s S cuts.jsonl.gz)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable (gzipped) JSONL cut manifest ({exc}); is --src really Lhotse's cuts file?") from None


def _word(raw: Any) -> Word:
    """One alignment item: {"symbol", "start", "duration"} or [symbol, start, duration, (score)]."""
    symbol, start, duration = (raw["symbol"], raw["start"], raw["duration"]) if isinstance(raw, dict) else raw[:3]
    return Word(str(symbol), float(start), float(start) + float(duration))


def _audio_path(recording: dict[str, Any], root: Path) -> Path:
    sources = recording.get("sources") or []
    if not sources or sources[0].get("type") != "file":
        kinds = sorted({str(s.get("type")) for s in sources}) or ["none"]
        raise ValueError(f"recording {recording.get('id')!r} has source type(s) {kinds}; only 'file' sources are read: "
                         "save the audio to files first (Lhotse: cuts.save_audios(folder))")
    path = Path(sources[0]["source"])
    return path if path.is_absolute() else root / path


def cut_items(cut: dict[str, Any], root: Path, where: str) -> list[ManifestItem | BadItem]:
    """The items of one cut (one per supervision); bad items say why one cannot be used."""
    if cut.get("type", "MonoCut") != "MonoCut" or "recording" not in cut:
        return [BadItem(cut.get("id"), where, "unsupported_cut", f"cut type {cut.get('type')!r} without a single recording; "
                        "only MonoCuts are read: export mixed or padded cuts to audio files first")]
    recording, offset = cut["recording"], float(cut.get("start", 0.0))
    try:
        audio = _audio_path(recording, root)
    except ValueError as exc:
        return [BadItem(cut.get("id"), where, "unsupported_source", str(exc))]
    total = float(recording.get("duration", 0.0))
    out: list[ManifestItem | BadItem] = []
    for sup in cut.get("supervisions") or []:
        start, end = offset + float(sup["start"]), offset + float(sup["start"]) + float(sup["duration"])
        if start > WHOLE_FILE_TOLERANCE or (total and end < total - WHOLE_FILE_TOLERANCE):
            out.append(BadItem(sup.get("id"), where, "segment", f"the supervision covers {start:.2f}-{end:.2f} s of a {total:.2f} s "
                               "recording, but manifests hold whole files; cut the segments to their own files first "
                               "(Lhotse: cuts.trim_to_supervisions().save_audios(folder))"))
            continue
        text = sup.get("text")
        item = ManifestItem(str(sup.get("id", "")), audio, None if text is None else normalize_text(text), speaker=sup.get("speaker"))
        words = (sup.get("alignment") or {}).get("word")
        if words:
            try:
                parsed = [Word(w.word, offset + w.start, offset + w.end) for w in map(_word, words)]
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                out.append(BadItem(item.id, where, "bad_alignment", f"a word alignment item is malformed ({exc!r}); "
                                   "items are {symbol, start, duration}"))
                continue
            item = attach_words(item, parsed, where, total or end)
        out.append(item)
    return out


def read_lhotse_cuts(opts: ImportOptions) -> list[ManifestItem | BadItem]:
    """Every supervision of every cut of ``opts.src``, in file order."""
    root = opts.src.parent
    out: list[ManifestItem | BadItem] = []
    for n, line in enumerate(read_cut_lines(opts.src), start=1):
        if not line.strip():
            continue
        where = f"{opts.src}:{n}"
        try:
            cut = json.loads(line)
            if not isinstance(cut, dict):
                raise ValueError("the line is not a JSON object")
            out += cut_items(cut, root, where)
        except (ValueError, KeyError, TypeError) as exc:
            out.append(BadItem(None, where, "bad_line", f"not a Lhotse cut ({exc}); fix or delete the line"))
    return out
