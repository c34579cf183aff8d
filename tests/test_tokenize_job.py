"""`tinywave tokenize`: token corpus format, word spans, bad items, resume, ranks."""

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from support.audio import espeak_corpus
from tinywave.audio.io import load_audio
from tinywave.cli import main
from tinywave.data.token_corpus import load_token_corpus
from tinywave.data.tokenize_job import part_paths, word_spans
from tinywave.files import load_jsonl
from tinywave.speech.format import split_tokens, timed_tokens
from tinywave.speech.tokenizer import SpeechTokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return espeak_corpus(tmp_path_factory.mktemp("espeak"), n=6)


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "speech_tokenizer"
    assert main(["units", "train", "--manifest", str(corpus), "--out", str(out), "rate=12.5", "n_units=16",
                 "--pitch", "--style", "n_pitch=8", "n_style=4", "workers=1"]) == 0
    return out


def tokenize(manifest: Path, tok_dir: Path, out: Path, *extra: str) -> int:
    return main(["tokenize", "--manifest", str(manifest), "--tokenizer", str(tok_dir), "--out", str(out), "workers=1", *extra])


def check_record(rec: dict, tok: SpeechTokenizer, item: dict, root: Path) -> None:
    """A record matches docs/FORMATS.md and the tokenizer's own encoding of the audio."""
    wav, info = load_audio(root / item["audio"])
    units = tok.encode_units(wav)
    assert rec["speech"] == tok.encode_string(wav)
    assert rec["rates"] == tok.rates and rec["tokenizer"] == tok.fingerprint
    assert rec["frames"] == {k: len(v) for k, v in units.items()}
    assert rec["frames"]["hubert"] == len(wav) // 1280 and rec["frames"]["style"] == math.ceil(len(wav) / 16000)
    assert rec["seconds"] == pytest.approx(info.seconds, abs=1e-3)
    assert rec["text"] == item["text"] and rec["speaker"] == item["speaker"] and rec["story_id"] == item["story_id"]
    tokens = split_tokens(rec["speech"])
    spans = [w["span"] for w in rec["words"]]
    assert spans[0][0] == 0 and spans[-1][1] == len(tokens)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert [w["word"] for w in rec["words"]] == item["text"].split()


# ---------------------------------------------------------------- word spans


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 10), min_size=0, max_size=40), st.lists(st.floats(0, 10), min_size=1, max_size=8))
def test_word_spans_partition_by_start_times(times, starts):
    times, starts = sorted(times), sorted(starts)
    spans = word_spans(times, starts)
    assert spans[0][0] == 0 and spans[-1][1] == len(times)
    assert all(a[1] == b[0] and a[0] <= a[1] for a, b in zip(spans, spans[1:]))
    for i, (lo, hi) in enumerate(spans):
        for t in times[lo:hi]:
            assert i == 0 or t >= starts[i]  # word i owns [start_i, start_{i+1}); the first also leading tokens
            assert i == len(spans) - 1 or t < starts[i + 1]


def test_word_spans_on_real_token_times():
    tokens = timed_tokens([1, 1, 2, 3, 3, 4, 5, 6], [0, 0, 1, 1], [7], {"hubert": 25.0, "pitch": 12.5, "style": 1.0})
    spans = word_spans([t.time for t in tokens], [0.05, 0.11, 0.2])
    assert spans == [[0, 4], [4, 6], [6, len(tokens)]]  # St Pi Hu1 Hu2 | Pi Hu3 | Hu4 Hu5 Hu6


# ---------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tokenize_espeak_corpus_with_two_workers(corpus, tok_dir, tmp_path, caplog):
    out = tmp_path / "tokens.jsonl"
    with caplog.at_level(logging.INFO):
        assert main(["tokenize", "--manifest", str(corpus), "--tokenizer", str(tok_dir), "--out", str(out), "workers=2"]) == 0
    assert "tokenized 6, skipped 0 bad" in caplog.text
    records = load_token_corpus([out])
    items = load_jsonl(corpus)
    assert [r["id"] for r in records] == [it["id"] for it in items]  # manifest order whatever the workers do
    tok = SpeechTokenizer.load(tok_dir)
    for rec, item in zip(records, items):
        check_record(rec, tok, item, corpus.parent)
    assert load_jsonl(part_paths(out)[1]) == []


