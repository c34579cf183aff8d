"""Stacking operators, schedules, and growth of real HF models (HuBERT, Llama) with optimizer state."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from support.models import tiny_hubert, tiny_llama
from tinywave.stacking import (
    apply_growth,
    carry_optimizer_state,
    final_depth,
    grow,
    growth_steps,
    layer_list,
    parameter_sources,
    plan_growth,
    stage_at,
    stage_lengths,
)


def _layers(n: int, width: int = 4) -> nn.ModuleList:
    torch.manual_seed(0)
    return nn.ModuleList([nn.Linear(width, width) for _ in range(n)])


EXPECTED_ORDER = [
    ("none", {}, [0, 1, 2]),
    ("top", {}, [0, 1, 2, 0, 1, 2]),
    ("gradual", {"n": 1}, [0, 1, 2, 2]),
    ("gradual", {"n": 2}, [0, 1, 2, 1, 2]),
    ("middle", {"n": 1}, [0, 1, 1, 2]),
    ("interleaved", {"every": 1}, [0, 0, 1, 1, 2, 2]),
    ("interleaved", {"every": 2}, [0, 1, 1, 2]),
]


@pytest.mark.parametrize("op,params,order", EXPECTED_ORDER)
def test_layer_order_copies_and_equal_weights(op, params, order):
    layers = _layers(3)
    new, provenance, _ = grow(layers, op, **params)
    assert provenance == order
    growth = grow(layers, op, **params)
    first = {p: k for k, p in reversed(list(enumerate(order)))}
    assert growth.copies == [k for k, p in enumerate(order) if first[p] != k]
    for k, p in enumerate(order):
        if k in growth.copies:
            assert new[k] is not layers[p]
            for a, b in zip(new[k].parameters(), layers[p].parameters()):
                assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
        else:
            assert new[k] is layers[p]  # originals are kept: their optimizer state still applies


def test_copy_is_independent_of_original():
    layers = _layers(2)
    new, _, _ = grow(layers, "interleaved", every=1)
    with torch.no_grad():
        new[1].weight.add_(1.0)
    assert not torch.equal(new[0].weight, new[1].weight)


def test_interleaved_targets_stay_on_their_block_over_stages():
    layers, targets = _layers(3), {0: 4, 1: 8, 2: 12}
    ancestry = list(range(3))  # original index of every current layer
    for plan in plan_growth("interleaved", 3, 4):
        layers, provenance, targets = grow(layers, "interleaved", targets, **plan)
        ancestry = [ancestry[p] for p in provenance]
    assert len(layers) == 12
    assert ancestry == [0] * 4 + [1] * 4 + [2] * 4  # initial layer i ends as a block of four
    assert targets == {3: 4, 7: 8, 11: 12}  # the last layer of block i keeps teacher layer 4, 8, 12
    assert all(ancestry[j] == [4, 8, 12].index(t) for j, t in targets.items())


def test_other_operators_respace_targets():
    _, _, targets = grow(_layers(3), "top", {0: 4, 1: 8, 2: 12})
    assert targets == {1: 4, 3: 8, 5: 12}
    _, _, targets = grow(_layers(3), "gradual", {0: 4, 1: 8, 2: 12}, n=1)
    assert targets == {0: 4, 2: 8, 3: 12}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.data())
def test_interleaved_properties(n_layers, data):
    every = data.draw(st.integers(1, n_layers))
    keys = data.draw(st.sets(st.integers(0, n_layers - 1)))
    targets = {j: 100 + j for j in keys}
    new, provenance, new_targets = grow(_layers(n_layers, 2), "interleaved", targets, every=every)
    assert len(new) == n_layers + n_layers // every
    assert [p for k, p in enumerate(provenance) if k == 0 or provenance[k - 1] != p] == list(range(n_layers))
    for k, t in new_targets.items():
        j = t - 100
        assert provenance[k] == j  # same block
        assert k == len(provenance) - 1 or provenance[k + 1] != j  # the last layer of the block


def test_bad_operator_and_params_are_value_errors():
    with pytest.raises(ValueError, match="choose one of"):
        grow(_layers(2), "sideways")
    with pytest.raises(ValueError, match="every=5"):
        grow(_layers(2), "interleaved", every=5)
    with pytest.raises(ValueError, match="does not take"):
        grow(_layers(2), "top", every=2)
    with pytest.raises(ValueError, match="stages=1"):
        plan_growth("none", 3, 2)


def test_schedules():
    assert stage_lengths(100, 4, "equal") == [25, 25, 25, 25]
    assert stage_lengths(100, 4, "prop1") == [10, 20, 30, 40]
    assert growth_steps(100, 4, "prop1") == [10, 30, 60]
    assert [stage_at(s, [10, 30, 60]) for s in (0, 9, 10, 59, 60, 99)] == [0, 0, 1, 2, 3, 3]
    assert plan_growth("interleaved", 3, 4) == [{"every": 1}, {"every": 2}, {"every": 3}]
    assert final_depth("top", 3, 3) == 12 and final_depth("gradual", 2, 4) == 8 and final_depth("none", 6, 1) == 6


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 10), st.integers(0, 500), st.sampled_from(["equal", "prop1"]))
def test_schedule_properties(n_stages, extra, kind):
    total = n_stages + extra
    lengths = stage_lengths(total, n_stages, kind)
    assert sum(lengths) == total and min(lengths) >= 1 and len(lengths) == n_stages
    if kind == "prop1" and total >= 4 * n_stages * n_stages:
        assert lengths == sorted(lengths)
    steps = growth_steps(total, n_stages, kind)
    assert steps == sorted(set(steps)) and all(0 < s < total for s in steps)


@pytest.mark.parametrize("op,params,depth", [("none", {}, 2), ("top", {}, 4), ("gradual", {"n": 1}, 3),
                                              ("middle", {"n": 2}, 4), ("interleaved", {"every": 2}, 3)])
def test_every_operator_on_hubert_keeps_output_shape(op, params, depth):
    model = tiny_hubert(dropout=False)
    wav = torch.randn(2, 800)
    before = model(wav).last_hidden_state  # (B, T, D)
    apply_growth(model, op, {1: 2}, **params)
    out = model(wav, output_hidden_states=True)
    assert model.config.num_hidden_layers == depth
    assert out.last_hidden_state.shape == before.shape and len(out.hidden_states) == depth + 1


def test_hubert_growth_keeps_output_shape_and_hidden_states():
    model = tiny_hubert(dropout=False)
    wav = torch.randn(2, 800)
    before = model(wav, output_hidden_states=True)  # hooks are installed before growth
    growth = apply_growth(model, "interleaved", {0: 1, 1: 2}, every=1)
    after = model(wav, output_hidden_states=True)
    assert model.config.num_hidden_layers == 4 and len(layer_list(model)) == 4
    assert after.last_hidden_state.shape == before.last_hidden_state.shape
    assert len(after.hidden_states) == 5 and all(h.shape == before.last_hidden_state.shape for h in after.hidden_states)
    assert growth.targets == {1: 1, 3: 2}
    # the first original layer sees the same input, so its output is unchanged by growth
    assert torch.allclose(after.hidden_states[1], before.hidden_states[1])


def test_llama_growth_renumbers_layers_and_generates_with_cache():
    model = tiny_llama(vocab=50, width=16, heads=2, kv_heads=1, ffn=32, max_positions=64)
    growth = apply_growth(model, "interleaved", {0: 5, 1: 11}, every=1)
    layers = layer_list(model)
    assert model.config.num_hidden_layers == 4 and growth.provenance == [0, 0, 1, 1]
    assert [layer.self_attn.layer_idx for layer in layers] == [0, 1, 2, 3]
    ids = torch.tensor([[1, 5, 7, 9]])
    assert model(ids).logits.shape == (1, 4, 50)
    cached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True)
    plain = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, plain)


@pytest.mark.parametrize("mode", ["copy", "reset"])
def test_optimizer_state_copy_or_reset(mode):
    model = tiny_llama(vocab=50, width=16, heads=2, kv_heads=1, ffn=32, max_positions=64).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 50, (2, 8))
    model(ids, labels=ids).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    old_layers = list(layer_list(model))
    growth = apply_growth(model, "top")
    new_opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    carry_optimizer_state(opt, new_opt, parameter_sources(old_layers, growth), mode)
    copy_q = layer_list(model)[2].self_attn.q_proj.weight
    orig_q = old_layers[0].self_attn.q_proj.weight
    if mode == "reset":
        assert len(new_opt.state) == 0
        return
    assert torch.equal(new_opt.state[copy_q]["exp_avg"], opt.state[orig_q]["exp_avg"])
    assert new_opt.state[copy_q]["exp_avg"].data_ptr() != opt.state[orig_q]["exp_avg"].data_ptr()
    assert new_opt.state[orig_q]["exp_avg_sq"].equal(opt.state[orig_q]["exp_avg_sq"])
    model(ids, labels=ids).loss.backward()
    new_opt.step()  # the grown model trains on
