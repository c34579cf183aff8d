"""Training documents from a token corpus: speech-only, text-only and interleaved.

A document is ``[BOS] ... [EOS]``. Speech runs are ``[Speech]`` + speech token ids, text
runs ``[Text]`` + text ids; a marker appears only where the modality changes (SpiritLM).
Interleaved documents switch modality at word boundaries, with probability
``switch_prob`` after each word, using the per-word token spans of the token corpus.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tinywave.text.vocab import VocabLayout, encode_text

KINDS = ("speech", "interleaved", "text")


@dataclass(frozen=True)
class DocIds:
    """Special ids a document builder needs."""

    bos: int
    eos: int
    layout: VocabLayout


def speech_document(record: dict[str, Any], ids: DocIds) -> list[int]:
    return [ids.bos, ids.layout.speech_id, *ids.layout.speech_string_to_ids(record["speech"]), ids.eos]


def _record_text(record: dict[str, Any]) -> str | None:
    if record.get("text"):
        return str(record["text"])
    if record.get("words"):
        return " ".join(w["word"] for w in record["words"])
    return None


def text_document(record: dict[str, Any], ids: DocIds, tokenizer: Any) -> list[int]:
    text = _record_text(record)
    if text is None:
        raise ValueError(f"record {record.get('id')!r} has no text or words; it can only make a speech document")
    return [ids.bos, ids.layout.text_id, *encode_text(tokenizer, text), ids.eos]


def word_runs(n_words: int, switch_prob: float, rng: random.Random) -> list[tuple[str, int, int]]:
    """Split words 0..n into (modality, first, last+1) runs, switching after a word with ``switch_prob``."""
    modality = rng.choice(("speech", "text"))
    runs: list[tuple[str, int, int]] = []
    start = 0
    for i in range(1, n_words):
        if rng.random() < switch_prob:
            runs.append((modality, start, i))
            modality = "text" if modality == "speech" else "speech"
            start = i
    runs.append((modality, start, n_words))
    return runs


def interleaved_document(record: dict[str, Any], ids: DocIds, tokenizer: Any, switch_prob: float, rng: random.Random) -> list[int]:
    words: Sequence[dict[str, Any]] = record.get("words") or []
    if not words or any("span" not in w for w in words):
        raise ValueError(f"record {record.get('id')!r} has no word spans; interleaving needs a token corpus built from word timings")
    speech_ids = ids.layout.speech_string_to_ids(record["speech"])  # one id per speech token
    doc = [ids.bos]
    for modality, first, last in word_runs(len(words), switch_prob, rng):
        if modality == "speech":
            a, b = words[first]["span"][0], words[last - 1]["span"][1]
            doc += [ids.layout.speech_id, *speech_ids[a:b]]
        else:
            doc += [ids.layout.text_id, *encode_text(tokenizer, [w["word"] for w in words[first:last]])]
    doc.append(ids.eos)
    return doc


def choose_kind(record: dict[str, Any], mixture: dict[str, float], rng: random.Random) -> str:
    """Pick a document kind by the mixture ratios, among the kinds this record can make.

    A record without word timings cannot be interleaved and one without text cannot be a
    text document: its share goes to the kinds it can make, and to speech when it can make
    none of the wanted kinds (even at a speech ratio of 0). ``unusable_share`` says how
    much of a corpus that affects, so a build can warn about it."""
    possible = {"speech": True, "text": _record_text(record) is not None, "interleaved": bool(record.get("words"))}
    weights = {k: w for k, w in mixture.items() if w > 0 and possible[k]}
    if not weights:
        return "speech"
    r = rng.random() * sum(weights.values())
    for kind, w in weights.items():
        r -= w
        if r < 0:
            return kind
    return kind


def unusable_share(records: list[dict[str, Any]], mixture: dict[str, float]) -> dict[str, int]:
    """{kind: records that cannot make it} for every kind the mixture asks for (ratio > 0) that some records cannot make."""
    needs = {"interleaved": lambda r: bool(r.get("words")), "text": lambda r: _record_text(r) is not None, "speech": lambda r: True}
    missing = {kind: sum(not needs[kind](r) for r in records) for kind, w in mixture.items() if w > 0}
    return {kind: n for kind, n in missing.items() if n}


def validate_mixture(mixture: dict[str, float]) -> dict[str, float]:
    unknown = set(mixture) - set(KINDS)
    if unknown:
        raise ValueError(f"mixture has unknown kinds {sorted(unknown)}; use {list(KINDS)}")
    if any(v < 0 for v in mixture.values()) or sum(mixture.values()) <= 0:
        raise ValueError(f"mixture {mixture} must have non-negative ratios with a positive sum")
    return mixture


def build_documents(
    records: Iterable[dict[str, Any]],
    tokenizer: Any,
    ids: DocIds,
    mixture: dict[str, float],
    switch_prob: float,
    seed: int,
    *, passes: int = 1,
    counts: dict[str, int] | None = None,
) -> Iterator[list[int]]:
    """Documents in a seeded order: ``passes`` passes over the records, each shuffled."""
    validate_mixture(mixture)
    records = list(records)
    rng = random.Random(seed)
    builders = {
        "speech": lambda r: speech_document(r, ids),
        "text": lambda r: text_document(r, ids, tokenizer),
        "interleaved": lambda r: interleaved_document(r, ids, tokenizer, switch_prob, rng),
    }
    for _ in range(passes):
        order = list(range(len(records)))
        rng.shuffle(order)
        for i in order:
            kind = choose_kind(records[i], mixture, rng)
            if counts is not None:
                counts[kind] = counts.get(kind, 0) + 1
            yield builders[kind](records[i])
