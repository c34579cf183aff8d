"""Fast paths of the distillation losses: fused vocabulary losses, attention KL from queries and keys.

Both compute exactly what the reference functions of ``losses.py`` compute (parity tests
in ``tests/test_perf_fused.py``); they only change how.

**Vocabulary losses** (:func:`fused_vocab_losses`): CE and KL(T) need the student's
[N, V] logits. Autograd through them keeps (or, chunked + checkpointed, recomputes)
several [N, V] float32 tensors and runs the LM-head matmuls and softmaxes again in the
backward pass. Here each chunk of rows computes its logits once, the two losses, and
their gradient with respect to the logits in closed form,

    d CE / dz = softmax(z) - onehot(y),      d T^2 KL / dz = T (softmax(z / T) - p_teacher(T)),

weighted by the loss weights and folded straight into the gradients of the hidden states
(n, D) and of the LM head (V, D). Backward only scales those by the incoming gradient: no
logits are kept or recomputed, and the teacher's logits are computed once. A teacher read
from a top-k cache comes as :class:`TopKTargets` (top-k log-probabilities + one value for
every other id): its KL and gradient are then computed without a dense teacher tensor.

**Attention KL** (:func:`attention_kl_from_qk`): instead of materializing every mapped
layer's [B, H, T, T] probabilities (an explicit, slow attention in that layer), each
mapped layer keeps SDPA for its output and :func:`record_qk` records its queries and keys
(after RoPE). The KL between teacher and student attention rows is then computed in
blocks of query rows, each block against the keys up to its last row only (causal): about
half the score matmuls of a dense map. When teacher and student have the same number of
heads, the loss and its gradient come in closed form (:class:`_PairKL`): with s the
student's masked scores, l_t the teacher's attention log-probabilities and p_t = exp(l_t),

    KL(row) = sum_j p_t (l_t - s) + logsumexp(s),      d KL / d s = softmax(s) - p_t.

The loss is a scalar, so each block's d/dq and d/dk are computed in the forward pass while
its maps are at hand, and backward only scales them: two score matmuls and two exp passes
per block in all (no log-softmax graph, nothing recomputed, no second forward as activation
checkpointing would run), and d/dq, d/dk of the size of q and k kept until backward.
Other head counts (their KL is between head-averaged maps) use the checkpointed autograd path.
Working memory is O(block x T) per pair either way.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from tinywave.models.windowed import repeat_heads, windowable, windowed_sdpa

QK_ATTENTION = "tinywave_qk"
_QK_ATTR = "_tinywave_qk_record"
_NEG = torch.finfo(torch.float32).min  # masked scores: exp gives exactly 0, differences stay finite
_EXP_FLOOR = -80.0  # exp(-80) = 1.8e-35, a normal float32: exp arguments are floored here (see _exp_rows)


# --- vocabulary losses --------------------------------------------------------------------

@dataclass
class TopKTargets:
    """A teacher distribution at the KL temperature given sparsely (from a top-k teacher cache):
    ``ids`` (n, k) get log-probabilities ``logp`` (n, k); every other id in the row's tail range
    ``[lo, hi)`` gets ``fill`` (n,); ids outside the range (and outside the top k) get probability 0.
    Without ``lo``/``hi`` the tail range is the whole vocabulary (the uniform tail)."""

    ids: torch.Tensor  # (n, k) long
    logp: torch.Tensor  # (n, k) float32
    fill: torch.Tensor  # (n,) float32
    lo: torch.Tensor | None = None  # (n,) long, first id of the tail range
    hi: torch.Tensor | None = None  # (n,) long, one past its last id


def tail_mask(t: TopKTargets, ids: torch.Tensor) -> torch.Tensor:
    """(n, m) bool: which of ``ids`` (n, m) lie in each row's tail range (all of them without a range)."""
    if t.lo is None:
        return torch.ones_like(ids, dtype=torch.bool)
    return (ids >= t.lo[:, None]) & (ids < t.hi[:, None])


