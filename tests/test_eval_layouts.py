"""Benchmark folder loaders (official layouts) and the reference aggregation rules."""

import json
import shutil

import pytest

from support.bench import LEXICAL_ROWS, make_bench_root, make_lexical, make_salmon, make_storycloze, make_syntactic
from support.eval import write_wav
from tinywave.eval.layouts import SALMON_PARTS, Clip, detect_kind, discover, load_benchmark, load_lexical, load_salmon, load_storycloze, load_syntactic
from tinywave.eval.metrics import frequency_band, summarize


def test_storycloze_pairs_by_name_not_listing_order(tmp_path):
    # names whose sorted listing interleaves: a_correct, a_incorrect, a_x_correct, ... and a stray file
    for name in ["b", "a", "a_x", "10"]:
        write_wav(tmp_path / f"{name}_incorrect.wav", 1)
        write_wav(tmp_path / f"{name}_correct.wav", 2)
    write_wav(tmp_path / "notes.wav", 3)
    items = load_storycloze(tmp_path)
    assert [it.id for it in items] == ["10", "a", "a_x", "b"]
    for it in items:
        assert it.pos.audio.name == f"{it.id}_correct.wav" and it.neg.audio.name == f"{it.id}_incorrect.wav"
        assert it.pos.ending is None and it.prompt_text is None


