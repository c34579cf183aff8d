"""`tinywave demo-assets --fast` and `tinywave demo --fast` end to end through the CLI.

The toy assets are built by the real command; the demo then corrects that teacher and
trains every student for two seeds. The tests check properties of what came out: the
report's scores are the evaluation's, the losses each run logged, the student's size,
fingerprint refusal, resume and rerun-what-changed.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tinywave.cli import main

NAMES = ("teacher", "student", "baseline_pruned_ce", "baseline_random_ce")
STUDENTS = NAMES[1:]
SEEDS = (0, 1)  # the --fast preset's student.seeds


@pytest.fixture(scope="module")
def toy_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    assert main(["demo-assets", "--fast", "--out", str(root / "demo"), "--work", str(root / "work")]) == 0
    return root / "demo"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, toy_assets):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["demo", "--out", str(out), "--fast", f"teacher.assets={toy_assets}"]) == 0
    return out


@pytest.mark.slow
def test_assets_command_writes_a_checked_teacher_with_provenance(toy_assets):
    from transformers import LlamaForCausalLM

    from tinywave.demo.assets import check_assets

    provenance = check_assets(toy_assets)
    assert provenance["command"][:2] == ["tinywave", "demo-assets"]
    assert provenance["teacher_steps"] == 10 and provenance["data_seed"] == 0
    assert set(provenance["fingerprints"]) == {"speech_tokenizer", "vocab", "teacher"}
    assert {"tSC", "sSC", "tSC-t2s", "sSC-s2t"} <= set(provenance["scores"])
    model = LlamaForCausalLM.from_pretrained(toy_assets / "teacher")
    assert model.config.num_hidden_layers == 3 and str(model.dtype) == "torch.bfloat16"


@pytest.mark.slow
def test_assets_with_a_wrong_fingerprint_are_refused(toy_assets, tmp_path):
    from tinywave.demo.assets import check_assets

    bad = tmp_path / "bad"
    shutil.copytree(toy_assets, bad)
    provenance = json.loads((bad / "provenance.json").read_text())
    provenance["fingerprints"]["speech_tokenizer"] = "0" * 16
    (bad / "provenance.json").write_text(json.dumps(provenance))
    with pytest.raises(ValueError, match="speech_tokenizer.*demo-assets"):
        check_assets(bad)
    assert main(["demo", "--out", str(tmp_path / "run"), "--fast", f"teacher.assets={bad}"]) == 2
    assert not (tmp_path / "run" / "corpus").exists()  # refused before any work


@pytest.mark.slow
def test_assets_ship_a_checked_vocoder_for_the_teachers_speech_tokenizer(toy_assets, tmp_path):
    from safetensors.torch import load_file

    from tinywave.demo.assets import check_assets
    from tinywave.speech.tokenizer import SpeechTokenizer
    from tinywave.vocoder.backends import load_vocoder

    entry = check_assets(toy_assets)["vocoder"]
    tokenizer = SpeechTokenizer.load(toy_assets / "teacher" / "speech_tokenizer")
    assert entry["speech_tokenizer"] == tokenizer.fingerprint and entry["steps"] == 2
    assert {"hifigan", "griffinlim"} <= set(entry["mcd_db"]) and entry["mcd_below_griffinlim"] is not None and entry["real_time_factor_1_thread"] > 0
    assert {str(v.dtype) for v in load_file(str(toy_assets / "vocoder" / "generator.safetensors")).values()} == {"torch.float16"}
    audio = load_vocoder(toy_assets / "vocoder").vocode({"hubert": [1, 2, 3, 4]})
    assert audio.size > 0 and abs(audio).max() > 0

    def tampered(edit) -> Path:
        bad = tmp_path / f"bad{len(list(tmp_path.iterdir()))}"
        shutil.copytree(toy_assets, bad)
        edit(bad)
        return bad

    def grow_table(folder: Path) -> None:  # a vocoder whose unit table differs from the tokenizer's, fingerprint updated
        from tinywave.demo.vocoder_asset import vocoder_fingerprint

        config = json.loads((folder / "vocoder" / "config.json").read_text())
        config["num_embeddings"] += 1
        (folder / "vocoder" / "config.json").write_text(json.dumps(config))
        provenance = json.loads((folder / "provenance.json").read_text())
        provenance["vocoder"]["fingerprint"] = vocoder_fingerprint(folder / "vocoder")
        (folder / "provenance.json").write_text(json.dumps(provenance))

    with pytest.raises(ValueError, match="fingerprint.*parts=\\[vocoder\\]"):
        check_assets(tampered(lambda b: (b / "vocoder" / "speakers.txt").write_text("someone else\n")))
    with pytest.raises(ValueError, match="table of .* units, the speech tokenizer has"):
        check_assets(tampered(grow_table))
    with pytest.raises(FileNotFoundError, match="vocoder.*missing"):
        check_assets(tampered(lambda b: shutil.rmtree(b / "vocoder")))


@pytest.mark.slow
def test_demo_samples_use_the_shipped_vocoder(demo_dir, toy_assets):
    done = json.loads((demo_dir / "stages.json").read_text())["done"]
    assert done["vocoder"]["source"] == str(toy_assets / "vocoder")
    assert (demo_dir / "vocoder" / "generator.safetensors").read_bytes() == (toy_assets / "vocoder" / "generator.safetensors").read_bytes()
    assert (demo_dir / "vocoder" / "griffinlim").is_dir()  # the baseline stays, as the comparison and the fallback


@pytest.mark.slow
def test_recognizer_transcribes_the_samples_and_the_resynthesis(demo_dir):
    listening = json.loads((demo_dir / "listening.json").read_text())
    report = json.loads((demo_dir / "report.json").read_text())["listening"]
    assert listening["utterances"] == report["utterances"] == 2  # the --fast preset's listening_items
    assert report["wer_original"] == listening["original"]["wer"]
    assert report["wer"] == {k: v["wer"] for k, v in listening["vocoders"].items()} and set(report["wer"]) == {"hifigan", "griffinlim"}
    assert [t["reference"] for t in listening["transcripts"]] and all(isinstance(t["original"], str) for t in listening["transcripts"])
    index = json.loads((demo_dir / "samples" / "index.json").read_text())
    spoken = [e for entries in index["models"].values() for e in entries if e.get("wav")]
    assert spoken and all(isinstance(e["asr"], str) for e in spoken)
    assert "Intelligibility" in (demo_dir / "report.md").read_text()


@pytest.mark.slow
def test_report_scores_are_the_evaluations(demo_dir):
    report = json.loads((demo_dir / "report.json").read_text())
    results = json.loads((demo_dir / "eval" / "results.json").read_text())
    assert report["seeds"] == list(SEEDS)
    for bench in ("sSC", "tSC", "sSC-t2s", "tSC-s2t"):
        scores = results["results"][bench]
        assert report["benchmarks"][bench]["teacher"] == pytest.approx(scores["teacher"])
        for name in STUDENTS:
            per_seed = [scores[f"{name}-s{s}"] for s in SEEDS]
            assert report["per_seed"][bench][name] == pytest.approx(per_seed)
            assert report["benchmarks"][bench][name] == pytest.approx(sum(per_seed) / len(per_seed))
            low, high = report["ci"][bench][name]
            assert 0.0 <= low <= report["benchmarks"][bench][name] <= high <= 1.0
        assert set(report["p_values"][bench]) == {"baseline_pruned_ce", "baseline_random_ce"}
        assert all(0.0 < p <= 1.0 for p in report["p_values"][bench].values())
    assert report["ratios"]["tSC"] == pytest.approx(report["benchmarks"]["tSC"]["student"] / report["benchmarks"]["tSC"]["teacher"])
    ppl = results["perplexity"]["heldout"]
    assert report["normalized_ppl"]["teacher"] == pytest.approx(ppl["teacher"]["ppl_per_token"])
    assert report["normalized_ppl"]["student"] == pytest.approx(
        sum(ppl[f"student-s{s}"]["ppl_per_token"] for s in SEEDS) / len(SEEDS))
    before = report["teacher_before_correction"]
    assert before["benchmarks"]["tSC"] == pytest.approx(results["results"]["tSC"]["teacher_before_correction"])
    assert before["ppl"] == pytest.approx(ppl["teacher_before_correction"]["ppl_per_token"])
    assert report["precision"]["name"] in ("fp32", "bf16") and report["precision"]["reason"]
    machine = report["machine"]  # the wall time is read beside the CPU and its measured speed
    assert machine["cpu"] and machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["fp32_gflops"] > 0
    assert report["wall_seconds"] > 0
    assert {c["claim"] for c in report["claims"]} >= {"student / teacher on tSC", "correction lowers the teacher's held-out perplexity"}
    md = (demo_dir / "report.md").read_text()
    assert md.startswith("# TinyWave demo report") and "## Claims" in md and "paired bootstrap p" in md
    assert f"on {machine['cpu']} ({machine['cores']} cores" in md.splitlines()[2]


@pytest.mark.slow
def test_each_model_is_scored_once_it_is_trained_and_the_reports_merge(demo_dir):
    state = json.loads((demo_dir / "stages.json").read_text())
    order = state["order"]
    runs = [f"{name}-s{s}" for name in STUDENTS for s in SEEDS]
    for run in runs:  # trained, exported, scored in that order, and all before the merged report
        assert order[f"students:{run}"] < order[f"export:{run}"] < order[f"scores:{run}"] < order["eval"]
    for teacher in ("teacher", "teacher_before_correction"):
        assert order["correction"] < order[f"scores:{teacher}"] < order["eval"]
    assert order["eval_tokens"] < min(order[f"scores:{n}"] for n in [*runs, "teacher", "teacher_before_correction"])
    # the resynthesis reads no student; the samples' transcripts come after the samples
    assert order["listening"] < order["eval"] and order["samples"] < order["samples_asr"]
    # every part scored only its own model, from the one token cache; the merged report holds each part's scores
    merged = json.loads((demo_dir / "eval" / "results.json").read_text())
    for name in [*runs, "teacher", "teacher_before_correction"]:
        part = json.loads((demo_dir / "eval" / "parts" / name / "results.json").read_text())
        assert list(part["models"]) == [name]
        for bench, scores in part["results"].items():
            assert merged["results"][bench][name] == scores[name]
    assert not any((demo_dir / "eval" / "parts" / runs[0]).glob("cache/*"))  # read eval/cache, tokenized nothing itself
    assert state["done"]["eval_tokens"]["clips"] > 0
    listening = json.loads((demo_dir / "listening.json").read_text())
    assert sum(len(v) for v in listening["samples"].values()) == state["done"]["samples_asr"]["transcripts"] > 0


@pytest.mark.slow
def test_student_logs_distillation_terms_and_baselines_do_not(demo_dir):
    def keys(run: str) -> set[str]:
        rows = [json.loads(line) for line in (demo_dir / "runs" / run / "train_log.jsonl").read_text().splitlines() if line]
        return set().union(*(r.keys() for r in rows if "ce" in r))

    for seed in SEEDS:
        assert {"ce", "kl", "hidden", "attn"} <= keys(f"student-s{seed}")
        assert (demo_dir / "runs" / f"student-s{seed}" / "stdout.log").is_file()  # trained in a child process, two at a time
        for base in ("baseline_pruned_ce", "baseline_random_ce"):
            assert "ce" in keys(f"{base}-s{seed}") and not {"kl", "hidden", "attn"} & keys(f"{base}-s{seed}")


@pytest.mark.slow
def test_students_distil_from_one_exact_cache_of_the_corrected_teacher(demo_dir):
    from tinywave.distill.teacher_cache import read_index, teacher_fingerprint
    from tinywave.models.hf import load_causal_lm

    done = list(json.loads((demo_dir / "stages.json").read_text())["done"])
    assert done.index("correction") < done.index("cache") < done.index("students:student-s0")
    index = read_index(demo_dir / "teacher_cache")
    layers = json.loads((demo_dir / "stages.json").read_text())["done"]["cache"]["layers"]
    assert index["top_k"] == index["vocab_size"]  # exact: every logit
    assert index["hidden_layers"] == index["attn_layers"] == layers
    assert index["teacher"]["fingerprint"] == teacher_fingerprint(load_causal_lm(demo_dir / "models" / "teacher"))["fingerprint"]


@pytest.mark.slow
def test_student_keeps_a_layer_fraction_at_full_width(demo_dir):
    report = json.loads((demo_dir / "report.json").read_text())
    teacher, student = report["models"]["teacher"], report["models"]["student"]
    assert student["width"] == teacher["width"] and student["layers"] < teacher["layers"]
    norm = teacher["width"]  # the final RMSNorm is outside the layers
    per_layer = (teacher["non_embedding_params"] - norm) / teacher["layers"]
    assert student["non_embedding_params"] - norm == per_layer * student["layers"]
    for name in STUDENTS:
        assert report["models"][name]["params"] == student["params"]  # same architecture for all three


@pytest.mark.slow
def test_exported_models_load_with_plain_transformers(demo_dir):
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from tinywave.speech.tokenizer import SpeechTokenizer

    for name in (*NAMES, "teacher_before_correction", "student-s1"):
        folder = demo_dir / "models" / name
        model = LlamaForCausalLM.from_pretrained(folder)
        tok = AutoTokenizer.from_pretrained(folder)
        ids = tok("[Speech][Hu3][Hu7][Hu1]", return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits
        assert logits.shape == (1, ids.shape[1], model.config.vocab_size)
        assert SpeechTokenizer.load(folder / "speech_tokenizer").n_units == 32


@pytest.mark.slow
def test_corrected_teacher_differs_from_the_shipped_one(demo_dir):
    from safetensors.torch import load_file

    before = load_file(demo_dir / "models" / "teacher_before_correction" / "model.safetensors")
    after = load_file(demo_dir / "models" / "teacher" / "model.safetensors")
    assert set(before) == set(after)  # LoRA merged: the same plain Llama keys
    changed = [k for k in before if not (before[k].float() - after[k].float()).abs().max() < 1e-6]
    assert any("q_proj" in k for k in changed) and not any("embed_tokens" in k for k in changed)


@pytest.mark.slow
def test_rerun_skips_finished_stages_and_reruns_only_what_changed(demo_dir, toy_assets):
    def mtimes(pattern: str) -> dict:
        return {p: p.stat().st_mtime_ns for p in demo_dir.glob(pattern)}

    args = ["demo", "--out", str(demo_dir), "--fast", f"teacher.assets={toy_assets}"]
    done = json.loads((demo_dir / "stages.json").read_text())["done"]
    models = mtimes("models/**/*.safetensors")
    assert main(args) == 0
    assert json.loads((demo_dir / "stages.json").read_text())["done"] == done
    assert mtimes("models/**/*.safetensors") == models
    corpus, teacher = mtimes("corpus/wavs/*.wav"), mtimes("models/teacher/*.safetensors")
    vocoder, cache = mtimes("vocoder/**/*"), mtimes("teacher_cache/*")
    assert main([*args, "student.steps=4"]) == 0  # --fast keeps an explicit key: 4 steps, not the preset's 6
    assert mtimes("corpus/wavs/*.wav") == corpus and mtimes("models/teacher/*.safetensors") == teacher
    assert mtimes("vocoder/**/*") == vocoder and mtimes("teacher_cache/*") == cache and cache  # not downstream of the students
    log = [json.loads(line) for line in (demo_dir / "runs" / "student-s0" / "train_log.jsonl").read_text().splitlines() if line]
    assert max(r["step"] for r in log) == 4
    assert json.loads((demo_dir / "report.json").read_text())["config"]["student"]["steps"] == 4
    after = json.loads((demo_dir / "stages.json").read_text())["done"]
    for stage in ("scores:teacher", "scores:teacher_before_correction", "eval_tokens", "listening"):  # they read no student
        assert after[stage] == done[stage]
    for stage in ("scores:student-s0", "eval", "samples", "samples_asr"):
        assert after[stage]["span"][0] > done[stage]["span"][1]


def test_samples_use_the_trained_vocoder_only_when_it_beats_griffin_lim(tmp_path):
    from tinywave.recipes.demo import sample_vocoder

    (tmp_path / "eval.json").write_text(json.dumps({"lower_mcd": "griffinlim"}))
    assert sample_vocoder(tmp_path) == tmp_path / "griffinlim"
    (tmp_path / "eval.json").write_text(json.dumps({"lower_mcd": "hifigan"}))
    assert sample_vocoder(tmp_path) == tmp_path


def test_fast_preset_keeps_explicit_keys():
    from tinywave.config import apply_fast, load_config
    from tinywave.recipes.demo import FAST, Config

    cfg = apply_fast(load_config(Config, None, ["fast=true", "student.steps=50"]), FAST, Config)
    assert cfg.student.steps == 50 and cfg.student.batch_size == FAST["student"]["batch_size"]
    assert cfg.seq_len == FAST["seq_len"] and cfg.student.lr == Config().student.lr
    assert math.isclose(cfg.target.heldout, FAST["target"]["heldout"])


def test_shipped_assets_match_this_code():
    """assets/demo (committed) passes the same fingerprint check `make demo` runs, and holds a good teacher."""
    from pathlib import Path

    from tinywave.demo.assets import check_assets

    assets = Path(__file__).resolve().parents[1] / "assets" / "demo"
    provenance = check_assets(assets)
    assert provenance["command"][:2] == ["tinywave", "demo-assets"]
    assert provenance["scores"]["tSC"] >= 0.85 and provenance["scores"]["sSC"] >= 0.7
    assert sum(p.stat().st_size for p in assets.rglob("*") if p.is_file()) <= 40 * 2**20


def test_students_keep_the_named_teacher_layers_or_uniform_ones(tmp_path):
    from tinywave.recipes.demo import DEPENDS, Config, mapped_layers
    from tinywave.config import to_dict

    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 6}))
    assert mapped_layers(tmp_path, 2) == [2, 5]  # uniform: what `tinywave distill` picks
    assert mapped_layers(tmp_path, 2, [3, 5]) == [3, 5]
    with pytest.raises(ValueError, match="out of range"):
        mapped_layers(tmp_path, 2, [3, 6])
    default, kept = to_dict(Config()), to_dict(Config())
    kept["student"]["keep_layers"] = [3, 5]
    for stage in ("cache", "students"):  # a different choice reruns the cache and the students; the default adds no key
        assert DEPENDS[stage](kept) != DEPENDS[stage](default)
        assert "keep_layers" not in json.dumps(DEPENDS[stage](default))