def _range_sum(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(n,) sums of x (n, V) over each row's ids [lo, hi)."""
    cs = F.pad(x.cumsum(1), (1, 0))  # (n, V + 1), cs[:, j] = sum of x[:, :j]
    return cs.gather(1, hi[:, None]).squeeze(1) - cs.gather(1, lo[:, None]).squeeze(1)


def _dense_kl(log_q: torch.Tensor, t_logits: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(KL sum, p) for full teacher logits (n, V); p: the teacher probabilities at T (n, V)."""
    log_p = torch.log_softmax(t_logits.float() / temperature, dim=-1)  # (n, V) teacher at T
    p = log_p.exp()
    return torch.vdot(p.flatten(), log_p.sub_(log_q).flatten()), p


def _topk_kl(log_q: torch.Tensor, t: TopKTargets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(KL sum, p_tail (n, V) or (n, 1), p_top - p_tail at the top-k ids (n, k)) without the dense teacher tensor.

    sum_K p_i (log p_i - log q_i) + sum_{j in R, j not in K} f (log f - log q_j), f = exp(fill), R the
    tail range, and sum_{j in R not in K} log q_j = sum_R log q - sum_{K in R} log q. Ids outside
    R and K have probability 0 and add nothing.
    """
    p_top, p_fill = t.logp.exp(), t.fill.exp()  # (n, k), (n,)
    lq_top = log_q.gather(1, t.ids)  # (n, k)
    top = (p_top * (t.logp - lq_top)).sum()
    in_tail = tail_mask(t, t.ids)  # (n, k)
    if t.lo is None:
        others, lq_range = log_q.shape[1] - t.ids.shape[1], log_q.sum(1)
        p_tail = p_fill[:, None]  # (n, 1), every id
    else:
        others, lq_range = (t.hi - t.lo) - in_tail.sum(1), _range_sum(log_q, t.lo, t.hi)
        cols = torch.arange(log_q.shape[1], device=log_q.device)
        p_tail = ((cols >= t.lo[:, None]) & (cols < t.hi[:, None])) * p_fill[:, None]  # (n, V)
    rest = (p_fill * (others * t.fill - (lq_range - (lq_top * in_tail).sum(1)))).sum()
    return top + rest, p_tail, p_top - p_fill[:, None] * in_tail


def _chunk(h: torch.Tensor, weight: torch.Tensor, y: torch.Tensor, t_logits: torch.Tensor | TopKTargets | None,
           temperature: float, w_ce: float, *, w_kl: float) -> tuple[float, float, torch.Tensor]:
    """(CE sum, KL sum, weighted d loss / d logits (n, V)) of one chunk; h: (n, D), y: (n,)."""
    z = F.linear(h, weight).float()  # (n, V)
    log_sm = torch.log_softmax(z, dim=-1)  # (n, V)
    ce = -log_sm.gather(1, y[:, None]).sum()
    grad = log_sm.exp_().mul_(w_ce)  # w_ce * softmax(z), in place
    grad[torch.arange(len(y), device=y.device), y] -= w_ce
    if t_logits is None:
        return float(ce), 0.0, grad
    log_q = torch.log_softmax(z.div_(temperature), dim=-1)  # (n, V) student at T
    if isinstance(t_logits, TopKTargets):
        kl, p_tail, p_extra = _topk_kl(log_q, t_logits)
        grad.add_(log_q.exp_().sub_(p_tail), alpha=w_kl * temperature)  # T (q - p), p = fill on the tail range...
        grad.scatter_add_(1, t_logits.ids, p_extra.mul_(-w_kl * temperature))  # ...but p_top on the top k
    else:
        kl, p = _dense_kl(log_q, t_logits, temperature)
        grad.add_(log_q.exp_().sub_(p), alpha=w_kl * temperature)  # T (q - p)
    return float(ce), float(kl) * temperature**2, grad


class _FusedVocab(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, rows, teacher_logits, temperature, chunk_size, normalizer, w_ce, w_kl):
        grad_h = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)  # (N, D)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)  # (V, D)
        ce_sum = kl_sum = 0.0
        scale = 1.0 / max(float(normalizer), 1.0)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size]
            t = teacher_logits(rows[start : start + chunk_size]) if teacher_logits is not None else None  # (n, V)
            ce, kl, g = _chunk(h, weight, targets[start : start + chunk_size], t, temperature, w_ce, w_kl=w_kl)
            g.mul_(scale)
            ce_sum, kl_sum = ce_sum + ce, kl_sum + kl
            grad_h[start : start + chunk_size] = g @ weight.float()  # (n, D)
            grad_w.addmm_(g.T, h.float())  # (V, D)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        ce_t = hidden.new_tensor(ce_sum * scale, dtype=torch.float32)
        kl_t = hidden.new_tensor(kl_sum * scale, dtype=torch.float32)
        ctx.mark_non_differentiable(ce_t, kl_t)
        return (ce_t * w_ce + kl_t * w_kl), ce_t, kl_t

    @staticmethod
    def backward(ctx, grad_total, grad_ce, grad_kl):
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        return (grad_h * grad_total).to(h_dtype), (grad_w * grad_total).to(w_dtype), *([None] * 8)


