"""Distillation losses, each averaged over real (non-pad) target tokens.

Every function returns ``sum over real tokens / normalizer``; ``normalizer`` defaults
to the number of real tokens in the batch, and the trainer passes the token count of
the whole optimizer step (all accumulation micro-batches, later all ranks) so that a
step's loss is a true per-token mean, never a mean of per-chunk or per-batch means. A
batch with no real token gives 0 (with a gradient of 0), never NaN.

The plain functions (:func:`ce_loss`, :func:`kl_loss`) take full logits and are the
reference; :func:`chunked_vocab_losses` computes the same CE and KL from hidden states
and the LM-head weight in row chunks, recomputing each chunk in the backward pass, so
the ``[N, V]`` float32 logits never exist at once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tinywave.data.shards import IGNORE_INDEX  # noqa: F401  (re-exported: the losses' label convention)

def _normalize(total: torch.Tensor, count: int | float, normalizer: float | None) -> torch.Tensor:
    denom = float(normalizer) if normalizer is not None else float(count)
    return total / max(denom, 1.0)


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, normalizer: float | None = None) -> torch.Tensor:
    """Next-token cross-entropy. logits: (B, T, V); labels: (B, T) with IGNORE_INDEX on pad targets."""
    flat = labels.reshape(-1)  # (B*T,)
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat, ignore_index=IGNORE_INDEX, reduction="sum")
    return _normalize(total, int((flat != IGNORE_INDEX).sum()), normalizer)


def _kl_rows(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-row forward KL(p_t || p_s) on temperature-softened logits, times T^2. (N, V) -> (N,)."""
    s_logp = torch.log_softmax(student_logits.float() / temperature, dim=-1)  # (N, V)
    t_logp = torch.log_softmax(teacher_logits.float() / temperature, dim=-1)  # (N, V)
    return (t_logp.exp() * (t_logp - s_logp)).sum(-1) * temperature**2  # (N,)


def kl_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
    normalizer: float | None = None,
) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), teacher as target. logits: (B, T, V); mask: (B, T) bool."""
    rows = mask.reshape(-1)  # (B*T,)
    v = student_logits.shape[-1]
    per_row = _kl_rows(student_logits.reshape(-1, v)[rows], teacher_logits.reshape(-1, v)[rows], temperature)  # (N,)
    return _normalize(per_row.sum(), int(rows.sum()), normalizer)


def _chunk_losses(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor,
    teacher_logits: Callable[[torch.Tensor], torch.Tensor] | None, temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CE and KL sums of one chunk. hidden: (n, D); weight: (V, D); targets, rows: (n,)."""
    logits = F.linear(hidden, weight).float()  # (n, V): the only logits alive at a time
    ce = F.cross_entropy(logits, targets, reduction="sum")
    if teacher_logits is None:
        return ce, ce.new_zeros(())
    with torch.no_grad():
        t_logits = teacher_logits(rows)  # (n, V)
    return ce, _kl_rows(logits, t_logits, temperature).sum()


def chunked_vocab_losses(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rows: torch.Tensor | None = None,
    temperature: float = 1.0,
    *, chunk_size: int = 1024,
    normalizer: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CE and KL from hidden states and the LM-head weight, ``chunk_size`` rows at a time.

    hidden: (N, D) student final hidden states of the real target tokens only;
    weight: (V, D) the student's LM head; targets: (N,) next-token ids;
    teacher_logits(rows) -> (n, V) teacher logits of those rows (computed without
    gradient, inside the chunk, so it is recomputed in backward too); rows: (N,) the
    identifiers handed to ``teacher_logits`` (default ``arange(N)``).
    Returns (ce, kl) each summed over rows / normalizer (default N); kl is 0 without a teacher.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be a positive number of tokens (e.g. 1024)")
    n = hidden.shape[0]
    rows = torch.arange(n, device=hidden.device) if rows is None else rows
    step = functools.partial(_chunk_losses, teacher_logits=teacher_logits, temperature=temperature)
    recompute = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    ce_total = hidden.new_zeros((), dtype=torch.float32)
    kl_total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk_size):
        args = (hidden[start : start + chunk_size], weight, targets[start : start + chunk_size], rows[start : start + chunk_size])
        ce, kl = checkpoint(step, *args, use_reentrant=False) if recompute else step(*args)
        ce_total, kl_total = ce_total + ce, kl_total + kl
    if n == 0:  # keep the graph connected so backward gives zero gradients, not an error
        zero = hidden.sum() * 0.0 + weight.sum() * 0.0
        ce_total, kl_total = ce_total + zero, kl_total + zero
    return _normalize(ce_total, n, normalizer), _normalize(kl_total, n, normalizer)


def _hidden_mse(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (s.float() - t.float()).pow(2).mean(-1)  # (N,)


def _hidden_cosine(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(s.float(), t.float(), dim=-1, eps=1e-8)  # (N,)


HIDDEN_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"mse": _hidden_mse, "cosine": _hidden_cosine}


def hidden_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, kind: str = "mse", normalizer: float | None = None
) -> torch.Tensor:
    """Hidden-state loss of one layer pair. student, teacher: (B, T, D) (student already projected);
    mask: (B, T) bool. mse: mean over D of the squared error; cosine: 1 - cos. Averaged over real tokens."""
    if kind not in HIDDEN_LOSSES:
        raise ValueError(f"hidden loss kind {kind!r} is not known; choose one of {sorted(HIDDEN_LOSSES)}")
    per_token = HIDDEN_LOSSES[kind](student[mask], teacher[mask])  # (N,)
    return _normalize(per_token.sum(), int(mask.sum()), normalizer)


def _head_average(logp: torch.Tensor) -> torch.Tensor:
    """Log of the head-averaged attention distribution: (B, H, Tq, Tk) -> (B, 1, Tq, Tk)."""
    return torch.logsumexp(logp, dim=1, keepdim=True) - math.log(logp.shape[1])


def attention_loss(
    student_logp: torch.Tensor,
    teacher_logp: torch.Tensor,
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    normalizer: float | None = None,
) -> torch.Tensor:
    """KL(teacher row || student row) of the attention distributions of one layer pair.

    student_logp, teacher_logp: (B, H, T, T) log-probabilities (query rows, key columns);
    query_mask: (B, T) bool, the rows that count (real target tokens); key_mask: (B, T)
    bool, real keys. Keys that are padded or in the future are excluded. The KL is
    averaged over heads, summed over real rows, divided by the normalizer (default:
    the number of real rows). With different head counts the head-averaged maps are compared.
    """
    if student_logp.shape[1] != teacher_logp.shape[1]:
        student_logp, teacher_logp = _head_average(student_logp), _head_average(teacher_logp)
    t = student_logp.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=student_logp.device).tril()  # (T, T)
    valid = causal[None, None] & key_mask[:, None, None, :].bool()  # (B, 1, T, T)
    s = student_logp.float().masked_fill(~valid, 0.0)
    tl = teacher_logp.float().masked_fill(~valid, 0.0)
    p_t = tl.exp().masked_fill(~valid, 0.0)  # (B, H, T, T)
    per_row = (p_t * (tl - s)).sum(-1).mean(1)  # (B, T): KL per query row, mean over heads
    return _normalize(per_row[query_mask.bool()].sum(), int(query_mask.sum()), normalizer)
