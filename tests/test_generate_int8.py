"""Dynamic int8 linears: the int8 kernel equals its floating-point reference, the model stays close to fp32, 4x smaller."""

import copy

import pytest
import torch
from torch import nn

from support.models import tiny_llama, tiny_tokenizer
from tinywave.generate.deploy import prepare
from tinywave.generate.int8 import Int8Linear, module_bytes


def test_int8_linear_matches_its_floating_point_reference():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48, bias=True)
    q = Int8Linear.from_linear(linear)
    x = torch.randn(2, 5, 64)  # (B, T, in)
    assert q(x).shape == (2, 5, 48)
    torch.testing.assert_close(q(x), q.reference(x), rtol=1e-5, atol=1e-5)  # int32 accumulation == float product
    # per-channel rounding error is at most half a step of that channel
    assert bool(((q.dequantized() - linear.weight).abs() <= q.scale[:, None] / 2 + 1e-7).all())
    assert q.qweight.dtype == torch.int8 and int(q.qweight.abs().max()) == 127
    torch.testing.assert_close(q(x), linear(x), rtol=0, atol=0.02)


def test_int8_model_is_close_to_fp32_and_four_times_smaller_in_its_linears():
    tok, _ = tiny_tokenizer()
    fp32 = tiny_llama(tokenizer=tok, layers=2, width=64, lm_head_scale=8.0).eval()
    with torch.no_grad():
        fp32.lm_head.weight.mul_(20.0)  # peaked next-token distributions, as a trained model has
    int8 = prepare(copy.deepcopy(fp32), "fp32", int8=True)
    assert not any(isinstance(m, nn.Linear) for m in int8.modules())

    ids = torch.randint(0, len(tok), (2, 24))  # (B, T)
    with torch.no_grad():
        a, b = fp32(ids).logits, int8(ids).logits  # (B, T, V)
    rel = float((a - b).abs().max() / a.abs().max())
    top1 = float((a.argmax(-1) == b.argmax(-1)).float().mean())
    print(f"\n[int8] max |logit diff| / max |logit| = {rel:.4f}, top-1 agreement {top1:.3f}")
    assert rel < 0.05 and top1 >= 0.9

    prompt = ids[:1, :8]
    greedy = {name: m.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16, do_sample=False,
                                pad_token_id=tok.pad_token_id)[0, 8:] for name, m in (("fp32", fp32), ("int8", int8))}
    same = float((greedy["fp32"] == greedy["int8"]).float().mean())
    assert same >= 0.75, (greedy, same)

    linears = sum(m.weight.numel() * 4 for m in fp32.modules() if isinstance(m, nn.Linear))
    quantized = sum(module_bytes(m) for m in int8.modules() if isinstance(m, Int8Linear))
    print(f"[int8] linear bytes {quantized} vs fp32 {linears} ({quantized / linears:.3f}); "
          f"model {module_bytes(int8)} vs {module_bytes(fp32)}")
    assert quantized < 0.27 * linears and module_bytes(int8) < module_bytes(fp32) - 0.7 * linears


def test_int8_needs_an_fp32_model():
    tok, _ = tiny_tokenizer()
    with pytest.raises(ValueError, match="int8 dynamic quantization needs an fp32 model; use dtype=fp32 with int8"):
        prepare(tiny_llama(tokenizer=tok, lm_head_scale=8.0), "bf16", int8=True)


def test_torchao_backend_quantizes_the_same_layers_and_stays_close_to_fp32():
    """int8_backend=torchao (tinywave/generate/int8.py): every linear becomes torchao's int8 tensor subclass,
    the logits stay as close to fp32 as the built-in backend's, and an unknown backend names the choices.
    torchao is an optional extra outside dev (pyproject.toml says why): with it absent this test is skipped and
    the next one covers the error a user gets."""
    pytest.importorskip("torchao", reason="the optional torchao extra is not installed (pip install 'tinywave[torchao]')")
    tok, _ = tiny_tokenizer()
    fp32 = tiny_llama(tokenizer=tok, layers=2, width=64, lm_head_scale=8.0).eval()
    with torch.no_grad():
        fp32.lm_head.weight.mul_(20.0)
    ao = prepare(copy.deepcopy(fp32), "fp32", int8=True, int8_backend="torchao")
    ours = prepare(copy.deepcopy(fp32), "fp32", int8=True)
    linears = [m for m in ao.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m.weight).__module__.startswith("torchao") for m in linears)  # every linear, weights int8
    ids = torch.randint(0, len(tok), (2, 24))  # (B, T)
    with torch.no_grad():
        ref, a, b = fp32(ids).logits, ao(ids).logits, ours(ids).logits  # (B, T, V)
    rel = {name: float((x - ref).abs().max() / ref.abs().max()) for name, x in (("torchao", a), ("tinywave", b))}
    print(f"\n[int8] max |logit diff| / max |logit|: {rel}")
    assert rel["torchao"] < 0.05 and rel["torchao"] < 3 * rel["tinywave"] + 1e-3
    assert float((a.argmax(-1) == ref.argmax(-1)).float().mean()) >= 0.9
    with pytest.raises(ValueError, match=r"int8_backend='onnx' is not known; choose one of \['tinywave', 'torchao'\]"):
        prepare(copy.deepcopy(fp32), "fp32", int8=True, int8_backend="onnx")


def test_torchao_backend_without_the_package_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torchao.quantization", None)  # `from torchao.quantization import ...` fails, as when not installed
    with pytest.raises(ValueError, match=r"int8_backend=torchao needs the torchao package: pip install 'tinywave\[torchao\]'"):
        prepare(nn.Sequential(nn.Linear(4, 4)), "fp32", int8=True, int8_backend="torchao")
