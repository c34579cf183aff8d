"""Mapped-layer attention maps: equal to eager attention's, outputs unchanged, other layers on SDPA."""

from functools import partial

import pytest
import torch

from support.models import tiny_llama
from tinywave.models.attention import MAPPED_ATTENTION, capture, use_mapped_attention

# 3 layers of width 32, 4 heads over 2 KV heads, a 48-wide FFN, 61 ids, 64 positions
llama = partial(tiny_llama, vocab=61, layers=3, kv_heads=2, ffn=48, max_positions=64)


def batch():
    ids = torch.randint(0, 61, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # right padding, as in the shards
    mask[2, 2:] = 0
    return ids, mask


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_mapped_maps_equal_eager_maps_and_outputs_unchanged(kv_heads):
    model = llama(kv_heads=kv_heads)
    ids, mask = batch()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(ids, attention_mask=mask, output_attentions=True)
    model.set_attn_implementation("sdpa")
    with torch.no_grad():
        sdpa = model(ids, attention_mask=mask)
        assert not sdpa.attentions  # SDPA produces no maps: the reason this module exists
    use_mapped_attention(model)
    with torch.no_grad(), capture(model, attn_layers=[0, 2]) as got:
        mapped = model(ids, attention_mask=mask)
    assert sorted(got.attn_logp) == [0, 2]
    for layer in (0, 2):
        logp = got.attn_logp[layer]
        assert logp.dtype == torch.float32 and logp.shape == (3, 4, 9, 9)
        torch.testing.assert_close(logp.exp(), eager.attentions[layer], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mapped.logits, eager.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mapped.logits, sdpa.logits, rtol=1e-5, atol=1e-5)


def test_unmapped_layers_use_sdpa_and_records_are_removed():
    model = llama()
    use_mapped_attention(model)
    ids, mask = batch()
    calls = []
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention

    def counting(*a, **k):
        calls.append(1)
        return original(*a, **k)

    F.scaled_dot_product_attention = counting
    try:
        with torch.no_grad(), capture(model, attn_layers=[1]) as got:
            model(ids, attention_mask=mask)
        with torch.no_grad():
            model(ids, attention_mask=mask)
    finally:
        F.scaled_dot_product_attention = original
    assert list(got.attn_logp) == [1]
    assert len(calls) == 2 + 3  # layers 0 and 2 inside capture, all three after it
    assert all(not hasattr(layer.self_attn, "_tinywave_attn_record") for layer in model.model.layers)


def test_maps_carry_gradients_and_stay_float32_under_bf16_autocast():
    model = llama().train()
    use_mapped_attention(model)
    ids, mask = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16), capture(model, hidden_layers=[2], attn_layers=[1]) as got:
        model(ids, attention_mask=mask)
    assert got.attn_logp[1].dtype == torch.float32
    assert got.hidden[2].shape == (3, 9, 32)
    got.attn_logp[1].exp()[..., 0].sum().backward()
    assert model.model.layers[1].self_attn.q_proj.weight.grad is not None
    assert model.model.layers[2].self_attn.q_proj.weight.grad is None  # after the mapped layer: no gradient path


def test_generation_with_cache_under_mapped_attention_matches_sdpa():
    model = llama()
    prompt = torch.tensor([[1, 5, 9, 3]])
    ref = model.generate(prompt, max_new_tokens=6, do_sample=False)
    use_mapped_attention(model)
    with capture(model, attn_layers=[0]):
        with torch.no_grad():
            model(prompt)
    got = model.generate(prompt, max_new_tokens=6, do_sample=False)
    assert torch.equal(got, ref)


def test_capture_errors():
    model = llama()
    with pytest.raises(ValueError, match="out of range"):
        with capture(model, hidden_layers=[3]):
            pass
    with pytest.raises(ValueError, match="use_mapped_attention"):
        with capture(model, attn_layers=[0]):
            pass
    use_mapped_attention(model)
    assert model.config._attn_implementation == MAPPED_ATTENTION