def fused_vocab_losses(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rows: torch.Tensor | None = None,
    temperature: float = 1.0,
    *, chunk_size: int = 256,
    normalizer: float | None = None,
    ce_weight: float = 1.0,
    kl_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ce_weight * CE + kl_weight * KL, CE, KL): the values of ``losses.chunked_vocab_losses``.

    Arguments as there (hidden (N, D), weight (V, D), targets (N,), teacher_logits(rows) ->
    (n, V), rows (N,)). Only the first result carries a gradient; CE and KL come detached,
    for logging. Its gradient holds both losses with their weights.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be a positive number of tokens (e.g. 256)")
    rows = torch.arange(hidden.shape[0], device=hidden.device) if rows is None else rows
    kl_weight = kl_weight if teacher_logits is not None else 0.0
    norm = float(hidden.shape[0]) if normalizer is None else float(normalizer)
    return _FusedVocab.apply(hidden, weight, targets, rows, teacher_logits, float(temperature), int(chunk_size), norm,
                             float(ce_weight), float(kl_weight))


# --- recording queries and keys ------------------------------------------------------------

def qk_attention_forward(module: nn.Module, query, key, value, attention_mask, scaling=None, *, dropout: float = 0.0, **kwargs):
    """SDPA, recording (query, key, scale) of layers inside :func:`record_qk` (AttentionInterface signature).

    Segmented rows (a boolean block-causal mask over as many keys as queries) run as
    :func:`tinywave.models.windowed.windowed_sdpa`: per block of queries, only the keys the mask
    allows at all (same outputs and gradients); everything else is transformers' SDPA call."""
    # lazy: transformers is heavy (~3 s); the fused losses and the cache run on any torch model without it
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    record = getattr(module, _QK_ATTR, None)
    if record is not None:
        record[module.layer_idx] = (query, key, scaling if scaling is not None else query.shape[-1] ** -0.5)
    if windowable(query, key, attention_mask) and kwargs.get("position_bias") is None and kwargs.get("softcap") is None:
        out = windowed_sdpa(query, key, value, attention_mask, scale=scaling, dropout=dropout)  # (B, H, T, d)
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


def use_qk_attention(model: nn.Module) -> None:
    """Switch a transformers model to SDPA that can record queries and keys (same outputs as SDPA)."""
    # lazy: transformers is heavy (~3 s); only registering with it needs it
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(QK_ATTENTION, qk_attention_forward)
    AttentionMaskInterface.register(QK_ATTENTION, sdpa_mask)
    model.set_attn_implementation(QK_ATTENTION)


@contextlib.contextmanager
def record_qk(layers: nn.ModuleList, which: Iterable[int]) -> Iterator[dict[int, tuple]]:
    """{layer: (query (B, H, T, d), key (B, Hkv, T, d), scale)} of decoder ``layers[i]`` for i in ``which``."""
    which = sorted(set(which))
    if which and layers[0].self_attn.config._attn_implementation != QK_ATTENTION:
        raise ValueError("recording queries and keys needs use_qk_attention(model) first")
    record: dict[int, tuple] = {}
    for i in which:
        setattr(layers[i].self_attn, _QK_ATTR, record)
    try:
        yield record
    finally:
        for i in which:
            delattr(layers[i].self_attn, _QK_ATTR)


# --- attention KL from queries and keys ----------------------------------------------------

def _block_logp(q: torch.Tensor, k: torch.Tensor, scale: float, allowed: torch.Tensor) -> torch.Tensor:
    """Attention log-probabilities of a block of query rows. q: (B, H, n, d); k: (B, H, m, d) -> (B, H, n, m)."""
    with torch.autocast(device_type=q.device.type, enabled=False):
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
        return torch.log_softmax(scores.masked_fill(~allowed, _NEG), dim=-1)