@pytest.mark.slow
def test_tokenize_librispeech_flac(tok_dir, tmp_path):
    flac = Path(__file__).parent / "fixtures" / "librispeech-7143-88743-0029.flac"  # LibriSpeech (CC BY 4.0), tests/fixtures/README.md
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "ls", "audio": str(flac), "words": [{"word": "a", "start": 0.5, "end": 1.0}, {"word": "b", "start": 4.0, "end": 9.0}]}) + "\n")
    out = tmp_path / "tokens.jsonl"
    assert tokenize(manifest, tok_dir, out) == 0
    rec = load_jsonl(out)[0]
    assert rec["frames"] == {"hubert": 146160 // 1280, "pitch": 114, "style": 10}  # pitch and style: SpiritLM's counts
    assert rec["seconds"] == pytest.approx(9.135) and "text" not in rec
    tokens = split_tokens(rec["speech"])
    assert sum(t.startswith("[St") for t in tokens) == 10 and rec["words"][1]["span"][1] == len(tokens)
    times = [t.time for t in timed_tokens(*(SpeechTokenizer.load(tok_dir).encode_units(load_audio(flac)[0]).values()), rates=rec["rates"])]
    assert rec["words"][1]["span"][0] == sum(t < 4.0 for t in times)


def write_bad_items(folder: Path, good: list[dict], root: Path) -> Path:
    """A manifest with the good items (audio under ``root``) plus one item of every bad kind."""
    src = root / good[0]["audio"]
    (folder / "empty.wav").write_bytes(b"")
    sf.write(folder / "short.wav", np.zeros(800, np.float32), 16000)  # 50 ms
    (folder / "text.wav").write_text("this is not audio\n" * 50)
    (folder / "adir.wav").mkdir()
    sf.write(folder / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    lines = [json.dumps({**it, "audio": str(root / it["audio"])}) for it in good]
    lines += [
        json.dumps({"id": "missing", "audio": "nowhere.wav"}),
        json.dumps({"id": "empty", "audio": "empty.wav"}),
        json.dumps({"id": "short", "audio": "short.wav"}),
        json.dumps({"id": "text", "audio": "text.wav"}),
        json.dumps({"id": "dir", "audio": "adir.wav"}),
        json.dumps({"id": "nan", "audio": "nan.wav"}),
        json.dumps({"id": "late", "audio": str(src), "words": [{"word": "x", "start": 0.1, "end": 99.0}]}),
        '{"id": "torn", "audio": ',
        json.dumps({"id": "noaudio"}),
        json.dumps({**good[0], "audio": str(src)}),  # duplicate id
    ]
    manifest = folder / "bad.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


REASONS = {"missing": "missing", "empty": "empty", "short": "too_short", "text": "unreadable", "dir": "not_audio",
           "nan": "corrupt", "late": "words_outside_audio", "noaudio": "bad_entry"}


@pytest.mark.slow
def test_bad_items_are_reported_and_skipped_then_resume(corpus, tok_dir, tmp_path, caplog):
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    manifest = write_bad_items(bad_dir, load_jsonl(corpus)[:3], corpus.parent)
    out = tmp_path / "tokens.jsonl"
    with caplog.at_level(logging.INFO):
        assert tokenize(manifest, tok_dir, out) == 1
    errors = load_jsonl(tmp_path / "tokens.errors.jsonl")
    assert {e["id"]: e["reason"] for e in errors if e["id"] in REASONS} == REASONS
    reasons = sorted(e["reason"] for e in errors)
    assert reasons.count("bad_line") == 1 and reasons.count("duplicate_id") == 1 and len(errors) == len(REASONS) + 2
    assert all(e["where"] and e["detail"] for e in errors)
    assert [r["id"] for r in load_jsonl(out)] == ["u0", "u1", "u2"]
    assert f"tokenized 3, skipped {len(errors)} bad (see {tmp_path / 'tokens.errors.jsonl'})" in caplog.text
    # rerun: nothing is reprocessed, nothing is appended, same exit code
    before = (out.read_bytes(), (tmp_path / "tokens.errors.jsonl").read_bytes())
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert tokenize(manifest, tok_dir, out) == 1
    assert "tokenized 0, skipped 10 bad" in caplog.text and "3 already done" in caplog.text
    assert (out.read_bytes(), (tmp_path / "tokens.errors.jsonl").read_bytes()) == before
    # fix one file and retry the errors: it is tokenized and leaves the errors file
    sf.write(bad_dir / "short.wav", np.random.default_rng(0).normal(scale=0.1, size=16000).astype(np.float32), 16000)
    assert tokenize(manifest, tok_dir, out, "retry_errors=true") == 1
    assert "short" in {r["id"] for r in load_jsonl(out)}
    assert "short" not in {e["id"] for e in load_jsonl(tmp_path / "tokens.errors.jsonl")}
    assert len(load_jsonl(tmp_path / "tokens.errors.jsonl")) == len(errors) - 1


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_file(corpus, tok_dir, tmp_path):
    full = tmp_path / "full.jsonl"
    assert tokenize(corpus, tok_dir, full) == 0
    part = tmp_path / "part.jsonl"
    lines = full.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:2]) + lines[2][:40])  # killed while writing the third record
    assert tokenize(corpus, tok_dir, part) == 0
    assert part.read_bytes() == full.read_bytes()


