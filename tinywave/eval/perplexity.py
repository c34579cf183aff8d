"""Normalized perplexity of a speech LM on a held-out token corpus (docs/FORMATS.md).

Each utterance is scored as ``[BOS] [Speech] units`` (no EOS), counting only the speech
tokens (BOS and the marker are context, not predictions). Utterances longer than the
model's context are cut into consecutive windows, each restarting from ``[BOS][Speech]``.
With NLL = the summed negative log-likelihood (nats) over all scored tokens:

- per token:  ``exp(NLL / tokens)``   (the usual normalized perplexity)
- per second: ``exp(NLL / seconds)``  (seconds = summed ``seconds`` of the utterances),
  comparable between base and expressive streams whose token rates differ.

The per-utterance NLL and scored token counts (windows summed back per utterance) are
kept too, for bootstrap intervals and paired tests (:mod:`tinywave.eval.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tinywave.eval.scoring import ScoreRequest, SequenceBuilder, log_likelihoods, max_positions

DEFAULT_CONTEXT = 2048


@dataclass(frozen=True)
class UtteranceNLL:
    id: Any  # the record's "id" (its position among the scored records when it has none)
    nll: float  # nats, summed over the utterance's scored speech tokens (all its windows)
    tokens: int  # scored speech tokens


@dataclass
class Perplexity:
    nll: float  # nats, summed over scored tokens
    tokens: int
    seconds: float  # nan when some utterance lacks "seconds"
    utterances: int
    per_utterance: list[UtteranceNLL] = field(default_factory=list)  # one per scored record, in record order

    @property
    def per_token(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else math.nan

    @property
    def per_second(self) -> float:
        return math.exp(self.nll / self.seconds) if self.seconds > 0 else math.nan

    def to_json(self) -> dict[str, Any]:
        return {"ppl_per_token": self.per_token, "ppl_per_second": self.per_second,
                "nll_per_token": self.nll / self.tokens if self.tokens else math.nan,
                "nll_per_second": self.nll / self.seconds if self.seconds > 0 else math.nan,
                "tokens": self.tokens, "seconds": self.seconds, "utterances": self.utterances,
                "definition": "exp(summed NLL of speech tokens / tokens) and exp(summed NLL / seconds of audio); [BOS][Speech] context, no EOS"}


def utterance_windows(records: Sequence[dict[str, Any]], builder: SequenceBuilder, context: int) -> list[list[ScoreRequest]]:
    """Per utterance, windows of at most ``context`` tokens covering all its speech tokens."""
    width = context - len(builder.speech_window([]).ids)
    if width < 1:
        raise ValueError(f"context {context} is too short to score any speech token")
    windows = []
    for r in records:
        units = builder.speech_ids(r["speech"])
        windows.append([builder.speech_window(units[i : i + width]) for i in range(0, len(units), width)])
    return windows


def corpus_requests(records: Sequence[dict[str, Any]], builder: SequenceBuilder, context: int) -> list[ScoreRequest]:
    """Windows of at most ``context`` tokens covering every utterance's speech tokens."""
    return [w for per in utterance_windows(records, builder, context) for w in per]


def check_tokenizer(records: Sequence[dict[str, Any]], fingerprint: str | None, where: str) -> None:
    made_by = {r.get("tokenizer") for r in records} - {None, ""}
    if fingerprint and made_by and made_by != {fingerprint}:
        raise ValueError(f"{where} was tokenized by speech tokenizer {sorted(made_by)}, but the model uses {fingerprint}; "
                         "re-tokenize the held-out audio with the model's speech_tokenizer/ (tinywave tokenize)")


def normalized_perplexity(model: torch.nn.Module, records: Sequence[dict[str, Any]], builder: SequenceBuilder,
                          batch_tokens: int = 4096, desc: str = "perplexity") -> Perplexity:
    """Perplexity per token and per second, plus each utterance's NLL and token count; see the module docstring."""
    records = [r for r in records if r.get("speech")]
    if not records:
        raise ValueError("the token corpus holds no utterance with speech tokens")
    context = max_positions(model) or DEFAULT_CONTEXT
    windows = utterance_windows(records, builder, context)  # [utterances][windows]
    requests = [w for per in windows for w in per]
    sums = log_likelihoods(model, requests, "sum", batch_tokens, builder.pad, desc=desc)  # per window, log-prob
    per_utterance, start = [], 0
    for i, (r, per) in enumerate(zip(records, windows)):
        chunk = sums[start : start + len(per)]
        per_utterance.append(UtteranceNLL(r.get("id", i), float(-sum(chunk)), sum(w.n_scored for w in per)))
        start += len(per)
    seconds = [r.get("seconds") for r in records]
    total_seconds = math.nan if any(s is None for s in seconds) else float(sum(seconds))
    return Perplexity(-sum(sums), sum(r.n_scored for r in requests), total_seconds, len(records), per_utterance)
