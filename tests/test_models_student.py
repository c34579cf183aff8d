"""Students built from a teacher: kept layers, copied weights, renumbered layers, narrower widths."""

from functools import partial

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from support.models import tiny_llama
from tinywave.models.student import build_student, check_layer_map, uniform_layer_map

# 6 layers of width 32, 4 heads over 2 KV heads, a 64-wide FFN (at every width), 53 ids, 64 positions
teacher = partial(tiny_llama, vocab=53, layers=6, kv_heads=2, ffn=64, max_positions=64)


def test_uniform_map_reference_values():
    assert uniform_layer_map(32, 10) == [2, 5, 9, 12, 15, 18, 21, 25, 28, 31]  # SpiritLM 7B -> 10 layers
    assert uniform_layer_map(4, 2) == [1, 3]
    assert uniform_layer_map(6, 4) == [1, 2, 4, 5]  # halves round up
    assert uniform_layer_map(5, 5) == [0, 1, 2, 3, 4]


@given(n_teacher=st.integers(1, 64), data=st.data())
def test_uniform_map_properties(n_teacher, data):
    n_student = data.draw(st.integers(1, n_teacher))
    got = uniform_layer_map(n_teacher, n_student)
    assert len(got) == n_student and got[-1] == n_teacher - 1
    assert all(0 <= a < b < n_teacher for a, b in zip(got, got[1:])) and got[0] >= 0


def test_pruned_student_copies_the_kept_layers():
    t = teacher()
    s = build_student(t, 3, keep_layers=[0, 2, 5])
    assert s.config.num_hidden_layers == 3 and len(s.model.layers) == 3
    for i, k in enumerate([0, 2, 5]):
        assert s.model.layers[i].self_attn.layer_idx == i  # renumbered for the KV cache
        for (name, a), (_, b) in zip(s.model.layers[i].state_dict().items(), t.model.layers[k].state_dict().items()):
            assert torch.equal(a, b), name
    assert torch.equal(s.model.embed_tokens.weight, t.model.embed_tokens.weight)
    assert torch.equal(s.model.norm.weight, t.model.norm.weight)
    assert torch.equal(s.lm_head.weight, t.lm_head.weight)
    assert t.config.num_hidden_layers == 6  # the teacher's config is untouched


def test_student_with_all_layers_is_the_teacher():
    t = teacher()
    s = build_student(t, 6, keep_layers=list(range(6))).eval()
    ids = torch.randint(0, 53, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(s(ids).logits, t(ids).logits, rtol=0, atol=0)


def test_default_keep_is_uniform_and_generation_with_cache_works():
    t = teacher()
    s = build_student(t, 2).eval()
    assert torch.equal(s.model.layers[1].mlp.up_proj.weight, t.model.layers[5].mlp.up_proj.weight)
    assert torch.equal(s.model.layers[0].mlp.up_proj.weight, t.model.layers[2].mlp.up_proj.weight)
    prompt = torch.tensor([[3, 7, 11]])
    cached = s.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=True)
    uncached = s.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached) and cached.shape == (1, 8)


def test_random_init_same_architecture_fresh_weights():
    t = teacher()
    s = build_student(t, 2, init="random")
    assert [p.shape for p in s.parameters()] == [p.shape for p in build_student(t, 2).parameters()]
    assert not torch.equal(s.model.embed_tokens.weight, t.model.embed_tokens.weight)
    assert not torch.equal(s.model.layers[0].self_attn.q_proj.weight, t.model.layers[2].self_attn.q_proj.weight)


def test_narrow_student_keeps_leading_channels_and_heads():
    t = teacher(width=64, heads=8, kv_heads=4)
    s = build_student(t, 2, keep_layers=[1, 4], width=32)
    assert (s.config.hidden_size, s.config.num_attention_heads, s.config.num_key_value_heads, s.config.head_dim) == (32, 4, 2, 8)
    assert s.config.intermediate_size == 32
    q_t = t.model.layers[4].self_attn.q_proj.weight  # (heads*8, 64)
    assert torch.equal(s.model.layers[1].self_attn.q_proj.weight, q_t[:32, :32])
    assert torch.equal(s.lm_head.weight, t.lm_head.weight[:, :32])
    assert s(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 53)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_layers": 2, "keep_layers": [0, 6]}, r"keep_layers holds 6, out of range: the teacher has layers 0\.\.5"),
        ({"n_layers": 2, "keep_layers": [1, 1]}, "repeats a layer"),
        ({"n_layers": 3, "keep_layers": [0, 1]}, "one teacher layer per student layer"),
        ({"n_layers": 7}, "cannot be taken from a 6-layer teacher"),
        ({"n_layers": 2, "init": "copy"}, "pruned"),
        ({"n_layers": 2, "width": 24}, "multiple of head_dim"),
    ],
)
def test_bad_student_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_student(teacher(), **kwargs)


def test_layer_map_errors_name_value_and_range():
    check_layer_map([(0, 1), (1, 5)], 2, 6)
    with pytest.raises(ValueError, match=r"teacher layer 6 is out of range; the teacher has layers 0\.\.5"):
        check_layer_map([(0, 6)], 2, 6)
    with pytest.raises(ValueError, match=r"student layer 2 is out of range; the student has layers 0\.\.1"):
        check_layer_map([(2, 0)], 2, 6)
    with pytest.raises(ValueError, match="maps a student layer twice"):
        check_layer_map([(0, 1), (0, 2)], 2, 6)
