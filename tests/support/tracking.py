"""Offline Weights & Biases runs: nothing leaves tmp_path, and the logged history is read back from the run file."""

from __future__ import annotations

import json

import pytest

BLOCK, FULL, LAST = 32768, 1, 4  # the .wandb transaction log: LevelDB-style blocks and chunk types


def offline_wandb(tmp_path, monkeypatch) -> None:
    """W&B offline, with nothing outside tmp_path and no reachable server."""
    pytest.importorskip("wandb")
    for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_BASE_URL": "http://127.0.0.1:9",
                       "WANDB_CONFIG_DIR": tmp_path / "cfg", "WANDB_CACHE_DIR": tmp_path / "cache",
                       "WANDB_DATA_DIR": tmp_path / "data", "WANDB_PROJECT": "tinywave-test"}.items():
        monkeypatch.setenv(var, str(value))


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


def wandb_history(run_dir) -> dict[int, dict]:
    """step -> the metrics logged at that step, read back from the offline run under ``run_dir/wandb``."""
    [run_file] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history = {}
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            history[items["_step"]] = items
    return history
