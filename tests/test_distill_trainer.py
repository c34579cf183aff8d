"""Trainer pieces: resumable batch order, schedule, checkpoints, accumulation, non-finite stops."""

import json
import math

import pytest
import torch

from support.models import trainer_llama
from tinywave.training.checkpoint import latest_checkpoint, list_checkpoints, load_training_state, save_checkpoint
from tinywave.training.batches import BatchStream, DataPosition
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.trainer import NonFiniteLossError, config_changes, fit, make_optimizer, resume_point, warmup_cosine


def test_batch_order_is_seeded_and_resumable(shards):
    a = BatchStream(shards, 3, seed=7)
    first = [a.next()["input_ids"] for _ in range(5)]
    b = BatchStream(shards, 3, seed=7)
    assert all(torch.equal(x, b.next()["input_ids"]) for x in first)
    position = DataPosition(**json.loads(json.dumps(b.position.to_json())))  # as stored in state.json
    later = [b.next()["input_ids"] for _ in range(4)]
    resumed = BatchStream(shards, 3, seed=7, position=position)
    assert all(torch.equal(x, resumed.next()["input_ids"]) for x in later)
    other = BatchStream(shards, 3, seed=8)
    assert not all(torch.equal(x, other.next()["input_ids"]) for x in first)


def test_epoch_visits_each_row_once_and_ranks_split_batches(shards):
    stream = BatchStream(shards, 2, seed=0)
    rows = [i for b in range(stream.batches_per_epoch) for i in stream.indices(DataPosition(0, b))]
    assert len(rows) == len(set(rows)) == 2 * (len(shards) // 2)
    ranks = [BatchStream(shards, 2, seed=0, rank=r, world_size=2) for r in (0, 1)]
    r0, r1 = ranks[0].indices(DataPosition(0, 1)), ranks[1].indices(DataPosition(0, 1))
    assert set(r0).isdisjoint(r1) and r0 + r1 == stream.indices(DataPosition(0, 2)) + stream.indices(DataPosition(0, 3))
    batch = stream.next()
    assert (batch["labels"][:, :-1][batch["attention_mask"][:, 1:] == 1] == batch["input_ids"][:, 1:][batch["attention_mask"][:, 1:] == 1]).all()
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchStream(shards, len(shards) + 1, seed=0)


def test_warmup_cosine_schedule():
    values = [warmup_cosine(s, 4, 20, 0.1) for s in range(21)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == 1.0 and values[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))
    assert values[12] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_no_weight_decay_on_norms():
    model = trainer_llama()
    opt, _ = make_optimizer(list(model.parameters()), OptimSettings(weight_decay=0.3), 10)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.model.norm.weight) not in decayed and id(model.lm_head.weight) in decayed


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = trainer_llama()
    opt, sched = make_optimizer(list(model.parameters()), OptimSettings(), 10)
    model(torch.tensor([[1, 5, 6]])).logits.sum().backward()
    opt.step()
    sched.step()
    torch.manual_seed(123)
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, lambda d: (d / "weights.txt").write_text("w"), opt, sched, {"position": {"epoch": 0, "batch": step}}, config={"a": 1}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004", "step_00000006"]
    expected_rand = torch.rand(3)  # drawn from the RNG state the checkpoints saved
    opt2, sched2 = make_optimizer(list(trainer_llama(seed=1).parameters()), OptimSettings(), 10)
    state = load_training_state(latest_checkpoint(tmp_path), opt2, sched2)
    assert state["step"] == 6 and state["position"] == {"epoch": 0, "batch": 6}
    assert sched2.last_epoch == 1 and opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert torch.equal(torch.rand(3), expected_rand)  # RNG restored to the checkpoint's state (trainer_llama(seed=1) reseeded it)
    (latest_checkpoint(tmp_path) / "rng.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['rng.pt'\]"):
        load_training_state(latest_checkpoint(tmp_path), opt2, sched2)


def run_settings(tmp_path, **kw):
    base = dict(out=str(tmp_path), steps=2, log_every=1, ckpt_every=1, report_to=[])
    return RunSettings(**{**base, **kw})


def test_accumulation_equals_one_large_batch(tmp_path, shards):
    """2 micro-batches of 2 == 1 batch of 4 (same rows): same loss, same update."""
    results = {}
    for name, (bs, accum) in {"big": (4, 1), "accum": (2, 2)}.items():
        model = trainer_llama()
        objective = DistillObjective(model, LossWeights(ce=1.0, chunk_size=5))
        res = fit(objective, list(model.parameters()), BatchStream(shards, bs, seed=3), OptimSettings(accum_steps=accum, warmup_steps=1),
                  run_settings(tmp_path / name, steps=1), lambda d: None, config={})
        results[name] = (res.history[0], model.lm_head.weight.detach().clone())
    (big, w_big), (acc, w_acc) = results["big"], results["accum"]
    assert acc["tokens"] == big["tokens"]
    assert acc["ce"] == pytest.approx(big["ce"], rel=1e-5) and acc["grad_norm"] == pytest.approx(big["grad_norm"], rel=1e-4)
    torch.testing.assert_close(w_acc, w_big, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_step_is_close_to_fp32(tmp_path, shards):
    first = {}
    for precision in ("fp32", "bf16"):
        model = trainer_llama()
        res = fit(DistillObjective(model, LossWeights(ce=1.0)), list(model.parameters()), BatchStream(shards, 4, seed=0),
                  OptimSettings(), run_settings(tmp_path / precision, steps=1, precision=precision), lambda d: None, config={})
        first[precision] = res.history[0]["ce"]
    assert first["bf16"] != first["fp32"] and first["bf16"] == pytest.approx(first["fp32"], rel=2e-2)


def test_non_finite_loss_stops_without_saving(tmp_path, shards):
    model = trainer_llama()
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    objective = DistillObjective(model, LossWeights(ce=1.0))
    with pytest.raises(NonFiniteLossError, match="the loss is nan at step 1.*stopped without saving"):
        fit(objective, list(model.parameters()), BatchStream(shards, 2, seed=0), OptimSettings(), run_settings(tmp_path), lambda d: None, config={})
    assert list_checkpoints(tmp_path) == []


def test_max_minutes_checkpoints_and_stops(tmp_path, shards):
    model = trainer_llama()
    res = fit(DistillObjective(model, LossWeights(ce=1.0)), list(model.parameters()), BatchStream(shards, 2, seed=0), OptimSettings(),
              run_settings(tmp_path, steps=5, ckpt_every=10, max_minutes=1e-9), lambda d: None, config={})
    assert res.step == 1 and not res.finished
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001"]


def test_resume_point_refuses_to_overwrite(tmp_path):
    assert resume_point(run_settings(tmp_path, resume=True)) is None
    model = trainer_llama()
    opt, sched = make_optimizer(list(model.parameters()), OptimSettings(), 10)
    save_checkpoint(tmp_path, 3, lambda d: None, opt, sched, {}, config={})
    with pytest.raises(ValueError, match="already holds checkpoints.*--train.resume"):
        resume_point(run_settings(tmp_path))
    assert resume_point(run_settings(tmp_path, resume=True)).name == "step_00000003"
    with pytest.raises(ValueError, match="train.out is required"):
        resume_point(RunSettings())


def test_config_changes_ignore_resume_only_keys():
    saved = {"train": {"steps": 4, "resume": False, "stop_after_steps": 2}, "loss": {"kl_weight": 1.0}}
    now = {"train": {"steps": 4, "resume": True, "stop_after_steps": 0}, "loss": {"kl_weight": 0.5}}
    assert config_changes(saved, now) == ["loss.kl_weight: 1.0 -> 0.5"]
