"""`tinywave manifest import`: LibriSpeech, fairseq tsv and datasets sources, TextGrid/CTM words, bad items."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinywave.cli import main
from tinywave.data.importers.alignment import attach_words
from tinywave.data.importers.textgrid import TextGridError, parse_textgrid, read_textgrid_words
from tinywave.data.importers.transcript import letters_to_words, normalize_text
from tinywave.data.manifest import ManifestItem, Word, read_manifest
from tinywave.files import load_jsonl

RATE = 16000


def tone(seconds: float, rate: int = RATE, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate  # (samples,)
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_audio(path: Path, seconds: float, rate: int = RATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, rate), rate)
    return path


@pytest.fixture
def libri(tmp_path: Path) -> Path:
    """LibriSpeech/dev-clean with 2 speakers; 4 good utterances and 4 bad ones."""
    split = tmp_path / "LibriSpeech" / "dev-clean"
    a, b = split / "19" / "198", split / "84" / "121"
    write_audio(a / "19-198-0000.flac", 0.5)
    write_audio(a / "19-198-0001.flac", 0.4, rate=8000)  # not 16 kHz: kept, seconds from the header
    (a / "19-198.trans.txt").write_text("19-198-0000 THE CAT SAT\n19-198-0001 DON'T STOP\n19-198-0002 NO AUDIO HERE\n")
    write_audio(b / "84-121-0000.wav", 0.3)
    write_audio(b / "84-121-0001.flac", 0.3)  # empty transcript
    write_audio(b / "84-121-0002.flac", 0.3)  # no transcript line
    (b / "84-121-0003.flac").write_bytes(b"not audio at all")  # unreadable
    write_audio(b / "84-121-0004.flac", 0.6)
    (b / "84-121.trans.txt").write_text("84-121-0000 A DOG, RAN!\n84-121-0001\n84-121-0003 BROKEN FILE\n84-121-0004 HELLO WORLD\n")
    return tmp_path / "LibriSpeech"


def run_import(*args: str) -> int:
    return main(["manifest", "import", "workers=2", *args])


def manifest_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def errors_by_id(out: Path) -> dict:
    return {e["id"]: e for e in load_jsonl(out.with_name(out.stem + ".errors.jsonl"))}


# ---------------------------------------------------------------- LibriSpeech


def test_librispeech_fields_bad_items_and_idempotent_rerun(libri, tmp_path, caplog):
    out = tmp_path / "data" / "manifest.jsonl"
    with caplog.at_level(logging.INFO):
        assert run_import("--format", "librispeech", "--src", str(libri), "--out", str(out)) == 1  # bad items -> 1
    lines = manifest_lines(out)
    assert [x["id"] for x in lines] == ["19-198-0000", "19-198-0001", "84-121-0000", "84-121-0004"]
    first = lines[0]
    assert first["audio"] == str(libri / "dev-clean" / "19" / "198" / "19-198-0000.flac")  # outside the out folder: absolute
    assert first["text"] == "the cat sat" and first["speaker"] == "19"
    assert first["chapter"] == "198" and first["split"] == "dev-clean" and first["seconds"] == 0.5
    assert "words" not in first
    assert lines[1]["text"] == "don't stop" and lines[1]["seconds"] == 0.4
    assert lines[2]["text"] == "a dog ran" and lines[2]["audio"].endswith("84-121-0000.wav") and lines[2]["speaker"] == "84"
    errors = errors_by_id(out)
    assert {k: e["reason"] for k, e in errors.items()} == {
        "19-198-0002": "missing", "84-121-0001": "empty_text", "84-121-0002": "no_transcript", "84-121-0003": "unreadable"}
    assert "19-198.trans.txt:3" in errors["19-198-0002"]["where"] and "restore the audio" in errors["19-198-0002"]["detail"]
    assert any("imported 4 items" in r.message and "skipped 4 bad" in r.message for r in caplog.records)
    items, bad = read_manifest(out)  # the project's own reader accepts it
    assert not bad and items[0].audio.is_file() and items[0].speaker == "19"

    before = (out.read_bytes(), out.with_name("manifest.errors.jsonl").read_bytes())
    assert run_import("--format", "librispeech", "--src", str(libri), "--out", str(out)) == 1
    assert (out.read_bytes(), out.with_name("manifest.errors.jsonl").read_bytes()) == before


def test_librispeech_split_option_and_relative_paths(libri, capsys):
    out = libri / "dev.jsonl"  # inside the corpus: audio paths relative to the manifest's folder
    assert run_import("--format", "librispeech", "--src", str(libri), "--split", "dev-clean", "--out", str(out)) == 1
    assert manifest_lines(out)[0]["audio"] == "dev-clean/19/198/19-198-0000.flac"
    assert run_import("--format", "librispeech", "--src", str(libri), "--split", "test-other", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "test-other" in err and "dev-clean" in err  # the bad value and the splits that exist


def test_librispeech_without_transcripts_says_what_src_should_be(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_import("--format", "librispeech", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "m.jsonl")) == 2
    assert "no *.trans.txt" in capsys.readouterr().err


# ---------------------------------------------------------------- fairseq tsv


def fairseq_files(tmp_path: Path) -> tuple[Path, Path]:
    audio = tmp_path / "audio"
    write_audio(audio / "spk1" / "u1.wav", 0.25)
    write_audio(audio / "spk2" / "u2.flac", 0.5)
    tsv = tmp_path / "train.tsv"
    tsv.write_text(f"{audio}\nspk1/u1.wav\t4000\nspk2/u2.flac\t8000\nno tab here\nspk2/gone.wav\t100\n")
    wrd = tmp_path / "train.wrd"
    wrd.write_text("HELLO THERE\nGOOD MORNING\nIGNORED\nLOST WORDS\n")
    return tsv, wrd


def test_fairseq_tsv_with_wrd_and_ltr(tmp_path):
    tsv, wrd = fairseq_files(tmp_path)
    out = tmp_path / "m" / "manifest.jsonl"
    assert run_import("--format", "tsv", "--src", str(tsv), "--text", str(wrd), "--out", str(out)) == 1
    lines = manifest_lines(out)
    assert [(x["id"], x["text"], x["seconds"]) for x in lines] == [("u1", "hello there", 0.25), ("u2", "good morning", 0.5)]
    assert lines[1]["audio"] == str(tmp_path / "audio" / "spk2" / "u2.flac") and "speaker" not in lines[1]
    errors = load_jsonl(out.with_name("manifest.errors.jsonl"))
    assert [(e["id"], e["reason"]) for e in errors] == [(None, "bad_line"), ("gone", "missing")]
    assert errors[0]["where"] == f"{tsv}:4"

    ltr = tmp_path / "train.ltr"
    ltr.write_text("H E L L O | T H E R E |\nG O O D | M O R N I N G |\nX |\nY |\n")
    assert run_import("--format", "tsv", "--src", str(tsv), "--text", str(ltr), "--out", str(out)) == 1
    assert [x["text"] for x in manifest_lines(out)] == ["hello there", "good morning"]

    assert run_import("--format", "tsv", "--src", str(tsv), "--out", str(out)) == 1  # no transcript: items without text
    assert all("text" not in x for x in manifest_lines(out))


def test_fairseq_transcript_line_count_must_match(tmp_path, capsys):
    tsv, wrd = fairseq_files(tmp_path)
    wrd.write_text("ONLY ONE LINE\n")
    assert run_import("--format", "tsv", "--src", str(tsv), "--text", str(wrd), "--out", str(tmp_path / "m.jsonl")) == 2
    err = capsys.readouterr().err
    assert "has 1 lines" in err and "lists 4 audio files" in err and "parallel" in err


# ---------------------------------------------------------------- alignments


def textgrid_text(tiers: dict[str, list[tuple[float, float, str]]], xmax: float, short: bool = False) -> str:
    """A Praat TextGrid of interval tiers, in the long or short text form."""
    if short:
        lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "0", str(xmax), "<exists>", str(len(tiers))]
        for name, intervals in tiers.items():
            lines += ['"IntervalTier"', f'"{name}"', "0", str(xmax), str(len(intervals))]
            for a, b, text in intervals:
                lines += [str(a), str(b), '"' + text.replace('"', '""') + '"']
        return "\n".join(lines) + "\n"
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {xmax} ",
             "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for k, (name, intervals) in enumerate(tiers.items(), start=1):
        lines += [f"    item [{k}]:", '        class = "IntervalTier" ', f'        name = "{name}" ', "        xmin = 0 ",
                  f"        xmax = {xmax} ", f"        intervals: size = {len(intervals)} "]
        for j, (a, b, text) in enumerate(intervals, start=1):
            quoted = text.replace('"', '""')
            lines += [f"        intervals [{j}]:", f"            xmin = {a} ", f"            xmax = {b} ", f'            text = "{quoted}" ']
    return "\n".join(lines) + "\n"


WORDS_0000 = [(0, 0.05, ""), (0.05, 0.15, "THE"), (0.15, 0.3, "cat"), (0.3, 0.32, ""), (0.32, 0.47, "sat"), (0.47, 0.5, "")]
PHONES = [(0, 0.25, "DH"), (0.25, 0.5, "AH0")]


def test_textgrid_long_and_short_forms_parse_alike(tmp_path):
    tiers = {"words": WORDS_0000 + [], "phones": PHONES}
    long_, short = parse_textgrid(textgrid_text(tiers, 0.5), tmp_path), parse_textgrid(textgrid_text(tiers, 0.5, short=True), tmp_path)
    assert long_ == short and [t.name for t in long_] == ["words", "phones"]
    assert long_[0].items[1] == (0.05, 0.15, "THE")
    quoted = parse_textgrid(textgrid_text({"words": [(0, 1, 'say "hi"'), (1, 2, "3")]}, 2), tmp_path)
    assert [x[2] for x in quoted[0].items] == ['say "hi"', "3"]  # escaped quotes; a quoted number stays text
    f = tmp_path / "x.TextGrid"
    f.write_bytes(textgrid_text({"spk1 - words": WORDS_0000}, 0.5).encode("utf-16"))  # Praat's UTF-16; MFA multi-speaker tier name
    assert [w.word for w in read_textgrid_words(f)] == ["THE", "cat", "sat"]
    f.write_text(textgrid_text(tiers, 0.5)[:300])
    with pytest.raises(TextGridError, match="ends early"):
        read_textgrid_words(f)
    f.write_text(textgrid_text({"phones": PHONES}, 0.5))
    with pytest.raises(TextGridError, match="no 'words' interval tier"):
        read_textgrid_words(f)


def test_textgrid_words_attached_mismatch_reported_missing_counted(libri, tmp_path, caplog):
    mfa = tmp_path / "mfa_out"
    (mfa / "19").mkdir(parents=True)
    (mfa / "19" / "19-198-0000.TextGrid").write_text(textgrid_text({"words": WORDS_0000, "phones": PHONES}, 0.5))
    (mfa / "19" / "19-198-0001.TextGrid").write_text(  # short form; "go" is not in the transcript
        textgrid_text({"words": [(0, 0.2, "don't"), (0.2, 0.4, "go")]}, 0.4, short=True))
    (mfa / "84").mkdir()
    (mfa / "84" / "84-121-0004.TextGrid").write_text("File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n0\n")  # cut short
    out = tmp_path / "aligned.jsonl"
    with caplog.at_level(logging.INFO):
        assert run_import("--format", "librispeech", "--src", str(libri), "--out", str(out),
                          "--alignments", str(mfa), "--alignment-format", "textgrid") == 1
    lines = {x["id"]: x for x in manifest_lines(out)}
    assert lines["19-198-0000"]["words"] == [{"word": "the", "start": 0.05, "end": 0.15}, {"word": "cat", "start": 0.15, "end": 0.3},
                                             {"word": "sat", "start": 0.32, "end": 0.47}]
    assert "words" not in lines["84-121-0000"]  # no alignment: kept without words
    assert set(lines) == {"19-198-0000", "84-121-0000"}
    errors = errors_by_id(out)
    assert errors["19-198-0001"]["reason"] == "alignment_mismatch"
    assert "'go' in the alignment but 'stop' in the transcript" in errors["19-198-0001"]["detail"]
    assert errors["19-198-0001"]["where"].endswith("19-198-0001.TextGrid")
    assert errors["84-121-0004"]["reason"] == "bad_alignment" and "ends early" in errors["84-121-0004"]["detail"]
    assert any("words for 1, no alignment for 1" in r.message for r in caplog.records)
    items, bad = read_manifest(out)
    assert not bad and items[0].words == [Word("the", 0.05, 0.15), Word("cat", 0.15, 0.3), Word("sat", 0.32, 0.47)]


def test_ctm_words_sorted_timing_checked_unused_counted(libri, tmp_path, caplog):
    ctm = tmp_path / "words.ctm"
    ctm.write_text(";; kaldi ctm\n"
                   "19-198-0000 1 0.32 0.15 SAT 0.9\n"  # out of order: sorted by start
                   "19-198-0000 1 0.05 0.10 THE 1.0\n"
                   "19-198-0000 1 0.20 0.05 <eps>\n"
                   "19-198-0000 1 0.15 0.15 CAT\n"
                   "84-121-0000 A 0.00 0.10 a\n84-121-0000 A 0.1 0.1 dog\n84-121-0000 A 0.2 0.5 ran\n"  # ends at 0.7 s > 0.3 s audio
                   "84-121-0004 1 0.0 x hello\n"  # bad line
                   "99-999-0000 1 0 0.1 stranger\n")
    out = tmp_path / "ctm.jsonl"
    with caplog.at_level(logging.INFO):
        assert run_import("--format", "librispeech", "--src", str(libri), "--out", str(out), "--alignments", str(ctm)) == 1  # format from .ctm
    lines = {x["id"]: x for x in manifest_lines(out)}
    assert [(w["word"], w["start"], w["end"]) for w in lines["19-198-0000"]["words"]] == [
        ("the", 0.05, 0.15), ("cat", 0.15, 0.3), ("sat", 0.32, 0.47)]
    assert "words" not in lines["19-198-0001"]
    errors = errors_by_id(out)
    assert errors["84-121-0000"]["reason"] == "bad_alignment" and "after the 0.300 s audio" in errors["84-121-0000"]["detail"]
    assert errors["84-121-0004"]["reason"] == "bad_alignment" and errors["84-121-0004"]["where"] == f"{ctm}:9"
    assert any("1 alignments for ids not in the source" in r.message for r in caplog.records)


def test_attach_words_spells_words_as_the_transcript():
    item = ManifestItem("u", Path("u.wav"), "it's fine")
    got = attach_words(item, [Word("IT'S", 0.0, 0.2), Word(",", 0.2, 0.2), Word("Fine.", 0.2, 0.5)], "u.ctm", 0.5)
    assert isinstance(got, ManifestItem) and got.words == [Word("it's", 0.0, 0.2), Word("fine", 0.2, 0.5)]


def test_text_normalization():
    assert normalize_text("Hello, World -- DON'T 'stop'!") == "hello world don't stop"
    assert letters_to_words("H E L L O | W O R L D |") == "HELLO WORLD"


# ---------------------------------------------------------------- CLI errors


@pytest.mark.parametrize("args, named", [
    (["--format", "kaldi"], ["'kaldi'", "librispeech, tsv, datasets"]),
    (["--format", "librispeec"], ["did you mean 'librispeech'"]),
    (["--format", "librispeech", "--alignments", "ALIGN", "--alignment-format", "praat"], ["'praat'", "textgrid, ctm"]),
    (["--format", "librispeech", "--text", "x.wrd"], ["--text x.wrd is for --format tsv"]),
    (["--format", "librispeech", "--alignments", "nowhere"], ["nowhere not found", "MFA output folder"]),
    (["--format", "tsv", "--src", "SRC_DIR"], ["is a folder", "the .tsv file"]),
])
def test_cli_errors_name_the_value_and_the_fix(libri, tmp_path, capsys, args, named):
    (tmp_path / "align").mkdir()
    subs = {"ALIGN": str(tmp_path / "align"), "SRC_DIR": str(libri), "nowhere": str(tmp_path / "nowhere")}
    args = [subs.get(a, a) for a in args]
    src = [] if "--src" in args else ["--src", str(libri)]
    assert run_import(*args, *src, "--out", str(tmp_path / "m.jsonl")) == 2
    err = capsys.readouterr().err
    for text in named:
        assert text in err


def test_missing_arguments_and_missing_datasets_package(tmp_path, capsys, monkeypatch):
    assert run_import("--format", "tsv") == 2
    assert "--src PATH and --out manifest.jsonl" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # as if not installed
    assert run_import("--format", "datasets", "--src", str(tmp_path), "--out", str(tmp_path / "m.jsonl")) == 2
    assert "pip install datasets" in capsys.readouterr().err


# ---------------------------------------------------------------- Hugging Face datasets


def wav_file_bytes(wav: np.ndarray, rate: int) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, wav, rate, format="FLAC")
    return buf.getvalue()


def test_datasets_audio_bytes_written_as_16k_wavs(tmp_path):
    datasets = pytest.importorskip("datasets")
    path_wav = write_audio(tmp_path / "ext" / "p.wav", 0.25)
    audio = [{"bytes": wav_file_bytes(tone(0.5, 8000), 8000), "path": None}, {"bytes": wav_file_bytes(tone(0.2, 8000), 8000), "path": None},
             {"bytes": wav_file_bytes(tone(0.3, 22050), 22050), "path": None}, {"bytes": None, "path": str(path_wav)}]
    ds = datasets.Dataset.from_dict({"id": ["a/1", "b2", "c3", "d4"], "text": ["Hello World.", "", "Good day", "by path"],
                                     "speaker_id": [7, 7, 8, 9], "audio": audio})
    ds = ds.cast_column("audio", datasets.Audio())  # stored as bytes/paths (encoding arrays would need torchcodec)
    src = tmp_path / "hf"
    datasets.DatasetDict({"validation": ds, "train": ds.select([0])}).save_to_disk(str(src))
    out = tmp_path / "data" / "manifest.jsonl"
    args = ("--format", "datasets", "--src", str(src), "--out", str(out))
    assert run_import(*args) == 2  # two splits: --split required
    assert run_import(*args, "--split", "validation") == 1
    lines = manifest_lines(out)
    assert [(x["id"], x["text"], x["speaker"], x["split"]) for x in lines] == [
        ("a/1", "hello world", "7", "validation"), ("c3", "good day", "8", "validation"), ("d4", "by path", "9", "validation")]
    assert lines[0]["audio"] == "wavs/validation/a_1.wav" and lines[2]["seconds"] == 0.25  # datasets embeds the path's bytes
    wav, rate = sf.read(str(out.parent / lines[0]["audio"]))
    assert rate == RATE and len(wav) == 8000 and lines[0]["seconds"] == 0.5  # 0.5 s at 8 kHz -> 16 kHz
    assert sf.info(str(out.parent / lines[1]["audio"])).samplerate == RATE and lines[1]["seconds"] == 0.3
    assert errors_by_id(out)["b2"]["reason"] == "empty_text"
    before = out.read_bytes()
    assert run_import(*args, "--split", "validation") == 1 and out.read_bytes() == before
    assert run_import(*args, "--split", "test") == 2


def test_datasets_plain_arrays_and_paths_without_id_or_speaker_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"sentence": ["One", "Two"], "audio": [
        {"array": tone(0.25, 8000).tolist(), "sampling_rate": 8000}, {"array": tone(0.5).tolist(), "sampling_rate": RATE}]})
    ds.save_to_disk(str(tmp_path / "hf"))
    out = tmp_path / "manifest.jsonl"
    assert run_import("--format", "datasets", "--src", str(tmp_path / "hf"), "--text-column", "sentence", "--out", str(out)) == 0
    lines = manifest_lines(out)
    assert [(x["id"], x["text"], x["audio"], x["seconds"]) for x in lines] == [
        ("000000", "one", "wavs/data/000000.wav", 0.25), ("000001", "two", "wavs/data/000001.wav", 0.5)]
    assert "speaker" not in lines[0]
    assert run_import("--format", "datasets", "--src", str(tmp_path / "hf"), "--out", str(out)) == 2  # no 'text' column
    path_wav = write_audio(tmp_path / "ext" / "p.wav", 0.25)
    datasets.Dataset.from_dict({"text": ["by path"], "file": [str(path_wav)]}).save_to_disk(str(tmp_path / "hf_paths"))
    assert run_import("--format", "datasets", "--src", str(tmp_path / "hf_paths"), "--audio-column", "file", "--out", str(out)) == 0
    assert manifest_lines(out)[0]["audio"] == "ext/p.wav"  # a path is used where it is (relative: under the out folder)


# ---------------------------------------------------------------- Lhotse cuts


def lhotse_cut(cid: str, source: str, seconds: float, text: str | None, words=None, sup_start: float = 0.0,
               sup_seconds: float | None = None, kind: str = "MonoCut") -> dict:
    sup = {"id": cid, "recording_id": cid, "start": sup_start, "duration": sup_seconds or seconds, "channel": 0, "speaker": "7"}
    if text is not None:
        sup["text"] = text
    if words is not None:
        sup["alignment"] = {"word": words}
    rec = {"id": cid, "sampling_rate": RATE, "num_samples": int(seconds * RATE), "duration": seconds,
           "sources": [{"type": "file", "channels": [0], "source": source}]}
    return {"id": cid, "start": 0.0, "duration": seconds, "channel": 0, "type": kind, "recording": rec, "supervisions": [sup]}


def test_lhotse_cuts_gzipped_with_words_in_both_item_forms_and_bad_cuts(tmp_path):
    import gzip

    write_audio(tmp_path / "audio" / "a.flac", 1.0)
    write_audio(tmp_path / "audio" / "b.flac", 0.8)
    write_audio(tmp_path / "audio" / "long.flac", 3.0)
    cuts = [
        lhotse_cut("a", "audio/a.flac", 1.0, "Hello, world!", [{"symbol": "HELLO", "start": 0.1, "duration": 0.3},
                                                              {"symbol": "WORLD", "start": 0.5, "duration": 0.4}]),
        lhotse_cut("b", str(tmp_path / "audio" / "b.flac"), 0.8, "GOOD DAY", [["GOOD", 0.0, 0.3, 0.9], ["DAY", 0.35, 0.3, 0.8]]),
        lhotse_cut("seg", "audio/long.flac", 3.0, "PART OF IT", sup_start=1.0, sup_seconds=1.0),  # part of a recording
        lhotse_cut("mix", "audio/a.flac", 1.0, "X", kind="MixedCut"),
        lhotse_cut("late", "audio/b.flac", 0.8, "TOO LATE", [{"symbol": "TOO", "start": 0.1, "duration": 0.2},
                                                            {"symbol": "LATE", "start": 0.6, "duration": 0.9}]),  # ends after the audio
    ]
    cuts[3]["recording"]["sources"][0]["type"] = "url"
    src = tmp_path / "cuts.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(c) + "\n" for c in cuts) + "{not json\n")
    out = tmp_path / "m.jsonl"
    assert run_import("--format", "lhotse", "--src", str(src), "--out", str(out)) == 1  # bad items -> 1
    items = {it["id"]: it for it in manifest_lines(out)}
    assert set(items) == {"a", "b"}
    assert items["a"]["text"] == "hello world" and items["a"]["speaker"] == "7"
    assert items["a"]["words"] == [{"word": "hello", "start": 0.1, "end": 0.4}, {"word": "world", "start": 0.5, "end": 0.9}]
    assert [w["word"] for w in items["b"]["words"]] == ["good", "day"] and items["b"]["words"][1]["end"] == pytest.approx(0.65)
    assert Path(read_manifest(out)[0][0].audio).resolve() == (tmp_path / "audio" / "a.flac").resolve()  # relative to the cuts file
    errors = load_jsonl(out.with_name("m.errors.jsonl"))
    reasons = {e["id"]: e["reason"] for e in errors}
    assert reasons == {"seg": "segment", "mix": "unsupported_cut", "late": "bad_alignment", None: "bad_line"}
    assert "save_audios" in next(e["detail"] for e in errors if e["id"] == "seg")


def test_lhotse_src_must_be_a_cuts_file(tmp_path, capsys):
    assert run_import("--format", "lhotse", "--src", str(tmp_path), "--out", str(tmp_path / "m.jsonl")) == 2
    assert "cuts.jsonl" in capsys.readouterr().err
