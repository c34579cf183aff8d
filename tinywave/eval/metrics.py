"""From per-pair outcomes (1 / 0.5 / 0) to each benchmark's reported score and breakdowns.

- sSC / tSC: mean over pairs; per-``kind`` breakdown when ``items.jsonl`` gives kinds.
- SALMon: accuracy per part; the overall score is the mean of the part accuracies.
- sWUGGY (ZeroSpeech 2021 lexical): average over voices within an ``id``, then mean over
  ids; frequency bands cut like the reference (``pandas.cut`` of the LibriSpeech count
  with edges 0, 1, 5, 20, 100, inf, right-open: labels oov, 1-5, 6-20, 21-100, >100);
  ``in-vocab`` = mean over ids whose count is not 0 (the count-weighted mean of the
  non-oov bands).
- sBLIMP (syntactic): average over voices within (type, subtype, id), then mean; the
  breakdown is the mean per ``type``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from tinywave.eval.layouts import PairItem

FREQUENCY_BANDS = ((0, 1, "oov"), (1, 5, "1-5"), (5, 20, "6-20"), (20, 100, "21-100"), (100, math.inf, ">100"))


@dataclass
class Summary:
    score: float
    count: int  # units averaged for the score (pairs, parts' pairs, or ids)
    breakdown: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _group_means(keys: Sequence[Hashable], values: Sequence[float]) -> dict[Hashable, float]:
    groups: dict[Hashable, list[float]] = defaultdict(list)
    for k, v in zip(keys, values):
        groups[k].append(v)
    return {k: _mean(v) for k, v in groups.items()}


def _breakdown(labels: Sequence[str], values: Sequence[float]) -> tuple[dict[str, float], dict[str, int]]:
    means = _group_means(labels, values)
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[label] += 1
    return {str(k): means[k] for k in sorted(means, key=str)}, {str(k): counts[k] for k in sorted(counts, key=str)}


def frequency_band(count: int) -> str | None:
    for lo, hi, name in FREQUENCY_BANDS:
        if lo <= count < hi:
            return name
    return None


def summarize_storycloze(items: Sequence[PairItem], outcomes: Sequence[float]) -> Summary:
    kinds = [it.tags.get("kind") for it in items]
    if all(k is None for k in kinds):
        return Summary(_mean(outcomes), len(outcomes))
    labels = [str(k) if k is not None else "unknown" for k in kinds]
    breakdown, counts = _breakdown(labels, outcomes)
    return Summary(_mean(outcomes), len(outcomes), breakdown, counts)


def summarize_salmon(items: Sequence[PairItem], outcomes: Sequence[float]) -> Summary:
    breakdown, counts = _breakdown([it.tags["part"] for it in items], outcomes)
    return Summary(_mean(list(breakdown.values())), len(outcomes), breakdown, counts)


def summarize_lexical(items: Sequence[PairItem], outcomes: Sequence[float]) -> Summary:
    by_id = _group_means([it.tags["id"] for it in items], outcomes)
    freq = {it.tags["id"]: it.tags["frequency"] for it in items}
    ids = list(by_id)
    bands = [frequency_band(freq[i]) for i in ids]
    breakdown: dict[str, float] = {}
    counts: dict[str, int] = {}
    for _, _, name in FREQUENCY_BANDS:  # the reference's band order
        members = [by_id[i] for i, b in zip(ids, bands) if b == name]
        if members:
            breakdown[name], counts[name] = _mean(members), len(members)
    in_vocab = [by_id[i] for i in ids if freq[i] != 0]
    breakdown["in-vocab"], counts["in-vocab"] = _mean(in_vocab), len(in_vocab)
    return Summary(_mean(list(by_id.values())), len(ids), breakdown, counts)


def summarize_syntactic(items: Sequence[PairItem], outcomes: Sequence[float]) -> Summary:
    by_id = _group_means([(it.tags["type"], it.tags["subtype"], it.tags["id"]) for it in items], outcomes)
    keys = list(by_id)
    breakdown, counts = _breakdown([k[0] for k in keys], [by_id[k] for k in keys])
    return Summary(_mean([by_id[k] for k in keys]), len(keys), breakdown, counts)


SUMMARIES: dict[str, Callable[[Sequence[PairItem], Sequence[float]], Summary]] = {
    "storycloze": summarize_storycloze,
    "salmon": summarize_salmon,
    "swuggy": summarize_lexical,
    "sblimp": summarize_syntactic,
}


def summarize(kind: str, items: Sequence[PairItem], outcomes: Sequence[float]) -> Summary:
    if len(items) != len(outcomes):
        raise ValueError(f"{len(items)} items but {len(outcomes)} outcomes")
    return SUMMARIES[kind](items, outcomes)
