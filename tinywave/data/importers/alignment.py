"""Word alignments (MFA TextGrids, CTM files) -> manifest items' ``words``.

An item without an alignment is kept without words; an alignment that cannot be read,
whose words differ from the transcript, or whose times are not inside the audio makes
its item a bad item (docs/FORMATS.md: word times are seconds, monotonic, inside the audio).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from tinywave.data.importers.ctm import CtmWords, read_ctm
from tinywave.data.importers.textgrid import TextGridError, read_textgrid_words
from tinywave.data.importers.transcript import normalize_text
from tinywave.data.manifest import BadItem, ManifestItem, Word

END_TOLERANCE = 0.02  # seconds a word may end past the audio (rounded timings), as tinywave/data/tokenize_job.py


@dataclass
class Alignments:
    words: dict[str, list[Word]] = field(default_factory=dict)  # id -> words by start, silences dropped
    where: dict[str, str] = field(default_factory=dict)  # id -> alignment file
    broken: dict[str, BadItem] = field(default_factory=dict)  # id -> why its alignment cannot be used
    unused: list[str] = field(default_factory=list)  # ids aligned but not among the items, sorted


def files_with_suffix(path: Path, suffix: str) -> list[Path]:
    """``path`` itself, or every file under the folder ``path`` whose name ends in ``suffix`` (any case), sorted."""
    if path.is_file():
        return [path]
    return sorted(Path(d) / f for d, _, names in os.walk(path) for f in names if f.lower().endswith(suffix))


def read_textgrids(path: Path, ids: set[str]) -> Alignments:
    """``<id>.TextGrid`` files (a file, or a folder searched recursively, as MFA writes them)."""
    out = Alignments()
    by_id: dict[str, Path] = {}
    for f in files_with_suffix(path, ".textgrid"):
        if f.stem in by_id:
            out.broken.setdefault(f.stem, BadItem(f.stem, str(f), "duplicate_alignment",
                                                  f"both {by_id[f.stem]} and {f} align {f.stem!r}; delete one"))
            continue
        by_id[f.stem] = f
    out.unused = sorted(set(by_id) - ids)
    for uid in sorted(set(by_id) & ids):
        if uid in out.broken:
            continue
        out.where[uid] = str(by_id[uid])
        try:
            out.words[uid] = read_textgrid_words(by_id[uid])
        except TextGridError as exc:
            out.broken[uid] = BadItem(uid, str(exc.path), "bad_alignment", f"{exc.detail}; realign or delete the file")
    return out


def read_ctms(path: Path, ids: set[str]) -> Alignments:
    """One ``.ctm`` file, or every ``*.ctm`` under a folder; utterance ids are the first field."""
    ctm = CtmWords()
    for f in files_with_suffix(path, ".ctm"):
        read_ctm(f, ctm)
    found = set(ctm.words) | set(ctm.broken)
    return Alignments({k: v for k, v in ctm.words.items() if k in ids}, {k: v for k, v in ctm.where.items() if k in ids},
                      {k: v for k, v in ctm.broken.items() if k in ids}, sorted(found - ids))


def guess_alignment_format(path: Path) -> str:
    """"textgrid" or "ctm" from the file name, or from what a folder holds; ValueError otherwise."""
    for fmt, suffix in (("textgrid", ".textgrid"), ("ctm", ".ctm")):
        if (path.is_file() and path.name.lower().endswith(suffix)) or (path.is_dir() and any(files_with_suffix(path, suffix))):
            return fmt
    raise ValueError(f"cannot tell the format of --alignments {path} (no .TextGrid or .ctm files); "
                     "pass --alignment-format textgrid or --alignment-format ctm")


def first_difference(got: list[str], want: list[str]) -> str:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"word {i + 1} is {a!r} in the alignment but {b!r} in the transcript"
    return f"the alignment has {len(got)} words, the transcript {len(want)}"


def timing_problem(words: list[Word], seconds: float) -> str:
    """Why the times are unusable (not ordered, negative, past the audio), or ''."""
    for i, w in enumerate(words):
        if w.start < 0 or w.end < w.start:
            return f"word {i + 1} ({w.word!r}) has start {w.start} and end {w.end}; need 0 <= start <= end"
        if w.end > seconds + END_TOLERANCE:
            return f"word {i + 1} ({w.word!r}) ends at {w.end:.3f} s, after the {seconds:.3f} s audio: the alignment is for other audio"
    return ""


def attach_words(item: ManifestItem, words: list[Word], where: str, seconds: float) -> ManifestItem | BadItem:
    """The item with ``words`` (spelled as in its transcript), or a bad item saying why they do not fit."""
    pairs = [(normalize_text(w.word), w) for w in words]
    pairs = [(s, w) for s, w in pairs if s]  # a label of punctuation only is no word
    spelled, words = [s for s, _ in pairs], [w for _, w in pairs]
    if item.text is not None and spelled != item.text.split():
        return BadItem(item.id, where, "alignment_mismatch", f"{first_difference(spelled, item.text.split())}; "
                       "realign with this transcript (or fix the transcript)")
    problem = timing_problem(words, seconds)
    if problem:
        return BadItem(item.id, where, "bad_alignment", f"{problem}; realign")
    return replace(item, words=[Word(s, w.start, w.end) for s, w in zip(spelled, words)])