def _head_mean(logp: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(logp, dim=1, keepdim=True) - math.log(logp.shape[1])  # (B, 1, n, m)


def _block_kl(sq, sk, s_scale, tq, tk, t_scale, key_mask, query_mask, start: int, segments=None, lo: int = 0) -> torch.Tensor:  # positional: torch checkpoint
    """Sum over the block's real query rows of the head-mean KL(teacher row || student row); keys lo..lo+m-1."""
    allowed = _block_allowed(key_mask, start, sq.shape[2], lo + sk.shape[2], segments, lo)  # (B, 1, n, m)
    ls = _block_logp(sq, sk, s_scale, allowed)  # (B, Hs, n, m)
    with torch.no_grad():
        lt = _block_logp(tq, tk, t_scale, allowed)  # (B, Ht, n, m)
    if ls.shape[1] != lt.shape[1]:
        ls, lt = _head_mean(ls), _head_mean(lt)
    per_row = (lt.exp() * (lt - ls)).sum(-1).mean(1)  # (B, n)
    return (per_row * query_mask).sum()


def _masked_scores(q: torch.Tensor, k: torch.Tensor, scale: float, blocked: torch.Tensor) -> torch.Tensor:
    """(B, H, n, d) x (B, H, m, d) -> (B, H, n, m) float32 scaled scores, ``_NEG`` where ``blocked``."""
    with torch.autocast(device_type=q.device.type, enabled=False):
        return torch.matmul(q.float() * scale, k.float().transpose(-1, -2)).masked_fill_(blocked, _NEG)


def _exp_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(exp(x - max), its row sums, the row maxima) of (B, H, n, m) scores masked with ``_NEG``.

    One exp pass, with its argument floored at ``_EXP_FLOOR``: masked keys (``_NEG``) and far tails would
    otherwise take the exp kernel's slow path for huge or subnormal results (several times slower on CPU).
    A masked key of a row that has a real key so gets exp(-80) = 1.8e-35 instead of 0: below float32's
    resolution of any sum it joins. A row without any key gets 1 everywhere; callers zero such rows."""
    top = x.amax(-1, keepdim=True)  # (B, H, n, 1)
    e = (x - top).clamp_(min=_EXP_FLOOR).exp_()
    return e, e.sum(-1, keepdim=True), top


class _PairKL(torch.autograd.Function):
    """Sum over the real query rows of one layer pair of the head-mean KL(teacher row || student row),
    equal head counts, in blocks of query rows against their causal (and segment-trimmed) keys.

    With s the student's masked scores, t the teacher's, e_t = exp(t - max t), z_t its row sum and
    lse the row log-normalizers, each row's KL is  sum_j e_t (t - s) / z_t + lse_s - lse_t  and its
    gradient with respect to s is  softmax(s) - e_t / z_t.  The output is a scalar, so forward computes
    d/dq and d/dk of the student right away, while each block's maps are at hand (two score matmuls
    and two exp passes per block, none recomputed), and backward only scales them by the incoming
    gradient. Rows without any allowed key (padding) count 0, as in the autograd path."""

    @staticmethod
    def forward(ctx, sq, sk, s_scale, tq, tk, t_scale, query_mask, key_mask, segments, windows, block, want):
        # want: the caller will backpropagate (grad mode on and the student's q or k requires grad); under no_grad
        # ctx.needs_input_grad still says True, so it is passed in: validation passes skip d/dq, d/dk
        heads, length = sq.shape[1], sq.shape[2]
        d_q = torch.zeros(sq.shape, dtype=torch.float32, device=sq.device) if want else None  # (B, H, T, d)
        d_k = torch.zeros(sk.shape, dtype=torch.float32, device=sk.device) if want else None  # (B, H, T, d)
        total = sq.new_zeros((), dtype=torch.float32)
        for a in range(0, length, block):
            b = min(a + block, length)
            lo = windows[a] if windows is not None else 0  # keys lo..b-1: causal and segment-trimmed window
            allowed = _block_allowed(key_mask, a, b - a, b, segments, lo)  # (B, 1, n, m)
            blocked, valid = ~allowed, allowed.any(-1).to(torch.float32)  # valid: (B, 1, n) rows with at least one key
            q, k = sq[:, :, a:b], sk[:, :, lo:b]  # (B, H, n, d), (B, H, m, d)
            s = _masked_scores(q, k, s_scale, blocked)  # (B, H, n, m)
            e_s, z_s, top_s = _exp_rows(s)
            t = _masked_scores(tq[:, :, a:b], tk[:, :, lo:b], t_scale, blocked)
            e_t, z_t, top_t = _exp_rows(t)
            rows = query_mask[:, None, a:b] * valid  # (B, 1, n): rows that count
            lse_gap = (top_s - top_t + z_s.log() - z_t.log()).squeeze(-1)  # (B, H, n): lse_s - lse_t
            per_head = (t.sub_(s).mul_(e_t).sum(-1) / z_t.squeeze(-1) + lse_gap) * rows  # (B, H, n); masked keys: t - s = 0
            total = total + per_head.mean(1).sum()
            if want:  # d loss / d (q k^T) = (softmax(s) - p_t) * scale / H on the rows that count, 0 elsewhere
                row = (rows * (s_scale / heads))[..., None]  # (B, 1, n, 1)
                d = e_s.mul_(row / z_s).addcmul_(e_t, -row / z_t)  # (B, H, n, m)
                d_q[:, :, a:b] = torch.matmul(d, k.float())
                d_k[:, :, lo:b] += torch.matmul(d.transpose(-1, -2), q.float())
        ctx.save_for_backward(d_q, d_k)
        ctx.dtypes = (sq.dtype, sk.dtype)
        return total

    @staticmethod
    def backward(ctx, grad):
        d_q, d_k = ctx.saved_tensors
        return ((grad * d_q).to(ctx.dtypes[0]), (grad * d_k).to(ctx.dtypes[1]), *([None] * 10))


def _block_allowed(key_mask: torch.Tensor, start: int, n: int, m: int, segments: torch.Tensor | None, lo: int = 0) -> torch.Tensor:
    """(B, 1, n, m - lo): which keys lo..m-1 the queries start..start+n-1 attend (causal, real keys, own segment)."""
    device = key_mask.device
    causal = torch.arange(lo, m, device=device)[None, :] <= torch.arange(start, start + n, device=device)[:, None]  # (n, m - lo)
    allowed = causal[None, None] & key_mask[:, None, None, lo:m]
    if segments is not None:  # segmented rows: a query sees only the keys of its own segment
        allowed = allowed & (segments[:, None, start : start + n, None] == segments[:, None, None, lo:m])
    return allowed


def _segment_first(segments: torch.Tensor) -> torch.Tensor:
    """(B, T) segment index of each token (non-decreasing along a row) -> (B, T) position of its segment's first token."""
    t = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return torch.where(starts, t, torch.zeros_like(t)).cummax(-1).values


