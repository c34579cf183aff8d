"""Weights & Biases logging: offline runs record every logged step under train.out/wandb; a missing package names the extra."""

import sys

import pytest

from support.models import trainer_llama
from support.tracking import offline_wandb, wandb_history
from tinywave.training.batches import BatchStream
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.trainer import fit
from tinywave.cli import main as cli
from tinywave.files import load_jsonl


def train(shards, out, **run):
    model = trainer_llama()
    settings = RunSettings(out=str(out), steps=3, ckpt_every=10, **run)
    return fit(DistillObjective(model, LossWeights(ce=1.0)), list(model.parameters()), BatchStream(shards, 4, seed=0),
               OptimSettings(), settings, lambda d: None, config={"loss": {"ce_weight": 1.0}})


def test_offline_wandb_run_holds_the_logged_metrics(shards, tmp_path, monkeypatch):
    offline_wandb(tmp_path, monkeypatch)
    result = train(shards, tmp_path / "run", report_to=["wandb"])
    history = wandb_history(tmp_path / "run")
    logged = load_jsonl(tmp_path / "run" / "train_log.jsonl")
    assert sorted(history) == [r["step"] for r in logged] == [1, 2, 3]
    for r in logged:
        assert history[r["step"]]["loss/ce"] == pytest.approx(r["ce"], rel=1e-6)
        assert history[r["step"]]["lr"] == pytest.approx(r["lr"]) and history[r["step"]]["tokens"] == r["tokens"]
    assert result.step == 3


def test_missing_wandb_names_the_extra_before_training(shards, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError, as when it is not installed
    with pytest.raises(ValueError, match=r"train.report_to with wandb needs the wandb package.*pip install 'tinywave\[wandb\]'"):
        train(shards, tmp_path / "run", report_to=["wandb"])
    assert not (tmp_path / "run" / "train_log.jsonl").exists()


def test_report_to_names_its_trackers_and_refuses_the_old_switches(shards, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"train.report_to=\['tensorboard', 'mlflow'\] names \['mlflow'\].*choose from \['tensorboard', 'wandb'\]"):
        train(shards, tmp_path / "bad", report_to=["tensorboard", "mlflow"])
    train(shards, tmp_path / "none", report_to=[])  # neither tracker: only the JSONL log
    assert (tmp_path / "none" / "train_log.jsonl").is_file() and not (tmp_path / "none" / "tensorboard").exists()
    train(shards, tmp_path / "tb", report_to=["tensorboard"])
    assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))
    # every training recipe takes the one key and refuses the two booleans it replaced, naming it
    for argv in (["train"], ["distill"], ["sfm", "pretrain"], ["sfm", "distill"], ["vocoder", "train"]):
        assert cli([*argv, "--print-config", "train.report_to=[tensorboard,wandb]"]) == 0
        assert "- wandb" in capsys.readouterr().out
        for old in ("train.wandb=true", "train.tensorboard=false"):
            assert cli([*argv, "--print-config", old]) == 2
            assert "was renamed 'train.report_to'" in capsys.readouterr().err