@pytest.mark.slow
def test_resume_refuses_another_tokenizer(corpus, tok_dir, tmp_path):
    out = tmp_path / "tokens.jsonl"
    assert tokenize(corpus, tok_dir, out) == 0
    other = tmp_path / "other"
    assert main(["units", "train", "--manifest", str(corpus), "--out", str(other), "n_units=8", "workers=1"]) == 0
    assert tokenize(corpus, other, out) == 2  # a user error naming the fix
    assert tokenize(corpus, other, out, "resume=false") == 0
    assert {r["tokenizer"] for r in load_jsonl(out)} == {SpeechTokenizer.load(other).fingerprint}


@pytest.mark.slow
def test_stereo_is_downmixed_with_a_warning(corpus, tok_dir, tmp_path, caplog):
    item = load_jsonl(corpus)[1]
    mono, rate = sf.read(corpus.parent / item["audio"], dtype="float32")
    sf.write(tmp_path / "stereo.wav", np.stack([mono, mono], axis=1), rate)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({**item, "id": "stereo", "audio": "stereo.wav"}) + "\n" + json.dumps({**item, "audio": str(corpus.parent / item["audio"])}) + "\n")
    out = tmp_path / "tokens.jsonl"
    with caplog.at_level(logging.WARNING):
        assert tokenize(manifest, tok_dir, out) == 0
    assert "2 channels" in caplog.text and "1 files had more than one channel" in caplog.text
    stereo, original = load_jsonl(out)
    assert stereo["speech"] == original["speech"]


@pytest.mark.slow
def test_ranks_and_merge_equal_a_single_run(corpus, tok_dir, tmp_path):
    single = tmp_path / "single.jsonl"
    assert tokenize(corpus, tok_dir, single) == 0
    out = tmp_path / "tokens.jsonl"
    for rank in (0, 1):
        assert tokenize(corpus, tok_dir, out, f"rank={rank}", "world_size=2") == 0
    assert [r["id"] for r in load_jsonl(tmp_path / "tokens.rank1.jsonl")] == ["u1", "u3", "u5"]
    assert main(["tokenize", "--manifest", str(corpus), "--out", str(out), "merge=true", "world_size=2"]) == 0
    assert out.read_bytes() == single.read_bytes()
    (tmp_path / "tokens.rank1.jsonl").write_text("")
    assert main(["tokenize", "--manifest", str(corpus), "--out", str(out), "merge=true", "world_size=2"]) == 2
