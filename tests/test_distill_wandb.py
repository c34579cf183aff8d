"""Weights & Biases logging: offline runs record every logged step under train.out/wandb; a missing package names the extra."""

import json
import random
import sys

import pytest
import torch

from tinywave.data.shards import ShardDataset, write_shards
from tinywave.training.batches import BatchStream
from tinywave.distill.objective import DistillObjective, LossWeights
from tinywave.training.settings import OptimSettings, RunSettings
from tinywave.training.trainer import fit
from tinywave.files import load_jsonl
from tinywave.models.hf import new_llama

BLOCK, FULL, LAST = 32768, 1, 4  # the .wandb transaction log: LevelDB-style blocks and chunk types


@pytest.fixture
def shards(tmp_path):
    rng = random.Random(0)
    docs = [[1] + [rng.randrange(4, 40) for _ in range(rng.randint(3, 20))] + [2] for _ in range(40)]
    write_shards(tmp_path / "shards", docs, 16, "fp", 40, 3, 1, 2)
    return ShardDataset(tmp_path / "shards")


def train(shards, out, **run):
    torch.manual_seed(0)
    model = new_llama(40, 2, 16, 2, 1, 32, 32)
    settings = RunSettings(out=str(out), steps=3, ckpt_every=10, tensorboard=False, **run)
    return fit(DistillObjective(model, LossWeights(ce=1.0)), list(model.parameters()), BatchStream(shards, 4, seed=0),
               OptimSettings(), settings, lambda d: None, {"loss": {"ce_weight": 1.0}})


def wandb_records(path):
    """The protobuf records of an offline run's ``run-*.wandb`` file: a 7-byte header (``:W&B``, magic,
    version), then chunks of (crc32: 4 bytes, length: 2, type: 1, data) that never straddle a 32 KiB block."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a chunk header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def offline_wandb(tmp_path, monkeypatch) -> None:
    """W&B offline, with nothing outside tmp_path and no reachable server."""
    pytest.importorskip("wandb")
    for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_BASE_URL": "http://127.0.0.1:9",
                       "WANDB_CONFIG_DIR": tmp_path / "cfg", "WANDB_CACHE_DIR": tmp_path / "cache",
                       "WANDB_DATA_DIR": tmp_path / "data", "WANDB_PROJECT": "tinywave-test"}.items():
        monkeypatch.setenv(var, str(value))


def wandb_history(run_dir) -> dict[int, dict]:
    """step -> the metrics logged at that step, read back from the offline run under ``run_dir/wandb``."""
    [run_file] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history = {}
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            history[items["_step"]] = items
    return history


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
