"""End to end through the real CLI: `corpus synth` and `corpus benchmarks` on --small."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinywave.cli import main
from tinywave.data.manifest import read_manifest
from tinywave.eval.layouts import discover, load_benchmark

pytestmark = pytest.mark.slow
SEED = "5"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    assert main(["corpus", "synth", "--out", str(out), "--small", "--seed", SEED, "--workers", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert main(["corpus", "benchmarks", "--out", str(out), "--small", "--seed", SEED, "--workers", "2"]) == 0
    return out


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".progress" not in p.parts}


def test_same_seed_same_bytes_and_resume(corpus, tmp_path):
    other = tmp_path / "again"
    assert main(["corpus", "synth", "--out", str(other), "--small", "--seed", SEED, "--workers", "1"]) == 0
    first, second = files(corpus), files(other)
    first.pop("corpus.json"), second.pop("corpus.json")  # holds the output path
    assert first == second  # any number of workers: byte-identical wavs and manifest
    # an interrupted run: one wav lost, one torn; the rerun restores exactly the same bytes
    wavs = sorted((other / "wavs").glob("*.wav"))
    wavs[0].unlink()
    wavs[-1].write_bytes(wavs[-1].read_bytes()[:1000])
    assert main(["corpus", "synth", "--out", str(other), "--small", "--seed", SEED, "--workers", "1"]) == 0
    again = files(other)
    again.pop("corpus.json")
    assert again == first
    info = json.loads((other / "corpus.json").read_text())
    assert info["stories"] == 6 and info["failed"] == []


def test_manifest_items_are_whole_stories_with_timings(corpus):
    items, bad = read_manifest(corpus / "manifest.jsonl")
    assert not bad and len(items) == 6
    voices = [it.extra["voice"] for it in items]
    assert voices == ["en-us+m3", "en-us+f2"] * 3 and [it.speaker for it in items] == voices
    for it in items:
        info = sf.info(str(it.audio))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert len(it.extra["sentences"]) == 5 and " ".join(it.extra["sentences"]) == it.text
        assert [w.word for w in it.words] == it.text.split()
        assert all(a.start < a.end <= b.start for a, b in zip(it.words, it.words[1:]))
        assert 0 < it.words[0].start and it.words[-1].end <= info.duration
        n_prompt = sum(len(s.split()) for s in it.extra["sentences"][:4])
        assert it.words[n_prompt - 1].end < it.extra["ending_start"] <= it.words[n_prompt].start
        assert it.extra["gender"] in ("male", "female") and {"pitch", "rate", "story_id", "story_type"} <= set(it.extra)
        assert re.fullmatch(r"[a-z ]+", it.text)


def test_rate_speaks_the_same_stories_faster_and_first_skips_stories(corpus, tmp_path, capsys):
    fast = tmp_path / "fast"
    assert main(["corpus", "synth", "--out", str(fast), "--stories", "2", "--rate", "1.3", "--seed", SEED, "--workers", "1"]) == 0
    base, _ = read_manifest(corpus / "manifest.jsonl")
    quick, bad = read_manifest(fast / "manifest.jsonl")
    assert not bad and [it.id for it in quick] == ["s00000", "s00001"]
    for slow_it, fast_it in zip(base, quick):
        assert fast_it.text == slow_it.text and fast_it.extra["story_id"] == slow_it.extra["story_id"]
        assert (fast_it.extra["rate_factor"], fast_it.extra["first"], slow_it.extra["rate_factor"]) == (1.3, 0, 1.0)
        assert fast_it.extra["rate"] - 221 == slow_it.extra["rate"] - 170  # the same jitter on a 1.3x base rate
        ratio = sf.info(str(fast_it.audio)).duration / sf.info(str(slow_it.audio)).duration
        assert 0.6 < ratio < 0.9, f"{fast_it.id}: rate 1.3 audio is {ratio:.2f}x as long as rate 1.0"
    info = json.loads((fast / "corpus.json").read_text())
    assert (info["rate"], info["base_rate"], info["first"]) == (1.3, 221, 0)
    assert (info["config"]["rate"], info["config"]["first"]) == (1.3, 0)
    # --first 4: the seed's stories 4 and 5 with the deliveries they have in the corpus that starts at story 0
    # (the bytes may differ by a few samples: espeak's output depends on the chunk a story is spoken in)
    later = tmp_path / "later"
    assert main(["corpus", "synth", "--out", str(later), "--stories", "2", "--first", "4", "--seed", SEED, "--workers", "1"]) == 0
    items, _ = read_manifest(later / "manifest.jsonl")
    assert [it.id for it in items] == ["s00004", "s00005"] and all(it.extra["first"] == 4 for it in items)
    keys = ("story_id", "voice", "pitch", "rate")
    assert [[it.extra[k] for k in keys] for it in items] == [[it.extra[k] for k in keys] for it in base[4:6]]
    assert [it.text for it in items] == [it.text for it in base[4:6]]
    for it, ref in zip(items, base[4:6]):
        assert abs(sf.info(str(it.audio)).duration - sf.info(str(ref.audio)).duration) < 0.05
    assert json.loads((later / "corpus.json").read_text())["first"] == 4
    capsys.readouterr()
    assert main(["corpus", "synth", "--out", str(tmp_path / "no"), "--stories", "1", "--rate", "2.6"]) == 2
    assert re.search(r"--rate 2\.6: .*within 0\.5\.\.2\.5", capsys.readouterr().err)
    assert main(["corpus", "synth", "--out", str(tmp_path / "no"), "--stories", "1", "--first", "-3"]) == 2
    assert "--first -3" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_benchmark_rate_speaks_storycloze_faster(bench, tmp_path):
    fast = tmp_path / "fast_bench"
    assert main(["corpus", "benchmarks", "--out", str(fast), "--items", "2", "--only", "storycloze", "--rate", "1.3",
                 "--seed", SEED, "--workers", "1"]) == 0
    slow_items = [json.loads(line) for line in (bench / "sSC" / "items.jsonl").read_text().splitlines()][:2]
    fast_items = [json.loads(line) for line in (fast / "sSC" / "items.jsonl").read_text().splitlines()]
    assert [x["name"] for x in fast_items] == [x["name"] for x in slow_items]
    for a, b in zip(slow_items, fast_items):
        assert (a["rate_factor"], b["rate_factor"]) == (1.0, 1.3) and b["rate"] - 221 == a["rate"] - 170
        assert b["correct_ending_start"] < 0.9 * a["correct_ending_start"]
    assert json.loads((fast / "benchmarks.json").read_text())["config"]["rate"] == 1.3


def test_word_timings_are_audibly_right(corpus):
    """Cut each word by its timing: its energy is speech-like; the pauses between sentences are near-silent."""
    items, _ = read_manifest(corpus / "manifest.jsonl")
    for it in items:
        wav, rate = sf.read(str(it.audio), dtype="float32")

        def rms(a: float, b: float) -> float:
            seg = wav[int(a * rate) : int(b * rate)].astype(np.float64)
            return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0

        speech = np.sqrt(np.mean(np.concatenate([wav[int(w.start * rate) : int(w.end * rate)] for w in it.words]) ** 2))
        quiet = [w for w in it.words if w.end - w.start >= 0.05 and rms(w.start, w.end) < 0.15 * speech]
        assert not quiet, f"{it.id}: words cut by their timing sound silent: {quiet}"
        starts = it.extra["sentence_starts"]
        for s in starts[1:]:
            before = max(w.end for w in it.words if w.end <= s)
            after = min(w.start for w in it.words if w.start >= s)
            assert after - before > 0.15 and rms(before, after) < 0.03 * speech  # -30 dB: the tail of the last phone may reach into the pause
        assert rms(0, it.words[0].start) < 0.02 * speech


def test_benchmark_folders_parse_by_a_plain_reading(bench):
    for name in ("sSC", "tSC"):
        correct = sorted(bench.glob(f"{name}/*_correct.wav"))
        assert len(correct) == 10
        for c in correct:
            neg = c.with_name(c.name.replace("_correct.wav", "_incorrect.wav"))
            assert neg.is_file()
            a, b = sf.read(str(c))[0], sf.read(str(neg))[0]
            items = {json.loads(line)["name"]: json.loads(line) for line in (bench / name / "items.jsonl").read_text().splitlines()}
            start = int(items[c.name[: -len("_correct.wav")]]["correct_ending_start"] * 16000)
            np.testing.assert_array_equal(a[: start - 1600], b[: start - 1600])  # same prompt audio (resampler reach aside)
            assert not np.array_equal(a, b)
    kinds = [json.loads(line)["kind"] for line in (bench / "sSC" / "items.jsonl").read_text().splitlines()]
    assert set(kinds) <= {"outcome", "entity"} and kinds.count("outcome") >= 5
    assert {json.loads(line)["kind"] for line in (bench / "tSC" / "items.jsonl").read_text().splitlines()} == {"topic"}
    parts = sorted(p.name for p in (bench / "salmon").iterdir())
    assert parts == sorted(["speaker_consistency", "gender_consistency", "sentiment_consistency", "rir_consistency",
                            "bg_domain_consistency", "bg_all_consistency"])
    for part in parts:
        positives = sorted((bench / "salmon" / part).glob("sample_*_0.wav"))
        assert len(positives) == 10
        for p in positives:
            n = p.with_name(p.name[: -len("_0.wav")] + "_1.wav")
            assert sf.info(str(p)).samplerate == 16000 and sf.info(str(n)).channels == 1
            assert p.read_bytes() != n.read_bytes()


def read_gold(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_slm21_gold_files(bench):
    lex = read_gold(bench / "sLM21/lexical/dev/gold.csv")
    assert list(lex[0]) == ["id", "filename", "voice", "frequency", "word", "phones", "length", "correct"]
    syn = read_gold(bench / "sLM21/syntactic/dev/gold.csv")
    assert list(syn[0]) == ["filename", "type", "subtype", "transcription", "correct", "id", "voice"]
    for rows, folder in ((lex, "lexical"), (syn, "syntactic")):
        assert all((bench / f"sLM21/{folder}/dev/{r['filename']}.wav").is_file() for r in rows)
        by_pair: dict = {}
        for r in rows:
            by_pair.setdefault((r["id"], r["voice"]), []).append(r["correct"])
        assert all(sorted(v) == ["0", "1"] for v in by_pair.values())  # one word and one non-word per id and voice
        assert len({r["id"] for r in rows}) == 10
    assert len({r["voice"] for r in lex}) >= 2 and all(int(r["length"]) == len(r["phones"].split()) for r in lex)
    assert len({r["type"] for r in syn}) >= 4


def test_benchmarks_are_held_out_of_the_training_corpus(corpus, bench):
    items, _ = read_manifest(corpus / "manifest.jsonl")
    train_sentences = {s for it in items for s in it.extra["sentences"]}
    train_word_voice = {(w.word, it.extra["voice"]) for it in items for w in it.words}
    bench_sentences = set()
    for name in ("sSC", "tSC"):
        for line in (bench / name / "items.jsonl").read_text().splitlines():
            item = json.loads(line)
            bench_sentences |= {*item["prompt_sentences"], item["correct_text"], item["incorrect_text"]}
    for part in (bench / "salmon").iterdir():
        bench_sentences |= {json.loads(line)["text"] for line in (part / "items.jsonl").read_text().splitlines()}
    bench_sentences |= {r["transcription"] for r in read_gold(bench / "sLM21/syntactic/dev/gold.csv")}
    for task in ("sid", "pr"):
        for split in ("train", "dev", "test"):
            bench_sentences |= {json.loads(line)["text"] for line in (bench / "probes" / task / f"{split}.jsonl").read_text().splitlines()}
    assert len(bench_sentences) > 100 and not train_sentences & bench_sentences
    lexical_pairs = {(r["word"], r["voice"]) for r in read_gold(bench / "sLM21/lexical/dev/gold.csv")}
    assert not lexical_pairs & train_word_voice
    # also against a full-size training corpus of the seed (text only: nothing to synthesize)
    from tinywave.corpus.split import training_stories

    assert not {s for story in training_stories(int(SEED), 400) for s in story.sentences} & bench_sentences


def test_probe_sets_are_well_formed(bench):
    for task in ("ks", "sid", "pr"):
        seen_text = {}
        for split, n in (("train", 30), ("dev", 5), ("test", 10)):
            lines = [json.loads(line) for line in (bench / "probes" / task / f"{split}.jsonl").read_text().splitlines()]
            assert len(lines) == n and len({x["id"] for x in lines}) == n
            for x in lines:
                assert sf.info(str(bench / "probes" / task / x["audio"])).samplerate == 16000
                assert ("phones" in x) if task == "pr" else ("label" in x)
            if task == "pr":
                assert all(x["phones"] and all(isinstance(p, str) for p in x["phones"]) for x in lines)
            seen_text[split] = {x.get("text") for x in lines}
        if task != "ks":
            assert not seen_text["train"] & seen_text["test"]  # split by sentence
    ks = [json.loads(line) for line in (bench / "probes/ks/train.jsonl").read_text().splitlines()]
    assert len({x["label"] for x in ks}) == 12 and all(x["text"] == x["label"] for x in ks if not x["label"].startswith("_"))
    sid = [json.loads(line) for line in (bench / "probes/sid/train.jsonl").read_text().splitlines()]
    assert all(x["label"] == x["voice"] for x in sid) and len({x["label"] for x in sid}) == 10


def test_rerun_of_benchmarks_changes_nothing(bench):
    before = files(bench)
    assert main(["corpus", "benchmarks", "--out", str(bench), "--small", "--seed", SEED, "--workers", "1"]) == 0
    after = files(bench)
    assert before.keys() == after.keys()
    assert all(before[k] == after[k] for k in before if k != "benchmarks.json")


def test_evaluation_loaders_read_the_folders(bench):
    found = discover(bench)
    assert set(found) == {"sSC", "tSC", "salmon", "swuggy", "sblimp"}
    sizes = {name: len(load_benchmark(name, path).items) for name, path in found.items()}
    assert sizes == {"sSC": 10, "tSC": 10, "salmon": 60, "swuggy": 40, "sblimp": 20}  # sLM21: pairs x voices
    ssc = load_benchmark("sSC", found["sSC"]).items
    assert {it.tags["kind"] for it in ssc} <= {"outcome", "entity"} and all(it.pos.ending.start > 0 for it in ssc)
