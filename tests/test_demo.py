"""`tinywave demo --fast` end to end through the CLI: every stage, the report contract, resume."""

from __future__ import annotations

import json
import math

import pytest

from tinywave.cli import main

NAMES = ("teacher", "student", "baseline_pruned_ce", "baseline_random_ce")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--out", str(out), "--fast"]) == 0
    return out


@pytest.mark.slow
def test_report_has_the_contract_keys(demo_dir):
    report = json.loads((demo_dir / "report.json").read_text())
    teacher = report["models"]["teacher"]
    for name in NAMES:
        m = report["models"][name]
        assert set(m) >= {"params", "non_embedding_params", "layers", "width"}
        assert 0 < m["non_embedding_params"] < m["params"]
        assert m["width"] == teacher["width"]  # the student keeps the teacher's width
    assert report["models"]["student"]["layers"] < teacher["layers"]
    for bench in ("sSC", "tSC"):
        scores = report["benchmarks"][bench]
        assert set(scores) == set(NAMES)
        assert all(0.0 <= v <= 1.0 for v in scores.values())
        assert report["ratios"][bench] == pytest.approx(scores["student"] / scores["teacher"])
    assert set(report["normalized_ppl"]) == set(NAMES)
    assert all(math.isfinite(v) and v > 1.0 for v in report["normalized_ppl"].values())
    assert report["config"]["fast"] is True
    assert (demo_dir / "report.md").read_text().startswith("# TinyWave demo report")
    assert report["samples"] == "samples/index.md" and "samples/index.md" in (demo_dir / "report.md").read_text()
    lower = json.loads((demo_dir / "vocoder" / "eval.json").read_text())["lower_mcd"]  # samples use the better vocoder
    assert report["sample_vocoder"] == {"hifigan": "vocoder", "griffinlim": "vocoder/griffinlim"}[lower]
    assert f"`{report['sample_vocoder']}`" in (demo_dir / "report.md").read_text()
    import soundfile as sf

    wavs = sorted((demo_dir / "samples" / "student").glob("*.wav"))
    assert len(wavs) == 3  # text->speech, speech->speech, speech+text->speech (speech->text has no audio)
    assert all(sf.info(w).samplerate == 16000 and sf.info(w).frames > 0 for w in wavs)
    for png in ("results.png", "student_ce.png", "teacher_losses.png"):
        assert (demo_dir / "plots" / png).stat().st_size > 1000


@pytest.mark.slow
def test_exported_models_load_with_plain_transformers(demo_dir):
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from tinywave.speech.tokenizer import SpeechTokenizer

    for name in NAMES:
        folder = demo_dir / "models" / name
        model = LlamaForCausalLM.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        ids = tok("[Speech][Hu3][Hu7][Hu1]", return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits
        assert logits.shape == (1, ids.shape[1], model.config.vocab_size)
        assert SpeechTokenizer.load(folder / "speech_tokenizer").n_units == 32


@pytest.mark.slow
def test_rerun_skips_finished_stages_and_refuses_other_config(demo_dir):
    before = {p: p.stat().st_mtime_ns for p in (demo_dir / "models").rglob("*.safetensors")}
    stages = json.loads((demo_dir / "stages.json").read_text())["done"]
    assert main(["demo", "--out", str(demo_dir), "--fast"]) == 0
    assert json.loads((demo_dir / "stages.json").read_text())["done"] == stages
    assert {p: p.stat().st_mtime_ns for p in (demo_dir / "models").rglob("*.safetensors")} == before
    assert main(["demo", "--out", str(demo_dir), "--fast", "seed=1"]) == 2  # a clean CLI error, nothing overwritten


def test_samples_use_the_trained_vocoder_only_when_it_beats_griffin_lim(tmp_path):
    from tinywave.recipes.demo import sample_vocoder

    (tmp_path / "eval.json").write_text(json.dumps({"lower_mcd": "griffinlim"}))
    assert sample_vocoder(tmp_path) == tmp_path / "griffinlim"
    (tmp_path / "eval.json").write_text(json.dumps({"lower_mcd": "hifigan"}))
    assert sample_vocoder(tmp_path) == tmp_path
