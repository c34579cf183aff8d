"""SFM distillation with interleaved stacking under torchrun (2 CPU processes, DDP over gloo).

Each rank takes its rows of the same global batch; losses are weighted by each rank's
share of the frames, so the curve equals the 1-process run with the whole batch, across
the depth growth (where the DDP wrapper is rebuilt around the grown student).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tinywave.cli import main
from tinywave.files import load_jsonl

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A manifest of 8 short tone+noise clips of different lengths and a random tiny HuBERT teacher."""
    from transformers import HubertModel

    from tinywave.sfm.models import teacher_config

    root = tmp_path_factory.mktemp("sfm_dist")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(8):
        n = int(16000 * (0.3 + 0.1 * i))
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(n)
        sf.write(root / f"u{i}.wav", wav.astype(np.float32), 16000)
        lines.append(f'{{"id": "u{i}", "audio": "u{i}.wav"}}')
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    torch.manual_seed(0)
    HubertModel(teacher_config(32, 2, 2, 64, conv_channels=16)).save_pretrained(root / "teacher")
    return root


def sfm_args(ws, out, batch_size, *extra):
    return ["sfm", "distill", "--teacher", str(ws / "teacher"), "--manifest", str(ws / "manifest.jsonl"), "--out", str(out),
            "student.width=16", "student.ffn=32", "student.heads=2", "student.n_layers=4",
            "student.teacher_layers=[1,2]", "growth.op=interleaved", "growth.init_layers=2", "growth.stages=2",
            "train.steps=4", "optim.warmup_steps=1", "data.crop_seconds=0.6", f"data.batch_size={batch_size}",
            "train.ckpt_every=2", "train.log_every=1"]


def test_ddp_sfm_distill_follows_the_one_process_curve_across_growth(ws, tmp_path):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(sfm_args(ws, tmp_path / "single", 4)) == 0
    finally:
        torch.set_num_threads(n)
    env = {**os.environ, "TINYWAVE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "tinywave.cli", *sfm_args(ws, tmp_path / "ddp", 2, "train.parallel=ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    single, ddp = load_jsonl(tmp_path / "single" / "train_log.jsonl"), load_jsonl(tmp_path / "ddp" / "train_log.jsonl")
    assert [r["step"] for r in ddp] == [1, 2, 3, 4]
    assert [r["depth"] for r in ddp] == [r["depth"] for r in single] and ddp[0]["depth"] < ddp[-1]["depth"]  # it grew
    for a, b in zip(single, ddp):
        for key in (k for k in a if k.startswith(("loss", "mse/"))):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-7), (a["step"], key)
    assert (tmp_path / "ddp" / "student" / "config.json").is_file() and (tmp_path / "ddp" / "summary.json").is_file()
