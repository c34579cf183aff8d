"""Parity of the fast paths in tinywave.distill.fused with the reference losses of losses.py.

* fused CE + KL (closed-form logit gradients, chunked) vs plain CE/KL on full logits,
  values and gradients, including batches whose rows are all masked;
* attention KL from recorded queries and keys (SDPA kept in every layer) vs the
  reference KL on the eager attention maps of the same models;
* the whole DistillObjective vs a step written with the reference functions.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinywave.data.shards import labels_from_batch
from tinywave.distill.fused import _segment_first, attention_kl_from_qk, fused_vocab_losses, record_qk, use_qk_attention
from tinywave.distill.losses import IGNORE_INDEX, attention_loss, ce_loss, hidden_loss, kl_loss
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.distill.teacher import OnlineTeacher
from tinywave.models.attention import decoder_layers
from tinywave.models.hf import new_llama
from tinywave.models.student import build_student



def reference_vocab(hidden, weight, targets, teacher, temperature, normalizer, w_ce, w_kl):
    """Plain CE + KL on the full (1, N, V) logits, the reference functions of losses.py."""
    logits = (hidden @ weight.T)[None]  # (1, N, V)
    ce = ce_loss(logits, targets[None], normalizer)
    if teacher is None:
        return w_ce * ce, ce, torch.zeros(())
    kl = kl_loss(logits, teacher[None], torch.ones_like(targets[None], dtype=torch.bool), temperature, normalizer)
    return w_ce * ce + w_kl * kl, ce, kl


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 23), vocab=st.integers(2, 40), chunk=st.integers(1, 9), temperature=st.floats(0.5, 4.0),
       w_ce=st.floats(0.0, 2.0), w_kl=st.floats(0.0, 2.0), with_teacher=st.booleans(), seed=st.integers(0, 10_000))
def test_fused_vocab_losses_equal_plain_losses_and_gradients(n, vocab, chunk, temperature, w_ce, w_kl, with_teacher, seed):
    g = torch.Generator().manual_seed(seed)
    d = 6
    hidden = torch.randn(n, d, generator=g, dtype=torch.float64).float().requires_grad_()
    weight = (torch.randn(vocab, d, generator=g) * 2).requires_grad_()
    targets = torch.randint(0, vocab, (n,), generator=g)
    teacher = torch.randn(n, vocab, generator=g) * 3 if with_teacher else None
    normalizer = n + 3.0  # as when other micro-batches or ranks hold more tokens
    rows = torch.arange(n).flip(0)  # the callback gets the rows it is asked for, whatever their order
    callback = (lambda r: teacher[r]) if with_teacher else None
    total, ce, kl = fused_vocab_losses(hidden, weight, targets, callback, rows.flip(0), temperature, chunk_size=chunk, normalizer=normalizer, ce_weight=w_ce, kl_weight=w_kl)
    (total * 1.7).backward()
    got = (hidden.grad.clone(), weight.grad.clone())
    hidden.grad = weight.grad = None
    ref_total, ref_ce, ref_kl = reference_vocab(hidden, weight, targets, teacher, temperature, normalizer, w_ce, w_kl)
    (ref_total * 1.7).backward()
    torch.testing.assert_close(ce, ref_ce.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(kl, ref_kl.detach().float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(total.detach(), ref_total.detach().float(), rtol=1e-5, atol=1e-6)
    if n == 0:  # every row masked: zero losses and zero (not missing) gradients
        assert float(total.detach()) == 0.0 and not got[0].numel() and torch.count_nonzero(got[1]) == 0
        return
    torch.testing.assert_close(got[0], hidden.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got[1], weight.grad, rtol=1e-4, atol=1e-6)


def test_fused_vocab_losses_refuse_a_bad_chunk_size():
    with pytest.raises(ValueError, match="chunk_size=0 must be a positive"):
        fused_vocab_losses(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(2, dtype=torch.long), chunk_size=0)


def pair_of_models(s_heads, s_kv, t_heads, t_kv):
    torch.manual_seed(0)
    teacher = new_llama(30, 3, 16, t_heads, t_kv, 32, max_positions=64).eval().requires_grad_(False)
    student = new_llama(30, 2, 16, s_heads, s_kv, 32, max_positions=64)
    with torch.no_grad():
        for layer in [*decoder_layers(teacher), *decoder_layers(student)]:
            layer.self_attn.q_proj.weight.mul_(8.0)  # peaked maps, like trained models
    return teacher, student


def batch_with_padding():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(4, 30, (3, 13), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row
    mask[2, :] = 0  # a row with no real token at all
    return ids, mask


@pytest.mark.parametrize("heads", [(4, 4, 4, 4), (4, 2, 2, 1)], ids=["same-heads", "gqa-and-head-average"])
def test_attention_kl_from_queries_and_keys_equals_the_eager_map_loss(heads):
    teacher, student = pair_of_models(*heads)
    ids, mask = batch_with_padding()
    qmask = labels_from_batch(ids, mask) != IGNORE_INDEX  # (B, T)
    pairs = [(0, 1), (1, 2)]
    # reference: eager attention maps of both models
    for m in (teacher, student):
        m.set_attn_implementation("eager")
    t_maps = teacher(ids, attention_mask=mask, output_attentions=True).attentions
    s_out = student(ids, attention_mask=mask, output_attentions=True)
    ref = sum(attention_loss(s_out.attentions[s].clamp_min(1e-30).log(), t_maps[t].clamp_min(1e-30).log(), qmask, mask.bool(), 7.0)
              for s, t in pairs)
    ref.backward()
    ref_grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
    student.zero_grad(set_to_none=True)
    # fast path: SDPA everywhere, queries and keys recorded on the mapped layers
    for m in (teacher, student):
        use_qk_attention(m)
    with record_qk(decoder_layers(teacher), [t for _, t in pairs]) as tqk:
        t_logits = teacher(ids, attention_mask=mask).logits
    with record_qk(decoder_layers(student), [s for s, _ in pairs]) as sqk:
        s_logits = student(ids, attention_mask=mask).logits
    real = mask.bool()  # fully padded rows hold arbitrary outputs in either implementation
    torch.testing.assert_close(s_logits[real], s_out.logits[real], rtol=1e-4, atol=1e-5)  # the same outputs as eager
    torch.testing.assert_close(t_logits[real], teacher(ids, attention_mask=mask).logits[real])
    got = sum(attention_kl_from_qk(sqk[s], tqk[t], qmask, mask.bool(), 7.0, block=4) for s, t in pairs)
    got.backward()
    assert float(ref.detach()) > 1e-3  # the maps differ: not a comparison of zeros
    torch.testing.assert_close(got.detach(), ref.detach(), rtol=1e-4, atol=1e-6)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(dict(student.named_parameters())[name].grad, grad, rtol=1e-3, atol=1e-6, msg=name)


def test_record_qk_needs_the_qk_attention():
    _, student = pair_of_models(2, 2, 2, 2)
    with pytest.raises(ValueError, match="use_qk_attention"):
        with record_qk(decoder_layers(student), [0]):
            pass


def test_distill_objective_equals_a_step_written_with_the_reference_losses():
    torch.manual_seed(0)
    teacher = new_llama(40, 5, 16, 4, 2, 32, max_positions=64).eval().requires_grad_(False)
    student = build_student(teacher, 3, [1, 3, 4])  # pairs avoid the last layers (HF applies the final norm there)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ids, mask = batch_with_padding()
    ids = ids.clamp(max=39)
    labels = labels_from_batch(ids, mask)
    tmask, pairs, temp, norm = labels != IGNORE_INDEX, [(0, 1), (1, 3)], 2.0, float((labels != IGNORE_INDEX).sum()) + 5
    weights = LossWeights(ce=1.0, kl=0.7, hidden=0.3, attn=0.5, temperature=temp, chunk_size=5)
    # reference: eager maps, full logits, plain losses
    for m in (teacher, student):
        m.set_attn_implementation("eager")
    t = teacher(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    s = student(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    ref = {"ce": ce_loss(s.logits, labels, norm), "kl": kl_loss(s.logits, t.logits, tmask, temp, norm),
           "hidden": torch.stack([hidden_loss(s.hidden_states[a + 1], t.hidden_states[b + 1], tmask, "mse", norm) for a, b in pairs]).mean(),
           "attn": torch.stack([attention_loss(s.attentions[a].clamp_min(1e-30).log(), t.attentions[b].clamp_min(1e-30).log(), tmask, mask.bool(), norm) for a, b in pairs]).mean()}
    ref_total = ref["ce"] + 0.7 * ref["kl"] + 0.3 * ref["hidden"] + 0.5 * ref["attn"]
    ref_total.backward()
    ref_grads = {k: p.grad.clone() for k, p in student.named_parameters()}
    student.zero_grad(set_to_none=True)
    # ours: OnlineTeacher + DistillObjective (SDPA, fused vocabulary losses, attention from q/k)
    use_qk_attention(student)
    objective = DistillObjective(student, weights, pairs, OnlineTeacher(teacher, [1, 3], [1, 3]))
    got = objective({"input_ids": ids, "attention_mask": mask, "labels": labels}, norm)
    got["loss"].backward()
    for key, value in ref.items():
        assert float(value.detach()) > 1e-4, key
        torch.testing.assert_close(got[key].detach(), value.detach(), rtol=1e-4, atol=1e-6, msg=key)
    torch.testing.assert_close(got["loss"].detach(), ref_total.detach(), rtol=1e-4, atol=1e-6)
    for name, p in student.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name], rtol=1e-3, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 12), vocab=st.integers(3, 30), k_frac=st.floats(0.0, 1.0), temperature=st.floats(0.5, 3.0),
       seed=st.integers(0, 10_000))
def test_sparse_topk_teacher_equals_its_dense_distribution(n, vocab, k_frac, temperature, seed):
    """The KL from TopKTargets (a top-k cache) equals the KL from the same distribution written out over V."""
    from tinywave.distill.fused import TopKTargets

    g = torch.Generator().manual_seed(seed)
    k = max(1, round(k_frac * vocab))
    probs = torch.softmax(torch.randn(n, vocab, generator=g) * 3, -1)
    top, ids = probs.topk(k, -1)  # (n, k)
    rest = (1 - top.sum(-1)).clamp_min(0)
    fill = (rest / max(vocab - k, 1)).clamp_min(1e-38).log() if k < vocab else torch.full((n,), -1e4)
    dense = fill[:, None].expand(n, vocab).clone().scatter(1, ids, top.log())  # (n, V) log-probabilities
    hidden = torch.randn(n, 5, generator=g).requires_grad_()
    weight = torch.randn(vocab, 5, generator=g).requires_grad_()
    targets = torch.randint(0, vocab, (n,), generator=g)
    results = []
    for teacher in (lambda r: dense[r] * temperature, lambda r: TopKTargets(ids[r], top.log()[r], fill[r])):
        total, ce, kl = fused_vocab_losses(hidden, weight, targets, teacher, None, temperature, chunk_size=4, normalizer=None, ce_weight=0.5, kl_weight=1.0)
        total.backward()
        results.append((kl, hidden.grad.clone(), weight.grad.clone()))
        hidden.grad = weight.grad = None
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("segmented", [False, True], ids=["plain", "segmented-rows"])
def test_closed_form_attention_kl_equals_the_autograd_path(segmented):
    """_PairKL (loss and d/dq, d/dk in closed form, computed in forward) against the checkpointed log-softmax path, with padding,
    an empty row, several blocks and (segmented) documents packed in a row."""
    g = torch.Generator().manual_seed(5)
    b, h, t, d = 3, 4, 19, 8
    sq, sk = (torch.randn(b, h, t, d, generator=g) * 2).requires_grad_(), (torch.randn(b, 2, t, d, generator=g) * 2).requires_grad_()
    tq, tk = torch.randn(b, h, t, d, generator=g) * 3, torch.randn(b, 2, t, d, generator=g) * 3
    kmask = torch.ones(b, t, dtype=torch.bool)
    kmask[1, 15:], kmask[2, :] = False, False  # a padded row and a row with no real token
    qmask = kmask.clone()
    qmask[0, 0] = False  # a real query row that does not count
    segments = torch.tensor([[0] * 7 + [1] * 12, [0] * 10 + [1] * 9, [0] * 19]) if segmented else None
    results = {}
    for closed in (True, False):
        loss = attention_kl_from_qk((sq, sk, 0.35), (tq, tk, 0.35), qmask, kmask, 5.0, block=6, segments=segments, closed_form=closed)
        grads = torch.autograd.grad(loss, (sq, sk))
        results[closed] = (loss.detach(), grads)
    assert float(results[False][0]) > 1e-2  # the maps differ
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-5, atol=1e-6)
    for got, want in zip(results[True][1], results[False][1]):
        assert float(want.abs().max()) > 1e-4
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="closed_form=True needs equal head counts"):
        attention_kl_from_qk((sq, sk, 0.35), (tq[:, :2], tk, 0.35), qmask, kmask, closed_form=True)


def test_closed_form_attention_kl_scales_its_stored_gradient_and_skips_it_without_grad():
    """_PairKL computes d/dq, d/dk in forward: backward must scale them by the incoming gradient (here 3 and
    -0.5, through a weighted sum with another term), and a forward without grad gives the same loss."""
    g = torch.Generator().manual_seed(7)
    b, h, t, d = 2, 2, 13, 4
    sq, sk = torch.randn(b, h, t, d, generator=g).requires_grad_(), torch.randn(b, h, t, d, generator=g).requires_grad_()
    tq, tk = torch.randn(b, h, t, d, generator=g), torch.randn(b, h, t, d, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)

    def kl(closed):
        return attention_kl_from_qk((sq, sk, 0.5), (tq, tk, 0.5), mask, mask, 4.0, block=5, closed_form=closed)

    for weight in (3.0, -0.5):
        got = torch.autograd.grad(weight * kl(True) + (sq ** 2).sum(), (sq, sk))
        want = torch.autograd.grad(weight * kl(False) + (sq ** 2).sum(), (sq, sk))
        for a, w in zip(got, want):
            torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-6)
    with torch.no_grad(), MatmulCount() as count:
        plain = kl(True)
    torch.testing.assert_close(plain, kl(False).detach(), rtol=1e-5, atol=1e-6)
    assert count.calls == 2 * 3  # no grad: the student's and the teacher's scores per block of 5 rows (13 rows: 3 blocks)
    with MatmulCount() as count:
        kl(True)
    assert count.calls == 4 * 3  # with grad: also d/dq and d/dk per block, in forward


class MatmulCount(torch.overrides.TorchFunctionMode):
    """Counts torch.matmul calls inside the block."""

    calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.matmul
        return func(*args, **(kwargs or {}))


def dense_attention_kl(sq, sk, tq, tk, scale, qmask, kmask, segments, normalizer):
    """Reference: full (B, H, T, T) maps in float64 under the block-causal segment mask, no blocks and no key windows."""
    t = sq.shape[2]
    allowed = torch.ones(t, t, dtype=torch.bool).tril()[None, None] & kmask[:, None, None, :] & (segments[:, None, :, None] == segments[:, None, None, :])

    def logp(q, k):
        return torch.log_softmax((q.double() @ k.double().transpose(-1, -2) * scale).masked_fill(~allowed, -1e300), -1)

    ls, lt = logp(sq, sk), logp(tq, tk)
    pt = lt.exp() * allowed
    per_row = (pt * (lt - ls).masked_fill(~allowed, 0.0)).sum(-1).mean(1)  # (B, T)
    return (per_row * qmask).sum() / normalizer


@pytest.mark.parametrize("closed", [True, False], ids=["closed-form", "autograd"])
def test_segment_key_windows_leave_the_attention_kl_unchanged(closed):
    """Query blocks skip the keys before their segments' earliest start (in every row): loss and gradients equal
    the dense reference, with segments that make the windows start late, padding and a query row that does not count."""
    g = torch.Generator().manual_seed(11)
    b, h, t, d = 2, 4, 24, 8
    sq, sk = (torch.randn(b, h, t, d, generator=g) * 2).requires_grad_(), (torch.randn(b, h, t, d, generator=g) * 2).requires_grad_()
    tq, tk = torch.randn(b, h, t, d, generator=g) * 3, torch.randn(b, h, t, d, generator=g) * 3
    segments = torch.tensor([[0] * 5 + [1] * 9 + [2] * 10, [0] * 8 + [1] * 10 + [2] * 6])
    kmask = torch.ones(b, t, dtype=torch.bool)
    kmask[1, 21:] = False
    qmask = kmask.clone()
    qmask[0, 6] = False
    first = _segment_first(segments)
    assert first[:, 8].min() == 5 and first[:, 20].min() == 14  # the windows really start late
    got = attention_kl_from_qk((sq, sk, 0.3), (tq, tk, 0.3), qmask, kmask, 6.0, block=4, segments=segments, closed_form=closed)
    got_grads = torch.autograd.grad(got, (sq, sk))
    want = dense_attention_kl(sq, sk, tq, tk, 0.3, qmask.double(), kmask, segments, 6.0)
    want_grads = torch.autograd.grad(want, (sq, sk))
    assert float(want.detach()) > 1e-2
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-5, atol=1e-6)
    for a, w in zip(got_grads, want_grads):
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-6)
