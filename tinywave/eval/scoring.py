"""Whole-sequence log-likelihood scoring, batched, and the sequences it scores.

The shared rule (docs/FORMATS.md): a file's token sequence is scored by the LM as
a whole; LL = -(sum of per-token cross-entropy over the scored targets), divided by the
number of scored targets for ``mean`` (the default, ``mean_nll``) or not for ``sum``.
A pair is correct when LL(positive) > LL(negative); a tie counts 0.5.

Sequences (SpiritLM format, our training documents are BOS ... EOS):

    speech only      [BOS] [Speech] s1 .. sn [EOS]               targets 1..end
    text -> speech   [BOS] [Text] t1 .. tm [Speech] s1 .. sn [EOS]   targets s1 .. EOS
    speech -> text   [BOS] [Speech] s1 .. sn [Text] t1 .. tm [EOS]   targets t1 .. EOS

Cross-modal scoring leaves the modality marker that opens the ending out of the scored
targets: the marker is predicted from the prompt alone, so it says nothing about the
ending being compared. In text -> speech both files of a pair share the prompt and the
marker's log-probability would only dilute the mean; in speech -> text each file has its
own prompt audio, so the marker would add a term about the prompt, not the ending.
Speech-only sequences keep scoring their ``[Speech]`` (predicted from [BOS] alone, the
same constant for every file), as the published speech-only figures were measured so.

Batching right-pads with the pad id under an attention mask, sorts by length and fills
batches up to a token budget; identical sequences are scored once (so identical files
tie exactly). ``batch_tokens=0`` scores one sequence per forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tinywave.progress import bar
from tinywave.text.vocab import encode_text, layout_from_tokenizer

REDUCE: dict[str, Callable[[float, int], float]] = {
    "mean": lambda total, n: total / n,
    "sum": lambda total, n: total,
}


@dataclass(frozen=True)
class ScoreRequest:
    """Token ids and the index of the first scored token (>= 1: it has a context)."""

    ids: tuple[int, ...]
    score_from: int = 1

    @property
    def n_scored(self) -> int:
        return len(self.ids) - self.score_from


class SequenceBuilder:
    """Builds the scored id sequences for one text+speech tokenizer (``tinywave vocab``)."""

    def __init__(self, tokenizer, append_eos: bool = True):
        self.tokenizer = tokenizer
        self.layout = layout_from_tokenizer(tokenizer)
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id if append_eos else None
        if append_eos and self.eos is None:
            raise ValueError("the tokenizer has no EOS token, so it cannot be appended; pass append_eos=false (--append-eos false)")
        pad = tokenizer.pad_token_id
        self.pad = pad if pad is not None else (tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0)

    def _head(self) -> list[int]:
        return [self.bos] if self.bos is not None else []

    def _tail(self) -> list[int]:
        return [self.eos] if self.eos is not None else []

    def speech_ids(self, speech: str) -> list[int]:
        return self.layout.speech_string_to_ids(speech)

    def speech(self, speech: str) -> ScoreRequest:
        """[BOS] [Speech] units [EOS], every target scored."""
        return ScoreRequest(tuple(self._head() + [self.layout.speech_id] + self.speech_ids(speech) + self._tail()), 1)

    def text_then_speech(self, prompt_text: str, speech_ending: str) -> ScoreRequest:
        """[BOS] [Text] prompt [Speech] ending [EOS]; only the ending and EOS are scored, not [Speech]."""
        prompt = self._head() + [self.layout.text_id] + encode_text(self.tokenizer, prompt_text) + [self.layout.speech_id]
        return ScoreRequest(tuple(prompt + self.speech_ids(speech_ending) + self._tail()), len(prompt))

    def speech_then_text(self, speech_prompt: str, text_ending: str) -> ScoreRequest:
        """[BOS] [Speech] prompt [Text] ending [EOS]; only the ending and EOS are scored, not [Text]."""
        prompt = self._head() + [self.layout.speech_id] + self.speech_ids(speech_prompt) + [self.layout.text_id]
        return ScoreRequest(tuple(prompt + encode_text(self.tokenizer, text_ending) + self._tail()), len(prompt))

    def speech_window(self, unit_ids: Sequence[int]) -> ScoreRequest:
        """[BOS] [Speech] units, scoring only the speech tokens (for perplexity)."""
        head = self._head() + [self.layout.speech_id]
        return ScoreRequest(tuple(head + list(unit_ids)), len(head))


def plan_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first so that rows x longest length <= ``batch_tokens``.

    A sequence longer than the budget gets a batch of its own; ``batch_tokens <= 0``
    gives one sequence per batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (batch_tokens <= 0 or (len(current) + 1) * lengths[current[0]] > batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


@torch.inference_mode()
def batch_totals(model: torch.nn.Module, requests: Sequence[ScoreRequest], pad_id: int) -> list[float]:
    """Summed log-probability of each request's scored tokens, in one forward pass."""
    rows, length = len(requests), max(len(r.ids) for r in requests)
    ids = torch.full((rows, length), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((rows, length), dtype=torch.long)  # (B, T)
    scored = torch.zeros((rows, length - 1), dtype=torch.bool)  # (B, T-1): which targets count
    for row, r in enumerate(requests):
        n = len(r.ids)
        ids[row, :n] = torch.tensor(r.ids, dtype=torch.long)
        mask[row, :n] = 1
        scored[row, r.score_from - 1 : n - 1] = True
    device = next(model.parameters()).device
    ids, mask, scored = ids.to(device), mask.to(device), scored.to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits  # (B, T, V)
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none")  # (B*(T-1),)
    totals = -(nll.view(rows, length - 1).double() * scored).sum(dim=1)  # (B,)
    return totals.tolist()


def max_positions(model: torch.nn.Module) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def log_likelihoods(model: torch.nn.Module, requests: Sequence[ScoreRequest], reduce: str = "mean",
                    batch_tokens: int = 4096, pad_id: int = 0, desc: str = "scoring") -> list[float]:
    """LL of every request under the shared rule; see the module docstring.

    Memory per forward pass is about ``batch_tokens`` x vocabulary x 8 bytes of logits.
    """
    if reduce not in REDUCE:
        raise ValueError(f"score={reduce!r} is not known; choose one of {sorted(REDUCE)}")
    unique = list(dict.fromkeys(requests))
    limit = max_positions(model)
    for r in unique:
        if r.n_scored < 1 or r.score_from < 1:
            raise ValueError(f"a sequence of {len(r.ids)} tokens scoring from {r.score_from} has nothing to score")
        if limit is not None and len(r.ids) > limit:
            raise ValueError(f"a sequence of {len(r.ids)} tokens exceeds the model's context of {limit}; "
                             "use shorter benchmark audio or a model with a longer context")
    totals: dict[ScoreRequest, float] = {}
    with bar(total=len(unique), desc=desc, unit="seq") as pbar:
        for batch in plan_batches([len(r.ids) for r in unique], batch_tokens):
            chunk = [unique[i] for i in batch]
            totals.update(zip(chunk, batch_totals(model, chunk, pad_id)))
            pbar.update(len(chunk))
    return [REDUCE[reduce](totals[r], r.n_scored) for r in requests]


def pair_outcomes(pos: Sequence[float], neg: Sequence[float]) -> list[float]:
    """1 when LL(pos) > LL(neg), 0.5 on a tie, else 0."""
    if len(pos) != len(neg):
        raise ValueError(f"{len(pos)} positive scores but {len(neg)} negative ones")
    return [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in zip(pos, neg)]
