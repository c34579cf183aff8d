"""`tinywave generate` and `tinywave bench latency` through the real CLI, on tiny models."""

import json

import pytest
import soundfile as sf
import torch

from support.models import tiny_model_dir
from tinywave.cli import main
from tinywave.vocoder.backends import save_hifigan
from tinywave.vocoder.hifigan import UnitHiFiGAN, small_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models on one torch thread (support/fixtures.py)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tiny_model_dir(tmp_path_factory.mktemp("m") / "student", layers=2, width=32, lm_head_scale=8.0)
    torch.manual_seed(0)
    save_hifigan(path / "vocoder", UnitHiFiGAN(small_config(32, 640, channels=16, embedding_dim=8, num_speakers=2)), ["a", "b"])
    return path


@pytest.mark.slow
def test_text_to_speech_writes_readable_wavs_and_transcripts(model_dir, tmp_path):
    out = tmp_path / "gen"
    rc = main(["generate", "--model", str(model_dir), "--input", "text:the cat sat", "--modality", "speech", "--out", str(out),
               "--num-samples", "3", "--batch-size", "2", "max_new_tokens=30", "max_seconds=0.6", "allow_eos=false", "speaker=b"])
    assert rc == 0
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2] and all(r["stop"] == "max_seconds" for r in rows)
    for r in rows:
        wav, rate = sf.read(str(out / r["wav"]), dtype="float32")
        assert rate == 16000 and len(wav) >= 15 * 640  # 0.6 s of units, each at least one 640-sample frame
        assert (out / f"{r['index']}.txt").read_text().strip() == r["transcript"] and r["transcript"].startswith("[Hu")
        assert r["prompt"] == "[Text]the cat sat[Speech]"


@pytest.mark.slow
def test_streamed_and_batched_cli_runs_agree_and_text_output_has_no_wav(model_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "a", "inputs": ["tokens:[Hu1][Hu5][Hu9]", "text:and"]}) + "\n")
    common = ["--model", str(model_dir), "--prompts", str(prompts), "--modality", "text", "--greedy", "max_new_tokens=12"]
    assert main(["generate", *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["generate", *common, "--stream", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "generations.jsonl").read_text())
    b = json.loads((tmp_path / "b" / "generations.jsonl").read_text())
    assert a["transcript"] == b["transcript"] and a["prompt_id"] == "a" and "wav" not in a
    assert not (tmp_path / "a" / "0.wav").exists() and "[Hu" not in a["transcript"]
    # streamed samples of one prompt each get their own seed
    sampled = ["--model", str(model_dir), "--prompts", str(prompts), "--modality", "text", "max_new_tokens=12", "temperature=3.0",
               "top_p=1.0", "--num-samples", "2", "--stream", "--out", str(tmp_path / "c")]
    assert main(["generate", *sampled]) == 0
    c = [json.loads(line) for line in (tmp_path / "c" / "generations.jsonl").read_text().splitlines()]
    assert len(c) == 2 and c[0]["transcript"] != c[1]["transcript"]


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--modality", "video", "--input", "text:hi"], "unknown output modality 'video'"),
    ([], "no prompt given"),
    (["--input", "text:"], "empty text"),
    (["--input", "audio:MISSING.wav"], "MISSING.wav: file does not exist"),
    (["--input", "tokens:" + "[Hu1]" * 300], "longer than the model's context"),
    (["--input", "hello"], "content type prefix"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(model_dir, tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["generate", "--model", str(model_dir), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_bench_latency_reports_both_models_and_ratios(tmp_path, capsys):
    teacher = tiny_model_dir(tmp_path / "teacher", layers=6, width=32, lm_head_scale=8.0)
    student = tiny_model_dir(tmp_path / "student", layers=2, width=32, lm_head_scale=8.0)
    report = tmp_path / "bench.json"
    rc = main(["bench", "latency", "--model", f"teacher={teacher}", "--model", f"student={student}", "--batch-size", "1",
               "--batch-size", "2", "--precision", "fp32", "--precision", "int8", "prompt_tokens=8", "new_tokens=4", "repeats=1",
               "--out", str(report)])
    assert rc == 0
    data = json.loads(report.read_text())
    assert {(r["model"], r["precision"], r["batch"]) for r in data["results"]} == {
        (m, p, b) for m in ("teacher", "student") for p in ("fp32", "int8") for b in (1, 2)}
    assert all(r["decode_tok_s"] > 0 and r["rtf"] > 0 and r["ttft_s"] > 0 for r in data["results"])
    fp32 = [r for r in data["results"] if r["precision"] == "fp32"]
    assert all(r["top1_agree"] == 1.0 and abs(r["kl"]) < 1e-6 for r in fp32)
    assert {(r["precision"], r["batch"]) for r in data["ratios"]} == {("fp32", 1), ("fp32", 2), ("int8", 1), ("int8", 2)}
    assert all(r["target"] == pytest.approx(2.7) for r in data["ratios"])
    check_figures_against_rows(data, new_tokens=4, unit_rate=25.0)
    assert "student / teacher" in capsys.readouterr().out
    assert main(["bench", "latency", "--model", "nope"]) == 2


def ratio_bounds(num: float, den: float, places: int = 5) -> tuple[float, float]:
    """Where num / den lies when both were written rounded to ``places`` decimals."""
    h = 0.5 * 10.0 ** -places
    return (num - h) / (den + h), (num + h) / (den - h)


def check_figures_against_rows(data: dict, new_tokens: int, unit_rate: float) -> None:
    """Every derived figure of a `bench latency` report recomputed from the rows it came from."""
    rows = {(r["model"], r["precision"], r["batch"]): r for r in data["results"]}
    for r in data["results"]:
        assert r["batch_tok_s"] == pytest.approx(r["decode_tok_s"] * r["batch"], rel=1e-5, abs=1e-4)
        wall = r["ttft_s"] + (new_tokens - 1) / r["decode_tok_s"]  # no vocoder: one unit = 1 / unit_rate seconds
        assert r["rtf"] == pytest.approx(r["batch"] * new_tokens / unit_rate / wall, rel=5e-3)  # ttft_s is rounded to 1e-5 s
    for q in data["ratios"]:
        fast, slow = rows[("student", q["precision"], q["batch"])], rows[("teacher", q["precision"], q["batch"])]
        lo, hi = ratio_bounds(fast["decode_tok_s"], slow["decode_tok_s"])
        assert lo - 5e-4 <= q["decode_ratio"] <= hi + 5e-4, (q, fast["decode_tok_s"], slow["decode_tok_s"])
        lo, hi = ratio_bounds(slow["ttft_s"], fast["ttft_s"])
        assert lo - 5e-4 <= q["ttft_ratio"] <= hi + 5e-4, (q, slow["ttft_s"], fast["ttft_s"])
        assert q["target"] == pytest.approx(0.9 * slow["layers"] / fast["layers"], abs=5e-4)
        assert q["meets_target"] == (fast["decode_tok_s"] / slow["decode_tok_s"] >= q["target"])
