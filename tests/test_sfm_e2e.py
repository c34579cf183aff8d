"""End to end through the real CLI: teacher pretraining, distillation with stacking + resume, probes."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from tinywave.cli import main
from tinywave.config import load_config
from tinywave.files import load_jsonl

TINY_TEACHER = ["model.hidden_size=32", "model.num_layers=2", "model.heads=2", "model.intermediate_size=64",
                "model.conv_channels=16", "n_units=8"]
TINY_TRAIN = ["train.batch_size=2", "train.crop_seconds=0.5", "train.warmup=1"]


def test_shipped_yaml_loads_and_plans_its_growth():
    from tinywave.recipes import sfm_distill

    cfg = load_config(sfm_distill.Config, ROOT / "configs" / "sfm-stacking.yaml")
    depth, plan = sfm_distill.growth_plan(cfg)
    assert depth == cfg.stacking.init_layers and plan.op == "interleaved" and len(plan.steps) == cfg.stacking.stages - 1
    with pytest.raises(ValueError, match="reaches"):
        sfm_distill.growth_plan(load_config(sfm_distill.Config, None, ["stacking.op=top", "stacking.stages=3"]))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from tinywave.sfm.synth import synth_corpus, synth_probes

    root = tmp_path_factory.mktemp("sfm")
    manifest = synth_corpus(root / "corpus", 6, voices=("en-us+f2", "en-us+m3"), words=(2, 4))
    probes = synth_probes(root / "corpus", per_class=4, keywords=("yes", "no", "go"),
                          voices=("en-us+f2", "en-us+m3", "en-gb+f3"), n_pr=6)
    assert main(["sfm", "pretrain", "--manifest", str(manifest), "--out", str(root / "t"), "train.steps=3",
                 "train.save_every=2", *TINY_TEACHER, *TINY_TRAIN]) == 0
    return root, manifest, probes


def _distill(root: Path, manifest: Path, out: str, *extra: str) -> int:
    return main(["sfm", "distill", "--config", str(ROOT / "configs" / "sfm-stacking.yaml"),
                 "--teacher", str(root / "t" / "teacher"), "--manifest", str(manifest), "--out", str(root / out),
                 "student.hidden_size=16", "student.intermediate_size=32", "student.heads=2", "student.num_layers=4",
                 "student.teacher_layers=[1,2]", "stacking.init_layers=2", "stacking.stages=2", "train.steps=6",
                 "train.save_every=1", "train.log_every=1", *TINY_TRAIN, *extra])


@pytest.mark.slow
def test_pretrain_writes_a_plain_hf_teacher(corpus):
    from transformers import HubertModel

    root, _, _ = corpus
    teacher = HubertModel.from_pretrained(str(root / "t" / "teacher"))
    assert teacher.config.num_hidden_layers == 2
    assert (root / "t" / "teacher" / "unit_head.safetensors").is_file()
    assert [r["step"] for r in load_jsonl(root / "t" / "log.jsonl")] == [1, 2, 3]


@pytest.mark.slow
def test_pretrain_resumes_from_its_checkpoint(corpus, tmp_path):
    root, manifest, _ = corpus
    out = tmp_path / "t"
    shutil.copytree(root / "t", out)  # step 2 checkpointed, step 3 done
    assert main(["sfm", "pretrain", "--manifest", str(manifest), "--out", str(out), "train.steps=4",
                 "train.save_every=2", *TINY_TEACHER, *TINY_TRAIN]) == 0
    assert [r["step"] for r in load_jsonl(out / "log.jsonl")] == [1, 2, 3, 4]  # resumed after step 2


@pytest.mark.slow
def test_distill_with_interleaved_stacking_resumes_across_growth(corpus):
    from transformers import HubertModel

    root, manifest, _ = corpus
    assert _distill(root, manifest, "full") == 0
    assert _distill(root, manifest, "resumed", "train.stop_at=1") == 0  # stopped before the growth at step 2
    assert not (root / "resumed" / "student").exists()
    assert _distill(root, manifest, "resumed", "train.stop_at=4") == 0  # resumes at depth 2, grows, stops at depth 4
    state = json.loads((root / "resumed" / "checkpoints" / "step_0000004" / "trainer_state.json").read_text())
    assert state["depth"] == 4
    assert _distill(root, manifest, "resumed") == 0  # rebuilds the grown student before loading
    full, resumed = load_jsonl(root / "full" / "log.jsonl"), load_jsonl(root / "resumed" / "log.jsonl")
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
