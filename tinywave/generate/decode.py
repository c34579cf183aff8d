"""Our decoding loop: batched (left padding), streamed step by step, KV cache reused.

``decode_steps`` yields one token per row per step; ``decode`` collects them. Rows are
left-padded so every row's last prompt token sits in the same column; the attention
mask hides the padding and position ids count real tokens only, so a row's result does
not depend on what it is batched with. Logits processors and stopping criteria use the
``transformers`` interfaces, so the same ``ModalityLogitsProcessor`` and
``SpeechDurationCriteria`` drive ``model.generate()`` and this loop alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache


@dataclass(frozen=True)
class Sampling:
    """Greedy, or temperature / top-k / top-p sampling from a seeded generator."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(f"sampling needs temperature > 0, 0 < top_p <= 1, top_k >= 0; got {self}")


def next_tokens(scores: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """(B, V) processed scores -> (B,) token ids."""
    if sampling.greedy:
        return scores.argmax(dim=-1)
    scores = scores / sampling.temperature
    if sampling.top_k:
        kth = torch.topk(scores, min(sampling.top_k, scores.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        cum = sorted_scores.softmax(-1).cumsum(-1)
        drop = cum - sorted_scores.softmax(-1) >= sampling.top_p  # keep the smallest prefix reaching top_p
        scores = scores.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T), attention mask (B, T)) with every row right-aligned."""
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("every prompt needs at least one token")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


@dataclass
class Step:
    """One decoding step: the new token of each row and which rows are finished after it."""

    tokens: torch.Tensor  # (B,) long; pad for rows that finished earlier
    done: torch.Tensor  # (B,) bool
    active: torch.Tensor  # (B,) bool: rows that produced a real token at this step


@torch.inference_mode()
def decode_steps(model: torch.nn.Module, rows: Sequence[Sequence[int]], max_new_tokens: int, *, pad_id: int,
                 eos_id: int | None = None, processors: Sequence[object] = (), stopping: Sequence[object] = (),
                 sampling: Sampling = Sampling()) -> Iterator[Step]:
    """Generate up to ``max_new_tokens`` per row, yielding after every step.

    A row stops at ``eos_id`` or when a stopping criterion says so; decoding ends when all
    rows have stopped. Criteria see ``input_ids`` as prompt (padded width) + tokens so far.
    """
    ids, mask = left_pad(rows, pad_id)  # (B, T)
    b, t = ids.shape
    total = t + max_new_tokens
    seq = torch.full((b, total), pad_id, dtype=torch.long)
    seq[:, :t] = ids
    full_mask = torch.ones((b, total), dtype=torch.long)
    full_mask[:, :t] = mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
    generator = None if sampling.greedy else torch.Generator().manual_seed(sampling.seed)
    cache = DynamicCache(config=model.config)
    done = torch.zeros(b, dtype=torch.bool)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1)
    next_pos = positions[:, -1:] + 1  # (B, 1)
    for step in range(max_new_tokens):
        scores = out.logits[:, -1, :].float()  # (B, V)
        for proc in processors:
            scores = proc(seq[:, : t + step], scores)
        tok = next_tokens(scores, sampling, generator)
        active = ~done
        tok = torch.where(active, tok, torch.full_like(tok, pad_id))
        seq[:, t + step] = tok
        if eos_id is not None:
            done = done | (active & (tok == eos_id))
        for crit in stopping:
            done = done | crit(seq[:, : t + step + 1], scores)
        yield Step(tok, done.clone(), active)
        if bool(done.all()) or step == max_new_tokens - 1:
            return
        out = model(input_ids=tok[:, None], attention_mask=full_mask[:, : t + step + 1], position_ids=next_pos,
                    cache=out.cache, use_cache=True)
        next_pos = next_pos + 1


def decode(model: torch.nn.Module, rows: Sequence[Sequence[int]], max_new_tokens: int, **kw: object) -> list[list[int]]:
    """New tokens of every row (up to and including EOS), decoding to the end."""
    result: list[list[int]] = [[] for _ in rows]
    for step in decode_steps(model, rows, max_new_tokens, **kw):  # type: ignore[arg-type]
        for i in torch.nonzero(step.active).view(-1).tolist():
            result[i].append(int(step.tokens[i]))
    return result
