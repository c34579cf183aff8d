"""Resynthesis WER: reference texts, originals and vocoded units through a recognizer."""

import json

import numpy as np
import pytest
import soundfile as sf

from support.speech import random_tokenizer
from tinywave.eval.resynthesis import Spoken, intelligibility, read_spoken, resynthesis_wer, resynthesize
from tinywave.vocoder.griffinlim import GriffinLimVocoder, fit_unit_mels

TEXTS = ["the cat sat on the mat", "my friend opened the door", "tom went to the park"]


class LengthRecognizer:
    """Stand-in recognizer (not under test): the transcript is looked up by waveform length."""

    name = "by-length"

    def __init__(self, texts: dict[int, str]):
        self.texts = texts

    def __call__(self, wavs):
        return [self.texts.get(len(w), "") for w in wavs]


def test_intelligibility_pools_errors_and_subtracts_the_original():
    utts = [Spoken("a", np.zeros(100, np.float32), "the cat sat"), Spoken("b", np.zeros(200, np.float32), "a dog ran home")]
    resyn = {"voc": [np.zeros(101, np.float32), np.zeros(201, np.float32)]}
    asr = LengthRecognizer({100: "the cat sat", 200: "a dog ran", 101: "the hat", 201: "a dog ran home now"})
    report = intelligibility(utts, resyn, asr)
    assert report["asr"] == "by-length" and report["utterances"] == 2
    assert report["original"]["wer"] == pytest.approx(1 / 7)  # one deletion over 7 words
    voc = report["vocoders"]["voc"]  # "the hat": 1 substitution + 1 deletion; "... now": 1 insertion
    assert voc["wer"] == pytest.approx(3 / 7) and voc["wer_delta"] == pytest.approx(2 / 7)
    assert voc["cer_delta"] == pytest.approx(voc["cer"] - report["original"]["cer"])
    assert report["transcripts"][0] == {"id": "a", "reference": "the cat sat", "original": "the cat sat", "voc": "the hat"}
    with pytest.raises(ValueError, match="has 1 waveforms for 2 utterances"):
        intelligibility(utts, {"voc": resyn["voc"][:1]}, asr)


def test_read_spoken_keeps_items_with_text_and_audio(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    lines = [{"id": "a", "audio": "a.wav", "text": "Hello there", "speaker": "s1"}, {"id": "b", "audio": "a.wav"},
             {"id": "c", "audio": "missing.wav", "text": "gone"}, {"id": "d", "audio": "a.wav", "text": "again"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = read_spoken(tmp_path / "m.jsonl")
    assert [(u.id, u.text, u.speaker) for u in got] == [("a", "Hello there", "s1"), ("d", "again", None)]
    assert [u.id for u in read_spoken(tmp_path / "m.jsonl", max_items=1)] == ["a"]
    assert [u.id for u in read_spoken(tmp_path / "m.jsonl", exclude={"a"})] == ["d"]
    with pytest.raises(ValueError, match="no utterance with a 'text'"):
        read_spoken(tmp_path / "m.jsonl", exclude={"a", "d"})


@pytest.fixture(scope="module")
def spoken():
    from tinywave.corpus.espeak import Synthesizer

    synth = Synthesizer()
    return [Spoken(f"u{i}", synth.speak(t, "en-us+f2").wav, t, "en-us+f2") for i, t in enumerate(TEXTS)]


def test_resynthesis_wer_end_to_end(spoken):
    """espeak-ng speech -> a real speech tokenizer -> the Griffin-Lim vocoder -> PocketSphinx; noise as the floor."""
    pytest.importorskip("pocketsphinx", reason="PocketSphinx is not installed: pip install 'tinywave[asr]'")
    from tinywave.eval.asr import load_recognizer

    tok = random_tokenizer(pitch=False, style=False)
    hop = 640  # 25 Hz units
    fitted = [(np.asarray(tok.encode_units(u.wav)["hubert"]), u.wav, 0) for u in spoken]
    table, runs = fit_unit_mels(fitted, 16, 1, hop)
    vocoders = {"griffinlim": GriffinLimVocoder(table, runs, hop, ["en-us+f2"])}
    asr = load_recognizer("pocketsphinx")
    report = resynthesis_wer(spoken, tok, vocoders, asr)
    assert report["units"] == "deduplicated" and report["utterances"] == 3 and report["asr"] == "pocketsphinx"
    values = [report["original"]["wer"], report["original"]["cer"], *report["vocoders"]["griffinlim"].values()]
    assert all(np.isfinite(v) for v in values)
    raw = resynthesize(spoken, tok, vocoders, deduplicated=False)["griffinlim"]
    assert [len(w) for w in raw] == [len(tok.encode_units(u.wav)["hubert"]) * hop for u in spoken]  # raw frames keep the timing
    rng = np.random.default_rng(0)
    noise = [rng.standard_normal(len(u.wav)).astype(np.float32) * 0.1 for u in spoken]
    floor = intelligibility(spoken, {"noise": noise}, asr)
    assert floor["original"]["wer"] == report["original"]["wer"]
    assert report["original"]["wer"] <= floor["vocoders"]["noise"]["wer"]
    assert report["original"]["wer"] < 0.5  # the originals are mostly understood


@pytest.mark.slow
def test_eval_cli_reports_resynthesis_wer(spoken, tmp_path):
    """`tinywave eval` with resynthesis.* on a tiny LM: results.json/.md rows, transcripts, a domain LM from other texts."""
    pytest.importorskip("pocketsphinx", reason="PocketSphinx is not installed: pip install 'tinywave[asr]'")
    from support.eval import save_model_dir
    from tinywave.cli import main

    tok = random_tokenizer(pitch=False, style=False)
    model = save_model_dir(tmp_path / "m")
    tok.save(model / "speech_tokenizer")
    fitted = [(np.asarray(tok.encode_units(u.wav)["hubert"]), u.wav, 0) for u in spoken]
    GriffinLimVocoder(*fit_unit_mels(fitted, 16, 1, 640), 640, ["en-us+f2"]).save(model / "vocoder")
    rows = []
    for u in spoken:
        sf.write(tmp_path / f"{u.id}.wav", u.wav, 16000)
        rows.append({"id": u.id, "audio": f"{u.id}.wav", "text": u.text, "speaker": u.speaker})
    (tmp_path / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["eval", "--model", f"m={model}", "--out", str(out), f"resynthesis.manifest={tmp_path / 'held.jsonl'}",
                 f"resynthesis.lm_manifest={tmp_path / 'all.jsonl'}", "resynthesis.units=raw"]) == 0
    report = json.loads((out / "results.json").read_text())["resynthesis"]["m"]
    assert report["utterances"] == 2 and report["units"] == "raw" and report["asr"] == "pocketsphinx:asr_lm.arpa"
    assert report["vocoder_dir"] == str(model / "vocoder") and set(report["vocoders"]) == {"vocoder"}
    assert all(np.isfinite(v) for v in report["vocoders"]["vocoder"].values())
    lm = (out / "asr_lm.arpa").read_text()
    assert " park" in lm and " cat " not in lm  # only the utterance not evaluated fed the language model
    lines = [json.loads(x) for x in (out / "scores" / "resynthesis" / "m.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == ["u0", "u1"] and set(lines[0]) == {"id", "reference", "original", "vocoder"}
    assert "## Resynthesis intelligibility" in (out / "results.md").read_text()
    assert main(["eval", "--model", f"m={model}", "--out", str(out), f"resynthesis.manifest={tmp_path / 'held.jsonl'}",
                 "resynthesis.units=frames"]) == 2