def test_storycloze_incomplete_and_misnamed_errors(tmp_path):
    make_storycloze(tmp_path / "ok", n=3)
    (tmp_path / "ok" / "s1_incorrect.wav").unlink()
    with pytest.raises(ValueError, match=r"s1 \(has only _correct.wav\).*needs a <name>_incorrect.wav"):
        load_storycloze(tmp_path / "ok")
    write_wav(tmp_path / "bad" / "s0_right.wav", 0)
    write_wav(tmp_path / "bad" / "s0_wrong.wav", 1)
    with pytest.raises(ValueError, match=r"expected <name>_correct.wav and <name>_incorrect.wav, found s0_right.wav, s0_wrong.wav"):
        load_storycloze(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_storycloze(tmp_path / "missing")


def test_storycloze_items_jsonl_gives_kinds_and_cross_modal_clips(tmp_path):
    make_storycloze(tmp_path, n=2, items=True)
    it = load_storycloze(tmp_path)[1]
    assert it.tags == {"kind": "entity"} and it.prompt_text and it.pos.text == "the cat sat" and it.neg.text == "a dog ran home"
    assert it.pos.prompt == Clip(it.pos.audio, 0.0, 0.2) and it.pos.ending == Clip(it.pos.audio, 0.2, None)
    assert it.neg.ending == Clip(it.neg.audio, 0.24, None)


def test_salmon_groups_by_sample_index_and_ignores_other_suffixes(tmp_path):
    make_salmon(tmp_path, parts=("speaker_consistency", "rir_consistency"), n=3)
    write_wav(tmp_path / "rir_consistency" / "sample_1_2.wav", 9)  # other suffix: ignored
    items = load_salmon(tmp_path)
    assert len(items) == 6 and {it.tags["part"] for it in items} == {"speaker_consistency", "rir_consistency"}
    for it in items:
        k = it.id.split("/")[1]
        assert it.pos.audio.name == f"sample_{k}_0.wav" and it.neg.audio.name == f"sample_{k}_1.wav"
    assert len(load_salmon(tmp_path / "rir_consistency")) == 3  # one part folder on its own


def test_salmon_keeps_sample_ids_as_written_and_refuses_one_sample_spelled_twice(tmp_path):
    part = make_salmon(tmp_path, parts=("speaker_consistency",), n=3) / "speaker_consistency"
    for j in (0, 1):
        (part / f"sample_2_{j}.wav").rename(part / f"sample_02_{j}.wav")
    assert [it.id for it in load_salmon(part)] == ["speaker_consistency/0", "speaker_consistency/1", "speaker_consistency/02"]
    write_wav(part / "sample_2_0.wav", 7)  # sample 2's positive file, a second time under another spelling
    with pytest.raises(ValueError, match=r"speaker_consistency: sample_02_0.wav and sample_2_0.wav both name sample 2's positive file"):
        load_salmon(part)
    (part / "sample_2_0.wav").unlink()
    write_wav(part / "sample_1_01.wav", 7)  # the side spelled two ways
    with pytest.raises(ValueError, match=r"sample_1_01.wav and sample_1_1.wav both name sample 1's negative file; remove or rename"):
        load_salmon(part)


def test_salmon_errors_list_expected_and_found(tmp_path):
    make_salmon(tmp_path / "a", parts=("speaker_consistency",), n=2)
    (tmp_path / "a" / "speaker_consistency" / "sample_1_1.wav").unlink()
    with pytest.raises(ValueError, match=r"1 samples lack a file: missing sample_1_1.wav"):
        load_salmon(tmp_path / "a")
    make_salmon(tmp_path / "b", parts=("speaker_consistency",), n=1)
    shutil.copytree(tmp_path / "b" / "speaker_consistency", tmp_path / "b" / "speaker_consistncy")
    with pytest.raises(ValueError, match=r"speaker_consistncy are not SALMon parts; expected some of sentiment_consistency, speaker_consistency"):
        load_salmon(tmp_path / "b")
    (tmp_path / "c").mkdir()
    write_wav(tmp_path / "c" / "x.wav", 0)
    with pytest.raises(ValueError, match=r"holds no SALMon part folders: expected some of .*found x.wav"):
        load_salmon(tmp_path / "c")


def test_lexical_pairs_by_id_and_voice_whatever_the_row_order(tmp_path):
    items = load_lexical(make_lexical(tmp_path / "dev"))
    assert len(items) == 6
    by_key = {(it.tags["id"], it.tags["voice"]): it for it in items}
    assert set(by_key) == {("1", "v1"), ("1", "v2"), ("2", "v1"), ("2", "v2"), ("3", "v1"), ("4", "v2")}
    it = by_key[("2", "v2")]
    assert (it.tags["word"], it.tags["nonword"], it.tags["frequency"]) == ("cat", "cag", 3)
    assert it.pos.audio.name == "f7x006.wav" and it.neg.audio.name == "f7x007.wav"
    assert load_lexical(tmp_path)[0].tags == items[0].tags  # the parent folder resolves to dev/


def test_zerospeech_errors(tmp_path):
    split = make_lexical(tmp_path / "lex" / "dev")
    (split / "f7x003.wav").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 12 files in gold.csv are missing, e.g. f7x003"):
        load_lexical(split)
    split = make_syntactic(tmp_path / "syn")
    text = (split / "gold.csv").read_text().replace("subtype", "sub_type")
    (split / "gold.csv").write_text(text)
    with pytest.raises(ValueError, match=r"lacks columns \['subtype'\]: expected filename,type,subtype"):
        load_syntactic(split)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no gold.csv for sLM21 lexical: looked in"):
        load_lexical(tmp_path / "empty")


def test_detect_and_discover(tmp_path):
    root = make_bench_root(tmp_path)
    found = discover(root)
    assert set(found) == {"sSC", "tSC", "salmon", "swuggy", "sblimp"}
    kinds = {n: detect_kind(p) for n, p in found.items()}
    assert kinds == {"sSC": "storycloze", "tSC": "storycloze", "salmon": "salmon", "swuggy": "swuggy", "sblimp": "sblimp"}
    assert load_benchmark("my-bench", root / "sLM21" / "syntactic").kind == "sblimp"
    (tmp_path / "x").mkdir()
    write_wav(tmp_path / "x" / "a.wav", 0)
    with pytest.raises(ValueError, match=r"cannot tell the benchmark type .* found a.wav"):
        load_benchmark("mine", tmp_path / "x")
    with pytest.raises(ValueError, match="holds no StoryCloze pairs"):
        load_benchmark("sSC", root / "salmon")  # the name sets the layout it must match


@pytest.mark.parametrize("count,band", [(0, "oov"), (1, "1-5"), (4, "1-5"), (5, "6-20"), (19, "6-20"), (20, "21-100"), (99, "21-100"), (100, ">100")])
def test_frequency_bands_follow_the_reference_cut(count, band):
    assert frequency_band(count) == band


def test_lexical_summary_averages_voices_within_id(tmp_path):
    items = load_lexical(make_lexical(tmp_path))
    outcome = {("1", "v1"): 1.0, ("1", "v2"): 0.0, ("2", "v1"): 0.5, ("2", "v2"): 1.0, ("3", "v1"): 0.0, ("4", "v2"): 1.0}
    s = summarize("swuggy", items, [outcome[(it.tags["id"], it.tags["voice"])] for it in items])
    per_id = {"1": 0.5, "2": 0.75, "3": 0.0, "4": 1.0}
    assert s.score == pytest.approx(sum(per_id.values()) / 4) and s.count == 4
    assert s.breakdown == pytest.approx({"oov": 0.5, "1-5": 0.75, "21-100": 0.0, ">100": 1.0, "in-vocab": (0.75 + 0.0 + 1.0) / 3})
    assert s.counts["in-vocab"] == 3 and len(LEXICAL_ROWS) == 12


def test_syntactic_and_salmon_summaries(tmp_path):
    items = load_syntactic(make_syntactic(tmp_path / "syn"))
    outcome = {("1", "v1"): 1.0, ("1", "v2"): 0.5, ("2", "v1"): 0.0, ("3", "v1"): 1.0, ("4", "v2"): 1.0}
    s = summarize("sblimp", items, [outcome[(it.tags["id"], it.tags["voice"])] for it in items])
    assert s.score == pytest.approx((0.75 + 0.0 + 1.0 + 1.0) / 4)
    assert s.breakdown == pytest.approx({"agreement": 0.375, "island": 1.0})
    sal = load_salmon(make_salmon(tmp_path / "sal", parts=("speaker_consistency", "gender_consistency"), n=2))
    s = summarize("salmon", sal, [1.0 if it.tags["part"] == "speaker_consistency" else 0.5 * (it.id[-1] == "0") for it in sal])
    assert s.breakdown == pytest.approx({"gender_consistency": 0.25, "speaker_consistency": 1.0}) and s.score == pytest.approx(0.625)
    assert set(SALMON_PARTS) >= set(s.breakdown)


def test_items_jsonl_with_bad_line_is_an_error(tmp_path):
    make_storycloze(tmp_path, n=1)
    (tmp_path / "items.jsonl").write_text(json.dumps({"kind": "outcome"}) + "\n")
    with pytest.raises(ValueError, match="items.jsonl:1: line lacks name"):
        load_storycloze(tmp_path)
