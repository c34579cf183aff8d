"""CTM word timings (Kaldi, NIST): ``<utt> <channel> <start> <dur> <word> [conf]`` per line.

Times are seconds; ``;;`` lines are comments; a file may hold many utterances in any
order (words are sorted by start per utterance). Silence labels (``<eps>``, ``sil``, ...)
are skipped as in tinywave/data/importers/textgrid.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from tinywave.data.importers.textgrid import SILENCES
from tinywave.data.manifest import BadItem, Word


@dataclass
class CtmWords:
    words: dict[str, list[Word]] = field(default_factory=dict)  # utt -> words by start
    broken: dict[str, BadItem] = field(default_factory=dict)  # utt -> its first bad line
    where: dict[str, str] = field(default_factory=dict)  # utt -> file


def parse_ctm_line(line: str) -> tuple[str, Word]:
    """One line -> (utt, Word); ValueError says what is wrong."""
    parts = line.split()
    if len(parts) < 5:
        raise ValueError(f"has {len(parts)} fields; a CTM line is '<utt> <channel> <start> <dur> <word> [conf]'")
    try:
        start, dur = float(parts[2]), float(parts[3])
    except ValueError:
        raise ValueError(f"start {parts[2]!r} or duration {parts[3]!r} is not a number") from None
    if not (math.isfinite(start) and math.isfinite(dur)) or start < 0 or dur < 0:
        raise ValueError(f"start {start} and duration {dur} must be finite and >= 0")
    return parts[0], Word(parts[4], start, start + dur)


def read_ctm(path: Path, into: CtmWords) -> None:
    """Add the words of one CTM file to ``into``; a bad line marks its utterance broken."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read CTM file {path} ({exc}); pass a UTF-8 .ctm file or a folder of them") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith(";;"):
            continue
        utt = line.split()[0]
        try:
            _, word = parse_ctm_line(line)
        except ValueError as exc:
            into.broken.setdefault(utt, BadItem(utt, f"{path}:{n}", "bad_alignment", f"CTM line {exc}; fix the line or realign"))
            continue
        into.where.setdefault(utt, str(path))
        if word.word.lower() not in SILENCES:
            into.words.setdefault(utt, []).append(word)
        else:
            into.words.setdefault(utt, [])
    for utt, words in into.words.items():
        words.sort(key=lambda w: w.start)
