"""SDPA over key windows (tinywave/models/windowed.py) equals one SDPA call over the full mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tinywave.data.shards import segment_positions
from tinywave.distill.fused import use_qk_attention
from tinywave.models.hf import new_llama
from tinywave.models import windowed as windowed_module
from tinywave.models.windowed import key_windows, windowed_sdpa


def block_causal(segments: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) bool: causal, within a segment, real keys only."""
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    return (causal & (segments[:, :, None] == segments[:, None, :]) & real[:, None, :])[:, None]


def test_key_windows_hold_every_allowed_key():
    segments = torch.tensor([[0] * 6 + [1] * 10, [0] * 9 + [1] * 7])
    mask = block_causal(segments, torch.ones(2, 16, dtype=torch.bool))
    windows = key_windows(mask, block=4)
    assert windows == [(0, 4, 0, 4), (4, 8, 0, 8), (8, 12, 0, 12), (12, 16, 6, 16)]  # the last block skips keys 0..5 in both rows
    for q0, q1, k0, k1 in windows:
        outside = mask[..., q0:q1, :].clone()
        outside[..., k0:k1] = False
        assert not outside.any()


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_windowed_sdpa_equals_one_sdpa_call_with_padding(kv_heads):
    g = torch.Generator().manual_seed(0)
    b, h, t, d = 3, 4, 40, 8
    q = torch.randn(b, h, t, d, generator=g, requires_grad=True)
    k = torch.randn(b, kv_heads, t, d, generator=g, requires_grad=True)
    v = torch.randn(b, kv_heads, t, d, generator=g, requires_grad=True)
    segments = torch.tensor([[0] * 13 + [1] * 15 + [2] * 12, [0] * 22 + [1] * 18, [0] * 7 + [1] * 33])
    real = torch.ones(b, t, dtype=torch.bool)
    real[2, 30:] = False  # a padded tail
    mask = block_causal(segments, real)
    got = windowed_sdpa(q, k, v, mask, scale=0.3, block=8)
    rep = h // kv_heads
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mask, scale=0.3)
    keep = mask.any(-1)[:, 0]  # (B, T): rows with a key (fully masked rows are the kernel's business either way)
    torch.testing.assert_close(got.transpose(1, 2)[keep], want.transpose(1, 2)[keep], rtol=1e-5, atol=1e-6)
    weights = torch.randn(got.shape, generator=g) * keep[:, None, :, None]
    grads = torch.autograd.grad((got * weights).sum(), (q, k, v))
    want_grads = torch.autograd.grad((want * weights).sum(), (q, k, v))
    for a, w in zip(grads, want_grads):
        assert float(w.abs().max()) > 1e-3
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-5)


def test_a_llama_on_segmented_rows_gives_the_same_logits_and_gradients_with_windowed_attention(monkeypatch):
    """The distillation recipe trains every student with use_qk_attention (windowed on segmented rows)."""
    windows = []
    monkeypatch.setattr(windowed_module, "key_windows", lambda mask, block: windows.append(key_windows(mask, block)) or windows[-1])
    torch.manual_seed(0)
    plain = new_llama(40, 2, 16, 2, 2, 32, max_positions=512)
    windowed = new_llama(40, 2, 16, 2, 2, 32, max_positions=512)
    windowed.load_state_dict(plain.state_dict())
    use_qk_attention(windowed)
    ids = torch.randint(4, 40, (2, 300))
    ids[0, [0, 90, 200]] = 1  # BOS: documents start here
    ids[1, [0, 150]] = 1
    mask = torch.ones_like(ids)
    positions = segment_positions(ids, mask, 1)
    outs = [m(ids, position_ids=positions, use_cache=False).logits for m in (plain, windowed)]  # no cache: a training forward
    assert len(windows) == 2 and windows[0][-1] == (256, 300, 150, 300)  # both layers windowed; the last block skips 150 keys
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)
    for out in outs:
        out.square().mean().backward()
    for (name, p), w in zip(plain.named_parameters(), windowed.parameters()):
        torch.testing.assert_close(w.grad, p.grad, rtol=1e-3, atol=1e-6, msg=name)


def test_windows_of_the_same_mask_are_reused_until_it_changes():
    segments = torch.tensor([[0] * 6 + [1] * 10, [0] * 9 + [1] * 7])
    mask = block_causal(segments, torch.ones(2, 16, dtype=torch.bool))
    first = key_windows(mask, block=4)
    assert key_windows(mask, block=4) is first  # every layer gets the same mask: scanned once
    mask[..., 12:, :8] = False  # changed in place: scanned again
    assert key_windows(mask, block=4)[-1] == (12, 16, 8, 16)
    assert key_windows(mask.clone(), block=8) == [(0, 8, 0, 8), (8, 16, 0, 16)]  # another mask, another block size (row 1: query 8 sees key 0)


def test_windows_of_an_inference_mask_are_scanned_each_time_and_stay_exact():
    """The teacher cache and scoring run under inference_mode, whose tensors have no version counter."""
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 16, 4, generator=g) for _ in range(3))
    segments = torch.tensor([[0] * 6 + [1] * 10, [0] * 9 + [1] * 7])
    with torch.inference_mode():
        mask = block_causal(segments, torch.ones(2, 16, dtype=torch.bool))
        assert mask.is_inference()
        got = windowed_sdpa(q, k, v, mask, block=4)
        torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=1e-5, atol=1e-6)
        mask[..., 12:, :8] = False  # changed in place: its windows follow
        assert key_windows(mask, block=4)[-1] == (12, 16, 8, 16)
