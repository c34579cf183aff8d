"""`tinywave eval` end to end through the real CLI, with real (random-codebook) speech tokenizers."""

import json

import pytest
from transformers import AutoTokenizer, LlamaForCausalLM

from support.bench import make_bench_root, make_storycloze
from support.eval import outcome, read_wav, reference_file_ll, save_model_dir
from support.speech import random_tokenizer
from tinywave.cli import main
from tinywave.speech.tokenizer import SpeechTokenizer
from tinywave.text.vocab import layout_from_tokenizer


@pytest.mark.slow
def test_eval_cli_end_to_end(tmp_path, capsys):
    stok = random_tokenizer(pitch=False, style=False)
    models = {}
    for seed, name in enumerate(["teacher", "student"]):
        models[name] = save_model_dir(tmp_path / name, seed=seed)
        stok.save(models[name] / "speech_tokenizer")
    bench = make_bench_root(tmp_path / "bench")
    wav = read_wav(bench / "tSC" / "s0_correct.wav")
    corpus = tmp_path / "held.jsonl"
    corpus.write_text(json.dumps({"id": "u", "speech": stok.encode_string(wav), "seconds": len(wav) / 16000, "tokenizer": stok.fingerprint}) + "\n")
    out = tmp_path / "out"
    argv = ["eval", "--model", f"teacher={models['teacher']}", "--model", f"student={models['student']}", "--bench", str(bench),
            "--ppl", f"held={corpus}", "--out", str(out), "--reference", "teacher", "--submission", "batch_tokens=512"]
    assert main(argv) == 0
    data = json.loads((out / "results.json").read_text())
    headline = {k for k in data["results"] if "/" not in k}
    assert headline == {"sSC", "sSC-t2s", "sSC-s2t", "tSC", "salmon", "swuggy", "sblimp"}
    assert all(0.0 <= v <= 1.0 for row in data["results"].values() for v in row.values())
    assert set(data["perplexity"]["held"]) == {"teacher", "student"} and data["perplexity"]["held"]["teacher"]["tokens"] > 0
    assert (out / "results.png").is_file() and "student/teacher" in (out / "results.md").read_text()
    assert (out / "cache" / stok.fingerprint / "tokens.jsonl").is_file()
    assert (out / "submission" / "student" / "lexical" / "dev.txt").is_file()
    # one row against the plain per-file computation with the saved tokenizer
    tok = AutoTokenizer.from_pretrained(str(models["student"]))
    model = LlamaForCausalLM.from_pretrained(str(models["student"])).eval()
    loaded = SpeechTokenizer.load(models["student"])
    tsc = [outcome(reference_file_ll(model, tok, layout_from_tokenizer(tok), loaded, bench / "tSC" / f"s{i}_correct.wav"),
                   reference_file_ll(model, tok, layout_from_tokenizer(tok), loaded, bench / "tSC" / f"s{i}_incorrect.wav")) for i in range(4)]
    assert data["results"]["tSC"]["student"] == sum(tsc) / 4


@pytest.mark.slow
def test_eval_cli_reports_a_misnamed_folder(tmp_path, capsys):
    model = save_model_dir(tmp_path / "m")
    random_tokenizer(pitch=False, style=False).save(model / "speech_tokenizer")
    bench = make_storycloze(tmp_path / "sSC", n=2)
    (bench / "s1_incorrect.wav").rename(bench / "s1_wrong.wav")
    assert main(["eval", "--model", f"m={model}", "--bench", f"sSC={bench}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "s1 (has only _correct.wav)" in err and "needs a <name>_incorrect.wav" in err
    assert main(["eval", "--model", f"m={model}", "--bench", f"sSC={bench}", "--out", str(tmp_path / "o"), "--score", "max"]) == 2
    assert "score='max' is not known" in capsys.readouterr().err
