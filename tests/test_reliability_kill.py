"""kill -9 at random points of tokenization, teacher training and distillation, then resume.

Each job runs as the real command (``python -m tinywave.cli ...``) in its own process
group and is killed with SIGKILL at seeded random moments: a random number of progress
units (records or steps, read from the job's own output files) after it starts, plus a
random delay, so kills land in model loading, in a training step, in the middle of a
checkpoint write or of an output line. After each kill the same command is rerun; the
final state must equal an uninterrupted run of the same command: the same token records,
bit-identical weights and the same loss curve. The figures are printed (-s).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from test_reliability_resources import lm_workspace, train_args
from test_speech_tokenizer import espeak_corpus, random_tokenizer
from tinywave.cli import main
from tinywave.distill.checkpoint import latest_checkpoint, read_state
from tinywave.files import load_jsonl, read_jsonl

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
KILLS = 5
# one thread, like the in-process reference runs (conftest), so the floating-point sums are identical
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TINYWAVE_PROGRESS": "0", "TINYWAVE_LOG": "INFO"}
ENV.pop("TINYWAVE_DEBUG", None)


@dataclass
class KillReport:
    stage: str
    kills: int = 0
    runs: int = 0
    killed_mid_save: int = 0  # a temporary checkpoint folder was left behind
    torn_lines: int = 0  # an output line was cut by the kill
    redone: int = 0  # steps logged after the newest checkpoint (done again after the restart)
    seconds: float = 0.0
    kill_points: list = None  # progress (records or steps) seen at each kill

    def line(self) -> str:
        return " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in asdict(self).items())


def torn(path: Path) -> int:
    return sum(1 for _, obj, _ in read_jsonl(path) if obj is None) if path.exists() else 0


def kill_and_resume(args: list[str], progress, report: KillReport, rng: random.Random, after_kill, logs: Path) -> int:
    """Run the command until it exits by itself, SIGKILLing it KILLS times at random progress points."""
    t0 = time.monotonic()
    while True:
        report.runs += 1
        with open(logs / f"{report.stage}_{report.runs}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "tinywave.cli", *args], cwd=ROOT, env=ENV, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                if report.kills < KILLS:
                    target = progress() + rng.choice([0, 1, 1, 2, 2, 3])
                    while proc.poll() is None and progress() < target and time.monotonic() - t0 < 600:
                        time.sleep(0.003)
                    time.sleep(rng.uniform(0.0, 0.25))
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        report.kills += 1
                        report.kill_points = [*(report.kill_points or []), progress()]
                        after_kill(report)
                        continue
                rc = proc.wait(timeout=600)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        report.seconds = time.monotonic() - t0
        print(f"\n[reliability] kill -9: {report.line()}")
        return rc


# ---------------------------------------------------------------- tokenization


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kill_tok")
    base = load_jsonl(espeak_corpus(root / "espeak", n=4))
    items = [{**base[i % 4], "id": f"utt{i:03d}", "audio": str(root / "espeak" / base[i % 4]["audio"])} for i in range(36)]
    wav, rate = sf.read(root / "espeak" / base[0]["audio"], dtype="float32")
    data = (root / "espeak" / base[0]["audio"]).read_bytes()
    (root / "cut.wav").write_bytes(data[: len(data) // 2])
    items[5] = {"id": "missing", "audio": str(root / "nowhere.wav")}
    items[17] = {"id": "cut", "audio": str(root / "cut.wav")}
    sf.write(root / "stereo.wav", np.stack([wav, wav], axis=1), rate)
    items[24] = {**items[24], "audio": str(root / "stereo.wav")}  # base[0] downmixed: the same speech
    (root / "manifest.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    return {"manifest": root / "manifest.jsonl", "tokenizer": random_tokenizer(rate=25.0).save(root / "tok"), "root": root}


def test_kill_tokenize_and_resume(corpus, tmp_path):
    def args(out: Path) -> list[str]:
        return ["tokenize", "--manifest", str(corpus["manifest"]), "--tokenizer", str(corpus["tokenizer"]), "--out", str(out), "workers=1"]

    assert main(args(tmp_path / "reference.jsonl")) == 1  # two bad items
    out = tmp_path / "tokens.jsonl"
    errors = tmp_path / "tokens.errors.jsonl"
    report = KillReport("tokenize")

    def progress() -> int:
        return sum(len(p.read_bytes().splitlines()) for p in (out, errors) if p.exists())

    def after_kill(r: KillReport) -> None:
        r.torn_lines += torn(out) + torn(errors)

    rng = random.Random(1234)
    assert kill_and_resume(args(out), progress, report, rng, after_kill, tmp_path) == 1
    assert report.kills >= KILLS
    ref_lines, got_lines = (tmp_path / "reference.jsonl").read_bytes().splitlines(), out.read_bytes().splitlines()
    assert sorted(got_lines) == sorted(ref_lines)  # the same records, byte for byte
    ids = [json.loads(line)["id"] for line in got_lines]
    assert len(ids) == len(set(ids)) == 34  # each good id exactly once
    assert sorted(errors.read_bytes().splitlines()) == sorted((tmp_path / "reference.errors.jsonl").read_bytes().splitlines())
    assert got_lines == ref_lines  # with one worker even the order is the manifest's


# ---------------------------------------------------------------- teacher training and distillation


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kill_lm")
    ws = lm_workspace(root)
    assert main(train_args(ws, root / "teacher", 3)) == 0  # the distillation teacher
    ws["teacher"] = root / "teacher" / "model"
    return ws


def curve(run: Path) -> list[dict]:
    """The logged loss curve without the wall-clock fields."""
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in load_jsonl(run / "train_log.jsonl")]


def check_same_run(run: Path, reference: Path) -> None:
    a, b = load_file(str(run / "model" / "model.safetensors")), load_file(str(reference / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "final weights differ"
    assert curve(run) == curve(reference)  # every logged loss, lr and gradient norm, to the last digit
    assert read_state(latest_checkpoint(run))["tokens_seen"] == read_state(latest_checkpoint(reference))["tokens_seen"]


def kill_training(args, run: Path, stage: str, tmp_path: Path, seed: int) -> KillReport:
    report = KillReport(stage)
    log = run / "train_log.jsonl"

    def progress() -> int:
        return max((obj["step"] for _, obj, _ in read_jsonl(log) if obj), default=0) if log.exists() else 0

    def after_kill(r: KillReport) -> None:
        ckpts = run / "checkpoints"
        r.killed_mid_save += bool(ckpts.is_dir() and any(p.name.startswith(".") for p in ckpts.iterdir()))
        r.torn_lines += torn(log)
        latest = latest_checkpoint(run)
        r.redone += max(0, progress() - (read_state(latest)["step"] if latest else 0))

    assert kill_and_resume(args, progress, report, random.Random(seed), after_kill, tmp_path) == 0
    assert report.kills >= KILLS
    return report


def test_kill_teacher_training_and_resume(lm, tmp_path):
    steps = 16
    assert main(train_args(lm, tmp_path / "reference", steps)) == 0
    run = tmp_path / "run"
    kill_training(train_args(lm, run, steps) + ["train.resume=true"], run, "train", tmp_path, seed=7)
    check_same_run(run, tmp_path / "reference")


def test_kill_distillation_and_resume(lm, tmp_path):
    def args(out: Path) -> list[str]:
        return ["distill", f"teacher.dir={lm['teacher']}", f"data.shards={lm['shards']}", f"train.out={out}", "train.steps=16",
                "student.n_layers=1", "data.batch_size=4", "loss.chunk_size=16", "optim.lr=5e-3", "optim.warmup_steps=1",
                "train.ckpt_every=1", "train.tensorboard=false", "train.resume=true"]

    assert main(args(tmp_path / "reference")) == 0
    run = tmp_path / "run"
    kill_training(args(run), run, "distill", tmp_path, seed=11)
    check_same_run(run, tmp_path / "reference")