def attention_kl_from_qk(
    student: tuple[torch.Tensor, torch.Tensor, float],
    teacher: tuple[torch.Tensor, torch.Tensor, float],
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
    normalizer: float | None = None,
    block: int = 64,  # query rows per block: 0.83-0.86x the time of 128 (benchmarks/results/attention_kl.json)
    *, segments: torch.Tensor | None = None,
    closed_form: bool | None = None,
    key_windows: bool = True,
) -> torch.Tensor:
    """``losses.attention_loss`` of one layer pair from recorded (query, key, scale) of both models.

    query (B, H, T, d), key (B, Hkv, T, d); query_mask: (B, T) rows that count; key_mask:
    (B, T) real keys (future keys are always excluded); segments: (B, T) segment index of each
    token for segmented rows (``packing=split``: keys of other segments are excluded too), or
    None. closed_form: None picks :class:`_PairKL` when both have the same number of heads;
    False forces the checkpointed autograd path (the reference for tests and benchmarks/attention_kl.py).
    key_windows: with segments, a block of queries skips the keys before the earliest start of its
    queries' segments in any row (the loss is unchanged; False computes every causal key, for benchmarks).
    """
    (sq, sk, s_scale), (tq, tk, t_scale) = student, teacher
    sk, tk = repeat_heads(sk, sq.shape[1]), repeat_heads(tk, tq.shape[1])
    qmask, kmask = query_mask.to(torch.float32), key_mask.bool()
    grad = torch.is_grad_enabled() and (sq.requires_grad or sk.requires_grad)
    same_heads = sq.shape[1] == tq.shape[1]
    if closed_form and not same_heads:
        raise ValueError(f"closed_form=True needs equal head counts (student {sq.shape[1]}, teacher {tq.shape[1]}); use None")
    closed_form = same_heads if closed_form is None else closed_form
    # segmented rows: a block's queries see no key before the earliest segment start among them (in any row)
    first = _segment_first(segments).amin(0).tolist() if segments is not None and key_windows else None  # [T]
    if closed_form:
        total = _PairKL.apply(sq, sk, s_scale, tq.detach(), tk.detach(), t_scale, qmask, kmask, segments, first, block, grad)
    else:
        total = sq.new_zeros((), dtype=torch.float32)
        for a in range(0, sq.shape[2], block):
            b = min(a + block, sq.shape[2])
            lo = first[a] if first is not None else 0  # keys lo..b-1: causal and segment-trimmed window
            args = (sq[:, :, a:b], sk[:, :, lo:b], s_scale, tq[:, :, a:b], tk[:, :, lo:b], t_scale, kmask, qmask[:, a:b], a, segments, lo)
            total = total + (checkpoint(_block_kl, *args, use_reentrant=False) if grad else _block_kl(*args))
    count = float(query_mask.sum()) if normalizer is None else float(normalizer)
    return total / max(count, 1.0)
