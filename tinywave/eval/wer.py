"""Word and character error rates of transcripts against reference texts.

    rates = error_rates(["the cat sat"], ["the cat sat down"])
    rates.wer          # 1 / 3: one inserted word over three reference words
    rates.to_json()    # {"wer", "cer", "words", "chars", "substitutions", "deletions", "insertions"}

Both texts are normalized first (:func:`normalize_text`: lower case, punctuation removed,
single spaces). Rates are pooled over the corpus, as jiwer and the ASR literature do:
the minimum number of word (character) edits summed over utterances, divided by the
summed reference length. Characters include the single spaces between words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed (apostrophes kept), single spaces."""
    return " ".join(re.findall(r"[\w']+", text.lower()))


def edit_operations(ref: Sequence[object], hyp: Sequence[object]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of one minimum-cost alignment of ``hyp`` to ``ref``.

    Levenshtein distance with unit costs; among equal-cost alignments, the backtrace
    prefers a match or substitution, then a deletion, then an insertion.
    """
    n, m = len(ref), len(hyp)
    dist = [list(range(m + 1))]  # dist[i][j]: edits turning ref[:i] into hyp[:j]
    for i in range(1, n + 1):
        row = [i] + [0] * m
        prev = dist[-1]
        for j in range(1, m + 1):
            row[j] = min(prev[j - 1] + (ref[i - 1] != hyp[j - 1]), prev[j] + 1, row[j - 1] + 1)
        dist.append(row)
    sub = dele = ins = 0
    i, j = n, m
    while i or j:
        if i and j and dist[i][j] == dist[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            sub += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i and dist[i][j] == dist[i - 1][j] + 1:
            dele, i = dele + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return sub, dele, ins


@dataclass(frozen=True)
class ErrorRates:
    """Pooled error counts of a set of transcripts; ``wer``/``cer`` are edits over reference length."""

    words: int  # reference words
    chars: int  # reference characters, spaces included
    substitutions: int
    deletions: int
    insertions: int
    char_edits: int

    @property
    def wer(self) -> float:
        return (self.substitutions + self.deletions + self.insertions) / self.words

    @property
    def cer(self) -> float:
        return self.char_edits / self.chars

    def to_json(self) -> dict[str, float | int]:
        return {"wer": self.wer, "cer": self.cer, "words": self.words, "chars": self.chars,
                "substitutions": self.substitutions, "deletions": self.deletions, "insertions": self.insertions}


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """WER and CER of ``hypotheses`` against ``references`` (one transcript each, pooled)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference texts but {len(hypotheses)} transcripts; pass one transcript per reference")
    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    if not any(refs):
        raise ValueError("every reference text is empty after normalization; WER needs utterances with a transcript")
    sub = dele = ins = chars = 0
    for r, h in zip(refs, hyps):
        s, d, i = edit_operations(r.split(), h.split())
        sub, dele, ins = sub + s, dele + d, ins + i
        chars += sum(edit_operations(r, h))
    return ErrorRates(sum(len(r.split()) for r in refs), sum(len(r) for r in refs), sub, dele, ins, chars)
