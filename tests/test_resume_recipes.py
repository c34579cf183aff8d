"""One training loop for every recipe: each runs two steps, is resumed for a third through the real CLI, and
ends with the weights of an uninterrupted three-step run (tinywave/training/trainer.py ``fit``)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from support.workspace import lm_workspace
from tinywave.cli import main
from tinywave.training.checkpoint import list_checkpoints

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """Shards + a tokenizer, a 2-step LM teacher, tone clips with a manifest, a tiny HuBERT teacher."""
    from transformers import HubertModel

    from tinywave.sfm.models import teacher_config

    root = tmp_path_factory.mktemp("resume")
    lm_workspace(root, n_docs=40)  # root/vocab (+ speech_tokenizer stub), root/shards
    assert main(["train", *RECIPES["train"](root, root / "teacher"), "train.steps=2"]) == 0
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        t = np.arange(int(16000 * (0.4 + 0.1 * i))) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(root / f"u{i}.wav", wav.astype(np.float32), 16000)
        lines.append(json.dumps({"id": f"u{i}", "audio": f"u{i}.wav", "speaker": ("a", "b")[i % 2]}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    torch.manual_seed(0)
    HubertModel(teacher_config(32, 2, 2, 64, conv_channels=16)).save_pretrained(root / "hubert")
    assert main(["units", "train", "--manifest", str(root / "manifest.jsonl"), "--out", str(root / "tok"), "n_units=12",
                 "workers=1", "max_frames=5000"]) == 0
    return root


def lm_train(ws: Path, out: Path) -> list[str]:
    return [f"tokenizer={ws / 'vocab'}", f"data.shards={ws / 'shards'}", f"train.out={out}", "model.n_layers=2", "model.width=32",
            "model.heads=4", "model.kv_heads=2", "model.max_positions=64", "data.batch_size=4", "optim.lr=1e-2",
            "optim.warmup_steps=1", "train.report_to=[]"]


RECIPES = {  # recipe -> (workspace, out) -> its arguments (without the step counts)
    "train": lambda ws, out: lm_train(ws, out),
    "distill": lambda ws, out: ["distill", f"teacher.dir={ws / 'teacher' / 'model'}", f"data.shards={ws / 'shards'}",
                                f"train.out={out}", "student.n_layers=1", "data.batch_size=4", "loss.chunk_size=16",
                                "optim.lr=5e-3", "optim.warmup_steps=1", "train.report_to=[]"],
    "sfm pretrain": lambda ws, out: ["sfm", "pretrain", "--manifest", str(ws / "manifest.jsonl"), "--out", str(out),
                                     "--units", str(ws / "tok"), "model.width=32", "model.n_layers=2", "model.heads=2",
                                     "model.ffn=64", "model.conv_channels=16", "data.batch_size=2", "data.crop_seconds=0.4",
                                     "optim.warmup_steps=1"],
    "sfm distill": lambda ws, out: ["sfm", "distill", "--teacher", str(ws / "hubert"), "--manifest", str(ws / "manifest.jsonl"),
                                    "--out", str(out), "student.width=16", "student.ffn=32", "student.heads=2",
                                    "student.n_layers=4", "student.teacher_layers=[1,2]", "growth.op=interleaved",
                                    "growth.init_layers=2", "growth.stages=2", "optim.warmup_steps=1",
                                    "data.crop_seconds=0.4", "data.batch_size=2"],
    "vocoder train": lambda ws, out: ["vocoder", "train", "--manifest", str(ws / "manifest.jsonl"), "--tokenizer", str(ws / "tok"),
                                      "--out", str(out), "data.batch_size=2", "data.segment_units=4", "model.channels=16",
                                      "model.embedding_dim=8", "model.kernels=[3]", "data.heldout=1", "eval.samples=0",
                                      "loss.adversarial_start=1", "model.disc_width=0.03", "model.disc_segment=1024"],
}


def run(recipe: str, ws: Path, out: Path, *extra: str) -> int:
    args = RECIPES[recipe](ws, out)
    return main((["train", *args] if recipe == "train" else args) + list(extra))


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file in the run's newest checkpoint, keyed by file and name."""
    newest = list_checkpoints(out)[-1]
    return {f"{p.name}:{k}": v for p in sorted(newest.rglob("*.safetensors")) for k, v in load_file(str(p)).items()}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_resumes_onto_the_uninterrupted_run(ws, tmp_path, recipe):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run(recipe, ws, tmp_path / "straight", "train.steps=3", "train.ckpt_every=1") == 0
        assert run(recipe, ws, tmp_path / "cut", "train.steps=3", "train.ckpt_every=1", "train.stop_after_steps=2") == 0
        assert [p.name for p in list_checkpoints(tmp_path / "cut")][-1] == "step_00000002"
        assert run(recipe, ws, tmp_path / "cut", "train.steps=3", "train.ckpt_every=1") == 2  # one rule: resuming is asked for
        assert run(recipe, ws, tmp_path / "cut", "train.steps=3", "train.ckpt_every=1", "train.resume=true") == 0
    finally:
        torch.set_num_threads(n)
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(tmp_path / "cut")
    assert list_checkpoints(tmp_path / "cut")[-1].name == "step_00000003"
    assert straight.keys() == resumed.keys() and straight
    different = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not different, different[:5]
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
