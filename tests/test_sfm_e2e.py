"""End to end through the real CLI: teacher pretraining, distillation with stacking + resume, probes."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT
from tinywave.cli import main
from tinywave.config import load_config
from tinywave.files import load_jsonl

TINY_TEACHER = ["model.width=32", "model.n_layers=2", "model.heads=2", "model.ffn=64",
                "model.conv_channels=16", "n_units=8"]
TINY_TRAIN = ["data.batch_size=2", "data.crop_seconds=0.5", "optim.warmup_steps=1"]


def test_shipped_yaml_loads_and_plans_its_growth():
    from tinywave.recipes import sfm_distill

    cfg = load_config(sfm_distill.Config, ROOT / "configs" / "sfm-stacking.yaml")
    depth, plan = sfm_distill.growth_plan(cfg)
    assert depth == cfg.growth.init_layers and plan.op == "interleaved" and len(plan.steps) == cfg.growth.stages - 1
    with pytest.raises(ValueError, match="reaches"):
        sfm_distill.growth_plan(load_config(sfm_distill.Config, None, ["growth.op=top", "growth.stages=3"]))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from support.sfm_corpus import synth_corpus, synth_probes

    root = tmp_path_factory.mktemp("sfm")
    manifest = synth_corpus(root / "corpus", 6, voices=("en-us+f2", "en-us+m3"), words=(2, 4))
    probes = synth_probes(root / "corpus", per_class=4, keywords=("yes", "no", "go"),
                          voices=("en-us+f2", "en-us+m3", "en-gb+f3"), n_pr=6)
    assert main(["sfm", "pretrain", "--manifest", str(manifest), "--out", str(root / "t"), "train.steps=3",
                 "train.ckpt_every=2", *TINY_TEACHER, *TINY_TRAIN]) == 0
    return root, manifest, probes


def _distill(root: Path, manifest: Path, out: str, *extra: str) -> int:
    return main(["sfm", "distill", "--config", str(ROOT / "configs" / "sfm-stacking.yaml"),
                 "--teacher", str(root / "t" / "teacher"), "--manifest", str(manifest), "--out", str(root / out),
                 "student.width=16", "student.ffn=32", "student.heads=2", "student.n_layers=4",
                 "student.teacher_layers=[1,2]", "growth.init_layers=2", "growth.stages=2", "train.steps=6",
                 "train.ckpt_every=1", "train.log_every=1", *TINY_TRAIN, *extra])


@pytest.mark.slow
def test_pretrain_writes_a_plain_hf_teacher(corpus):
    from transformers import HubertModel

    root, _, _ = corpus
    teacher = HubertModel.from_pretrained(str(root / "t" / "teacher"))
    assert teacher.config.num_hidden_layers == 2
    assert (root / "t" / "teacher" / "unit_head.safetensors").is_file()
    assert [r["step"] for r in load_jsonl(root / "t" / "train_log.jsonl")] == [1, 2, 3]


@pytest.mark.slow
def test_pretrain_resumes_from_its_checkpoint(corpus, tmp_path):
    root, manifest, _ = corpus
    out = tmp_path / "t"
    shutil.copytree(root / "t", out)  # 3 steps done, the last one checkpointed
    args = ["sfm", "pretrain", "--manifest", str(manifest), "--out", str(out), "train.steps=4", "train.ckpt_every=2", *TINY_TEACHER, *TINY_TRAIN]
    assert main(args) == 2  # one rule for every recipe: checkpoints in OUT are continued only when asked (train.resume)
    assert main([*args, "train.resume=true"]) == 0
    assert [r["step"] for r in load_jsonl(out / "train_log.jsonl")] == [1, 2, 3, 4]  # resumed after step 3


@pytest.mark.slow
def test_distill_with_interleaved_stacking_resumes_across_growth(corpus):
    from transformers import HubertModel

    root, manifest, _ = corpus
    assert _distill(root, manifest, "full") == 0
    assert _distill(root, manifest, "resumed", "train.stop_after_steps=1") == 0  # stopped before the growth at step 2
    assert not (root / "resumed" / "student").exists()
    assert _distill(root, manifest, "resumed", "train.stop_after_steps=3", "train.resume=true") == 0  # depth 2, grows, stops at 4
    state = json.loads((root / "resumed" / "checkpoints" / "step_00000004" / "sfm_student.json").read_text())
    assert state["depth"] == 4
    assert _distill(root, manifest, "resumed", "--resume") == 0  # rebuilds the grown student before loading
    full, resumed = load_jsonl(root / "full" / "train_log.jsonl"), load_jsonl(root / "resumed" / "train_log.jsonl")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    assert [r["depth"] for r in resumed] == [2, 2, 4, 4, 4, 4]
    for a, b in zip(full, resumed):  # same batches, weights and optimizer state: same losses
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    meta = json.loads((root / "resumed" / "student" / "sfm_student.json").read_text())
    assert meta["depth"] == 4 and meta["targets"] == {"1": 1, "3": 2}
    assert meta["history"][0]["step"] == 2 and meta["history"][0]["provenance"] == [0, 0, 1, 1]
    assert HubertModel.from_pretrained(str(root / "resumed" / "student")).config.num_hidden_layers == 4
    assert (root / "resumed" / "loss.png").is_file() and (root / "resumed" / "summary.json").is_file()


@pytest.mark.slow
def test_distilled_student_is_accepted_by_the_hubert_unit_extractor(corpus):
    from tinywave.audio.features import Analysis
    from tinywave.audio.io import load_audio
    from tinywave.speech.hubert import HubertFeatures

    root, manifest, _ = corpus
    if not (root / "full" / "student").is_dir():
        assert _distill(root, manifest, "full") == 0
    features = HubertFeatures(root / "full" / "student", layer=3)
    wav, _ = load_audio(manifest.parent / "wavs" / "u00000.wav")
    vectors = features.vectors(Analysis(wav))
    assert vectors.shape == (features.n_frames(len(wav)), 16)
    # the whole unit pipeline: k-means fitted on the student's layer 3, then encoding
    from tinywave.speech.tokenizer import SpeechTokenizer

    assert main(["units", "train", "--manifest", str(manifest), "--out", str(root / "student_units"), "kind=hubert",
                 f"hubert.model={root / 'full' / 'student'}", "hubert.layer=3", "n_units=4", "workers=1"]) == 0
    units = SpeechTokenizer.load(root / "student_units").encode_units(wav)["hubert"]
    assert len(units) == features.n_frames(len(wav)) and 0 <= min(units) and max(units) < 4


@pytest.mark.slow
def test_probe_cli_writes_results_for_upstream_and_random_init(corpus):
    root, manifest, probes = corpus
    if not (root / "full" / "student").is_dir():
        assert _distill(root, manifest, "full") == 0
    out = root / "probe"
    assert main(["sfm", "probe", "--upstream", str(root / "full" / "student"), "--probes", str(probes),
                 "--out", str(out), "--epochs", "3"]) == 0
    report = json.loads((out / "probe_results.json").read_text())
    for section in ("results", "random_init"):
        res = report[section]
        assert 0.0 <= res["ks"]["accuracy"] <= 1.0 and 0.0 <= res["sid"]["accuracy"] <= 1.0
        assert res["pr"]["per"] >= 0.0
        assert len(res["ks"]["layer_weights"]) == 4 + 1
        assert sum(res["sid"]["layer_weights"]) == pytest.approx(1.0, abs=1e-3)
    assert report["results"]["ks"]["n_classes"] == 3 and report["results"]["sid"]["n_classes"] == 3


# ---------------------------------------------------------------- probes rank a trained upstream above a random one


def order_clip(label: str, rng: np.random.Generator) -> np.ndarray:
    """0.5 s: a low tone then a high one ("up") or the reverse ("down"), random pitches, phases and level.

    Separable, yet a random encoder is at chance: mean-pooling its features nearly forgets the order.
    """
    t = np.arange(4000) / 16000
    low, high = rng.uniform(250, 450), rng.uniform(900, 1400)
    first, second = (low, high) if label == "up" else (high, low)
    tones = [np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in (first, second)]
    return (rng.uniform(0.2, 0.5) * np.concatenate(tones) + 0.02 * rng.standard_normal(8000)).astype(np.float32)


def write_order_probes(root: Path, rng: np.random.Generator) -> Path:
    from tinywave.audio.io import save_wav

    for split, n in {"train": 32, "dev": 12, "test": 24}.items():
        rows = []
        for k in range(n):
            label = ("up", "down")[k % 2]
            save_wav(root / "ks" / "wavs" / f"{split}{k}.wav", order_clip(label, rng))
            rows.append({"id": f"{split}{k}", "audio": f"wavs/{split}{k}.wav", "label": label})
        (root / "ks" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def train_order_upstream(folder: Path, rng: np.random.Generator, steps: int = 500, seeds: tuple[int, ...] = (0, 1, 2, 3),
                         bar: float = 0.97) -> Path:
    """A tiny HuBERT trained (mean-pooled last layer + linear head) on fresh clips of the order task, until its own head
    gets at least ``bar`` of 128 fresh clips right. The run depends on the float path (fresh clones on avx512 CPUs
    trained seed 0 to chance, and once to a head whose features a probe fitted on 32 clips got only 0.75 of, in the
    full suite while the same test alone learned it), so a run that stays below the bar restarts from the next seed;
    the probe CLI, not this training, is what the test is about."""
    from transformers import HubertModel

    from tinywave.sfm.models import hidden_states, teacher_config

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,))
        return torch.from_numpy(np.stack([order_clip(("up", "down")[int(y)], rng) for y in labels])), labels  # (B, T), (B,)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float path on every machine and load as far as threads go
    try:
        for seed in seeds:
            torch.manual_seed(seed)
            encoder, head = HubertModel(teacher_config(32, 2, 2, 64, conv_channels=16, pos_conv_kernel=8)), torch.nn.Linear(32, 2)
            opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=2e-3)
            for _ in range(steps):
                wav, labels = batch(16)
                loss = torch.nn.functional.cross_entropy(head(hidden_states(encoder.train(), wav)[-1].mean(1)), labels)
                opt.zero_grad()
                loss.backward()
                opt.step()
            wav, labels = batch(128)
            with torch.no_grad():
                learned = (head(hidden_states(encoder.eval(), wav)[-1].mean(1)).argmax(-1) == labels).float().mean().item()
            if learned >= bar:
                break
        else:
            raise AssertionError(f"the tiny upstream did not learn the order task with seeds {seeds} (last: {learned:.2f} of 128 clips)")
    finally:
        torch.set_num_threads(threads)
    encoder.save_pretrained(str(folder))
    return folder


@pytest.mark.slow
def test_probe_cli_ranks_a_trained_upstream_above_a_random_one(tmp_path):
    rng = np.random.default_rng(0)
    probes = write_order_probes(tmp_path / "probes", rng)
    upstream = train_order_upstream(tmp_path / "upstream", rng)
    out = tmp_path / "probe"
    assert main(["sfm", "probe", "--upstream", str(upstream), "--probes", str(probes), "--out", str(out), "--tasks", "ks",
                 "--epochs", "60"]) == 0
    report = json.loads((out / "probe_results.json").read_text())
    trained, random = report["results"]["ks"]["accuracy"], report["random_init"]["ks"]["accuracy"]
    assert trained >= 0.9 and random <= 0.75, (trained, random)


@pytest.mark.slow
def test_sfm_runs_use_the_shared_run_log_with_tensorboard_and_wandb(corpus, tmp_path, monkeypatch):
    """sfm distill logs like every trainer: train_log.jsonl, TensorBoard events and (train.report_to with wandb) an offline W&B run."""
    from support.tracking import offline_wandb, wandb_history

    offline_wandb(tmp_path, monkeypatch)
    root, manifest, _ = corpus
    out = tmp_path / "wb"
    assert main(["sfm", "distill", "--config", str(ROOT / "configs" / "sfm-stacking.yaml"),
                 "--teacher", str(root / "t" / "teacher"), "--manifest", str(manifest), "--out", str(out),
                 "student.width=16", "student.ffn=32", "student.heads=2", "student.n_layers=4",
                 "student.teacher_layers=[1,2]", "growth.init_layers=2", "growth.stages=2", "train.steps=3",
                 "train.ckpt_every=3", "train.log_every=1", "train.report_to=[tensorboard,wandb]", *TINY_TRAIN]) == 0
    logged = load_jsonl(out / "train_log.jsonl")
    history = wandb_history(out)
    assert [r["step"] for r in logged] == sorted(history) == [1, 2, 3]
    for r in logged:
        assert history[r["step"]]["loss/loss"] == pytest.approx(r["loss"], rel=1e-6) and history[r["step"]]["depth"] == r["depth"]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
