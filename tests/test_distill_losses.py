"""Parity of every distillation loss with a plain reference computation written out token by token."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tinywave.distill.losses import IGNORE_INDEX, attention_loss, ce_loss, chunked_vocab_losses, hidden_loss, kl_loss



def _labels(b: int, t: int, v: int, keep: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[torch.rand(b, t, generator=g) > keep] = IGNORE_INDEX
    return labels


def ref_ce(logits, labels):
    terms = [-torch.log_softmax(logits[b, t].double(), -1)[labels[b, t]] for b in range(labels.shape[0]) for t in range(labels.shape[1]) if labels[b, t] != IGNORE_INDEX]
    return sum(terms) / len(terms) if terms else torch.tensor(0.0, dtype=torch.float64)


def ref_kl(s_logits, t_logits, mask, temp):
    terms = []
    for b, t in mask.nonzero().tolist():
        p = torch.softmax(t_logits[b, t].double() / temp, -1)
        q = torch.softmax(s_logits[b, t].double() / temp, -1)
        terms.append((p * (p.log() - q.log())).sum() * temp**2)
    return sum(terms) / len(terms) if terms else torch.tensor(0.0, dtype=torch.float64)


def test_ce_matches_reference_and_torch():
    logits = torch.randn(3, 7, 11)
    labels = _labels(3, 7, 11, 0.7, 0)
    assert ce_loss(logits, labels).item() == pytest.approx(ref_ce(logits, labels).item(), rel=1e-5)
    torch_mean = F.cross_entropy(logits.reshape(-1, 11), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    assert ce_loss(logits, labels).item() == pytest.approx(torch_mean.item(), rel=1e-6)


@pytest.mark.parametrize("temp", [1.0, 2.0, 4.0])
def test_kl_matches_reference(temp):
    s, t = torch.randn(2, 6, 13), torch.randn(2, 6, 13) * 3
    mask = _labels(2, 6, 13, 0.6, 1) != IGNORE_INDEX
    assert kl_loss(s, t, mask, temp).item() == pytest.approx(ref_kl(s, t, mask, temp).item(), rel=1e-5)
    assert kl_loss(t, t, mask, temp).item() == pytest.approx(0.0, abs=1e-6)


def _plain_and_chunked(n_b, n_t, v, d, keep, chunk, temp, seed):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n_b, n_t, d, generator=g, requires_grad=True)
    weight = torch.randn(v, d, generator=g, requires_grad=True)
    t_hidden, t_weight = torch.randn(n_b, n_t, d + 1, generator=g), torch.randn(v, d + 1, generator=g)
    labels = _labels(n_b, n_t, v, keep, seed)
    mask = labels != IGNORE_INDEX
    # plain: full logits
    logits = hidden @ weight.T  # (B, T, V)
    t_logits = t_hidden @ t_weight.T
    plain = (ce_loss(logits, labels), kl_loss(logits, t_logits, mask, temp))
    grads_plain = torch.autograd.grad(plain[0] + 0.7 * plain[1], (hidden, weight), allow_unused=True)
    # chunked: only the real rows, teacher logits on demand
    rows = mask.flatten().nonzero().squeeze(1)
    t_flat = t_hidden.flatten(0, 1)
    chunked = chunked_vocab_losses(
        hidden.flatten(0, 1)[rows], weight, labels.flatten()[rows], lambda r: t_flat[r] @ t_weight.T, rows, temp, chunk_size=chunk
    )
    grads_chunked = torch.autograd.grad(chunked[0] + 0.7 * chunked[1], (hidden, weight))
    return plain, chunked, grads_plain, grads_chunked


@settings(max_examples=25, deadline=None)
@given(
    n_b=st.integers(1, 3), n_t=st.integers(1, 9), v=st.integers(2, 17), keep=st.sampled_from([0.0, 0.5, 1.0]),
    chunk=st.integers(1, 12), temp=st.sampled_from([1.0, 2.5]), seed=st.integers(0, 1000),
)
def test_chunked_vocab_losses_match_plain(n_b, n_t, v, keep, chunk, temp, seed):
    plain, chunked, gp, gc = _plain_and_chunked(n_b, n_t, v, 5, keep, chunk, temp, seed)
    for a, b in zip(plain, chunked):
        assert torch.isfinite(b)
        assert b.item() == pytest.approx(a.item(), rel=1e-4, abs=1e-6)
    for a, b in zip(gp, gc):
        a = torch.zeros_like(b) if a is None else a
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_fully_masked_batch_gives_zero_loss_and_zero_gradients():
    plain, chunked, _, grads = _plain_and_chunked(2, 4, 7, 5, 0.0, 3, 2.0, 0)
    assert chunked[0].item() == 0.0 and chunked[1].item() == 0.0
    assert all(torch.count_nonzero(g) == 0 for g in grads)
    assert ce_loss(torch.randn(2, 4, 7), torch.full((2, 4), IGNORE_INDEX)).item() == 0.0


def test_chunked_loss_never_keeps_full_logits_for_backward():
    """With chunking, no tensor saved for backward is as large as the [N, V] logits."""
    n, v, d = 64, 257, 8
    hidden = torch.randn(n, d, requires_grad=True)
    weight = torch.randn(v, d, requires_grad=True)
    targets = torch.randint(0, v, (n,))
    t_logits = torch.randn(n, v)
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ce, kl = chunked_vocab_losses(hidden, weight, targets, lambda r: t_logits[r], None, 2.0, chunk_size=8)
    (ce + kl).backward()
    assert max(sizes) < n * v / 4  # chunks of 8 rows: at most the weight (v*d) or a chunk's activations
    assert hidden.grad is not None and torch.isfinite(hidden.grad).all()


def test_normalizer_makes_accumulation_a_token_mean():
    """Two micro-batches normalised by the step's token count == one batch averaged over its tokens."""
    logits = torch.randn(4, 5, 9)
    labels = _labels(4, 5, 9, 0.6, 3)
    total = int((labels != IGNORE_INDEX).sum())
    parts = ce_loss(logits[:2], labels[:2], normalizer=total) + ce_loss(logits[2:], labels[2:], normalizer=total)
    assert parts.item() == pytest.approx(ce_loss(logits, labels).item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_hidden_loss_matches_reference(kind):
    s, t = torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    per = {
        "mse": lambda a, b: ((a - b) ** 2).mean(),
        "cosine": lambda a, b: 1 - (a @ b) / (a.norm() * b.norm()),
    }[kind]
    ref = sum(per(s[b, i].double(), t[b, i].double()) for b, i in mask.nonzero().tolist()) / int(mask.sum())
    assert hidden_loss(s, t, mask, kind).item() == pytest.approx(ref.item(), rel=1e-5)
    assert hidden_loss(s, t, torch.zeros_like(mask), kind).item() == 0.0
    with pytest.raises(ValueError, match="mse"):
        hidden_loss(s, t, mask, "l1")


def _attn_logp(b, h, t, key_mask, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(b, h, t, t, generator=g)
    allowed = torch.ones(t, t, dtype=torch.bool).tril()[None, None] & key_mask[:, None, None, :]
    return torch.log_softmax(scores.masked_fill(~allowed, torch.finfo(torch.float32).min), -1)


def ref_attention(s_logp, t_logp, query_mask, key_mask):
    terms = []
    for b in range(s_logp.shape[0]):
        for q in range(s_logp.shape[2]):
            if not query_mask[b, q]:
                continue
            keys = [k for k in range(q + 1) if key_mask[b, k]]
            per_head = []
            for h in range(s_logp.shape[1]):
                p, ls = t_logp[b, h, q, keys].double(), s_logp[b, h, q, keys].double()
                per_head.append((p.exp() * (p - ls)).sum())
            terms.append(sum(per_head) / len(per_head))
    return sum(terms) / len(terms) if terms else 0.0


def test_attention_loss_matches_reference_with_padding():
    key_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    query_mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    s, t = _attn_logp(2, 3, 6, key_mask, 0), _attn_logp(2, 3, 6, key_mask, 1)
    got = attention_loss(s, t, query_mask, key_mask)
    assert got.item() == pytest.approx(float(ref_attention(s, t, query_mask, key_mask)), rel=1e-5)
    assert attention_loss(t, t, query_mask, key_mask).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_loss_fully_masked_and_gradients_finite():
    key_mask = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    s = _attn_logp(1, 2, 4, key_mask, 0).requires_grad_(True)
    t = _attn_logp(1, 2, 4, key_mask, 1)
    none = attention_loss(s, t, torch.zeros(1, 4, dtype=torch.bool), key_mask)
    none.backward()
    assert none.item() == 0.0 and torch.count_nonzero(s.grad) == 0
    s.grad = None
    some = attention_loss(s, t, key_mask, key_mask)
    some.backward()
    assert torch.isfinite(s.grad).all() and torch.count_nonzero(s.grad) > 0


def test_attention_loss_head_average_when_head_counts_differ():
    key_mask = torch.ones(1, 5, dtype=torch.bool)
    s4, t2 = _attn_logp(1, 4, 5, key_mask, 0), _attn_logp(1, 2, 5, key_mask, 1)
    got = attention_loss(s4, t2, key_mask, key_mask)
    s_avg = s4.exp().mean(1, keepdim=True).log()
    t_avg = t2.exp().mean(1, keepdim=True).log()
    assert got.item() == pytest.approx(float(ref_attention(s_avg, t_avg, key_mask, key_mask)), rel=1e-5)
    assert math.isfinite(got.item())
