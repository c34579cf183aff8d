"""Weights & Biases logging: offline runs record every logged step under train.out/wandb; a missing package names the extra."""

import sys

import pytest

from support.models import trainer_llama
from support.tracking import offline_wandb, wandb_history
from tinywave.training.batches import BatchStream
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.trainer import fit
from tinywave.files import load_jsonl


def train(shards, out, **run):
    model = trainer_llama()
    settings = RunSettings(out=str(out), steps=3, ckpt_every=10, tensorboard=False, **run)
    return fit(DistillObjective(model, LossWeights(ce=1.0)), list(model.parameters()), BatchStream(shards, 4, seed=0),
               OptimSettings(), settings, lambda d: None, config={"loss": {"ce_weight": 1.0}})


def test_offline_wandb_run_holds_the_logged_metrics(shards, tmp_path, monkeypatch):
    offline_wandb(tmp_path, monkeypatch)
    result = train(shards, tmp_path / "run", wandb=True)
    history = wandb_history(tmp_path / "run")
    logged = load_jsonl(tmp_path / "run" / "train_log.jsonl")
    assert sorted(history) == [r["step"] for r in logged] == [1, 2, 3]
    for r in logged:
        assert history[r["step"]]["loss/ce"] == pytest.approx(r["ce"], rel=1e-6)
        assert history[r["step"]]["lr"] == pytest.approx(r["lr"]) and history[r["step"]]["tokens"] == r["tokens"]
    assert result.step == 3


def test_missing_wandb_names_the_extra_before_training(shards, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError, as when it is not installed
    with pytest.raises(ValueError, match=r"train.wandb=true needs the wandb package.*pip install 'tinywave\[wandb\]'"):
        train(shards, tmp_path / "run", wandb=True)
    assert not (tmp_path / "run" / "train_log.jsonl").exists()
