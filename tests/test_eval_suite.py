"""evaluate(): every benchmark type against a straightforward per-file reference computation."""

import json
import math
from collections import defaultdict

import pytest
from transformers import AutoTokenizer, LlamaForCausalLM

from support.bench import LEXICAL_ROWS, SYNTACTIC_ROWS, make_bench_root, make_storycloze
from support.eval import EnergyTokenizer, outcome, reference_file_ll, reference_ll, reference_s2t, reference_t2s, save_model_dir, speech_ids
from tinywave.eval.layouts import discover
from tinywave.eval.suite import EvalSettings, evaluate
from tinywave.text.vocab import layout_from_tokenizer


def _mean(xs):
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    models = {"teacher": save_model_dir(root / "teacher", seed=0), "student": save_model_dir(root / "student", seed=1)}
    bench = make_bench_root(root / "bench")
    return root, models, bench


def _load(folder):
    tok = AutoTokenizer.from_pretrained(str(folder))
    return tok, layout_from_tokenizer(tok), LlamaForCausalLM.from_pretrained(str(folder)).eval()


def _reference(folder, bench, reduce):
    """Each benchmark scored file by file with one plain forward pass, aggregated by the reference rules."""
    tok, layout, model = _load(folder)
    stok = EnergyTokenizer()
    ll = lambda p: reference_file_ll(model, tok, layout, stok, p, reduce)  # noqa: E731
    out = {}
    for name in ("sSC", "tSC"):
        names = sorted(p.name[: -len("_correct.wav")] for p in (bench / name).glob("*_correct.wav"))
        out[name] = _mean([outcome(ll(bench / name / f"{n}_correct.wav"), ll(bench / name / f"{n}_incorrect.wav")) for n in names])
    d = bench / "sSC"
    items = [json.loads(x) for x in (d / "items.jsonl").read_text().splitlines()]
    for kind in ("outcome", "entity"):
        out[f"sSC/{kind}"] = _mean([outcome(ll(d / f"{it['name']}_correct.wav"), ll(d / f"{it['name']}_incorrect.wav")) for it in items if it["kind"] == kind])

    def t2s(it, label):
        return reference_t2s(model, tok, layout, stok, it["prompt_text"], d / f"{it['name']}_{label}.wav", it[f"{label}_ending_start"], reduce)

    def s2t(it, label):
        return reference_s2t(model, tok, layout, stok, d / f"{it['name']}_{label}.wav", it[f"{label}_ending_start"], it[f"{label}_text"], reduce)

    out["sSC-t2s"] = _mean([outcome(t2s(it, "correct"), t2s(it, "incorrect")) for it in items])
    out["sSC-s2t"] = _mean([outcome(s2t(it, "correct"), s2t(it, "incorrect")) for it in items])
    parts = {}
    for part in sorted(p.name for p in (bench / "salmon").iterdir()):
        ks = sorted({p.stem.split("_")[1] for p in (bench / "salmon" / part).glob("*.wav")})
        folder = bench / "salmon" / part
        parts[part] = _mean([outcome(ll(folder / f"sample_{k}_0.wav"), ll(folder / f"sample_{k}_1.wav")) for k in ks])
    out["salmon"] = _mean(list(parts.values()))
    out.update({f"salmon/{p}": v for p, v in parts.items()})
    out.update(_reference_lexical(ll, bench / "sLM21" / "lexical" / "dev"))
    out.update(_reference_syntactic(ll, bench / "sLM21" / "syntactic" / "dev"))
    return out


def _reference_lexical(ll, split):
    by_id, freq = defaultdict(list), {}
    for i in range(0, len(LEXICAL_ROWS), 2):  # rows alternate word, non-word of one (id, voice)
        id_, _, f, _, _ = LEXICAL_ROWS[i]
        by_id[id_].append(outcome(ll(split / f"f7x{i:03d}.wav"), ll(split / f"f7x{i + 1:03d}.wav")))
        freq[id_] = f
    per_id = {k: _mean(v) for k, v in by_id.items()}
    return {"swuggy": _mean(list(per_id.values())), "swuggy/in-vocab": _mean([v for k, v in per_id.items() if freq[k] != 0]),
            "swuggy/oov": _mean([v for k, v in per_id.items() if freq[k] == 0])}


def _reference_syntactic(ll, split):
    by_id, types = defaultdict(list), {}
    for i in range(0, len(SYNTACTIC_ROWS), 2):
        id_, _, type_, sub, _ = SYNTACTIC_ROWS[i]
        by_id[(type_, sub, id_)].append(outcome(ll(split / f"g9x{i:03d}.wav"), ll(split / f"g9x{i + 1:03d}.wav")))
    per_id = {k: _mean(v) for k, v in by_id.items()}
    for (type_, _, _), v in per_id.items():
        types.setdefault(type_, []).append(v)
    return {"sblimp": _mean(list(per_id.values())), **{f"sblimp/{t}": _mean(v) for t, v in types.items()}}


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_scores_equal_the_plain_per_file_reference(setup, tmp_path, reduce):
    root, models, bench = setup
    report = evaluate(models, discover(bench), tmp_path, settings=EvalSettings(reduce=reduce, batch_tokens=256), speech_tokenizer=EnergyTokenizer())
    for name, folder in models.items():
        expected = _reference(folder, bench, reduce)
        got = {k: report["results"][k][name] for k in expected}
        assert got == expected, name  # exactly: the same accuracies
    assert set(report["results"]) >= {"sSC/outcome", "sSC/entity", "sSC-t2s/outcome", "swuggy/oov", "swuggy/1-5", "swuggy/>100"}
    assert report["counts"]["sSC"] == 4 and report["counts"]["swuggy"] == 4 and report["counts"]["sblimp"] == 4


def test_identical_files_tie_and_batched_equals_single(setup, tmp_path):
    root, models, _ = setup
    bench = make_storycloze(tmp_path / "tie", n=4, seed=3, tie=2)
    teacher = {"teacher": models["teacher"]}
    runs = [evaluate(teacher, {"sSC": bench}, tmp_path / f"o{b}", settings=EvalSettings(batch_tokens=b), speech_tokenizer=EnergyTokenizer())
            for b in (0, 1000)]
    scores = [[json.loads(x) for x in (tmp_path / f"o{b}" / "scores" / "sSC" / "teacher.jsonl").read_text().splitlines()] for b in (0, 1000)]
    assert scores[0][2]["outcome"] == scores[1][2]["outcome"] == 0.5 and scores[0][2]["pos"] == scores[0][2]["neg"]
    for a, b in zip(*scores):
        assert a["pos"] == pytest.approx(b["pos"], abs=1e-4) and a["neg"] == pytest.approx(b["neg"], abs=1e-4)
    assert runs[0]["results"]["sSC"] == runs[1]["results"]["sSC"]


def test_cache_tokenizes_each_clip_once_across_models_and_runs(setup, tmp_path):
    root, models, bench = setup
    stok = EnergyTokenizer()
    benches = {"sSC": bench / "sSC", "salmon": bench / "salmon"}
    evaluate(models, benches, tmp_path / "a", settings=EvalSettings(cache_dir=tmp_path / "cache"), speech_tokenizer=stok)
    clips = 2 * 4 + 2 * 4 + 2 * 4 + 2 * 2 * 2  # sSC whole files, t2s endings, s2t prompts; salmon files
    assert stok.calls == clips  # two models share the tokenizer: tokenized once
    cache_file = tmp_path / "cache" / stok.fingerprint / "tokens.jsonl"
    assert len(cache_file.read_text().splitlines()) == clips
    again = EnergyTokenizer()
    second = evaluate(models, benches, tmp_path / "b", settings=EvalSettings(cache_dir=tmp_path / "cache"), speech_tokenizer=again)
    assert again.calls == 0
    other = EnergyTokenizer(n_codes=10)  # another tokenizer: another fingerprint, tokenized afresh
    evaluate({"teacher": models["teacher"]}, {"salmon": bench / "salmon"}, tmp_path / "c",
             settings=EvalSettings(cache_dir=tmp_path / "cache"), speech_tokenizer=other)
    assert other.calls == 8 and second["results"]["sSC"]


def test_reports_and_submission_files(setup, tmp_path):
    root, models, bench = setup
    benches = {"swuggy": bench / "sLM21" / "lexical", "sblimp": bench / "sLM21" / "syntactic"}
    report = evaluate(models, benches, tmp_path, reference="student", settings=EvalSettings(submission=True), speech_tokenizer=EnergyTokenizer())
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["format"] == "tinywave-eval-v1" and data["reference"] == "student" and data["results"] == report["results"]
    assert list(data["models"]) == ["teacher", "student"] and data["models"]["teacher"]["parameters"] > 0
    md = (tmp_path / "results.md").read_text()
    assert "| benchmark | teacher | student | teacher/student |" in md
    t, s = report["results"]["swuggy"]["teacher"], report["results"]["swuggy"]["student"]
    ratio = "–" if s == 0 else f"{100 * t / s:.1f}%"
    assert f"| swuggy | {100 * t:.2f} | {100 * s:.2f} | {ratio} |" in md
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "submission" / "teacher" / "lexical" / "dev.txt").read_text().splitlines()
    assert len(lines) == len(LEXICAL_ROWS) and all(len(x.split()) == 2 for x in lines)
    scores = {x.split()[0]: float(x.split()[1]) for x in lines}
    tok, layout, model = _load(models["teacher"])
    expected = reference_file_ll(model, tok, layout, EnergyTokenizer(), bench / "sLM21" / "lexical" / "dev" / "f7x004.wav")
    assert scores["f7x004"] == pytest.approx(expected, abs=1e-5)
    assert (tmp_path / "submission" / "student" / "syntactic" / "dev.txt").is_file()


def test_perplexity_per_token_and_per_second(setup, tmp_path):
    root, models, _ = setup
    stok = EnergyTokenizer()
    records = [{"id": "a", "speech": "[Hu1][Hu4][Hu2][Hu9]", "seconds": 0.5, "tokenizer": stok.fingerprint},
               {"id": "b", "speech": "[Hu3][Hu5]", "seconds": 0.25, "tokenizer": stok.fingerprint}]
    corpus = tmp_path / "tokens.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = evaluate({"teacher": models["teacher"]}, {}, tmp_path / "out", perplexity={"held": corpus}, speech_tokenizer=stok)
    tok, layout, model = _load(models["teacher"])
    nll = -sum(reference_ll(model, [tok.bos_token_id, layout.speech_id] + speech_ids(tok, layout, r["speech"]), 2, "sum") for r in records)
    got = report["perplexity"]["held"]["teacher"]
    assert got["tokens"] == 6 and got["seconds"] == 0.75
    assert got["ppl_per_token"] == pytest.approx(math.exp(nll / 6), rel=1e-5)
    assert got["ppl_per_second"] == pytest.approx(math.exp(nll / 0.75), rel=1e-5)
    assert "Normalized perplexity" in (tmp_path / "out" / "results.md").read_text()
    corpus.write_text(json.dumps({**records[0], "tokenizer": "0123456789abcdef"}) + "\n")
    with pytest.raises(ValueError, match="re-tokenize the held-out audio"):
        evaluate({"teacher": models["teacher"]}, {}, tmp_path / "out2", perplexity={"held": corpus}, speech_tokenizer=stok)


def test_long_utterances_are_scored_in_windows(tmp_path):
    from tinywave.eval.perplexity import corpus_requests
    from tinywave.eval.scoring import SequenceBuilder

    tok, layout, _ = _load(save_model_dir(tmp_path / "m"))
    b = SequenceBuilder(tok)
    speech = "".join(f"[Hu{i % 16}]" for i in range(23))
    reqs = corpus_requests([{"speech": speech}], b, context=10)
    assert [r.n_scored for r in reqs] == [8, 8, 7]
    assert [t for r in reqs for t in r.ids[r.score_from :]] == b.speech_ids(speech)
    assert all(r.ids[:2] == (tok.bos_token_id, layout.speech_id) for r in reqs)


def test_argument_errors(setup, tmp_path):
    root, models, bench = setup
    with pytest.raises(ValueError, match=r"reference model 'x' is not one of the models \['teacher'\]"):
        evaluate({"teacher": models["teacher"]}, {"sSC": bench / "sSC"}, tmp_path, reference="x")
    with pytest.raises(ValueError, match="no model to evaluate"):
        evaluate({}, {"sSC": bench / "sSC"}, tmp_path)
    with pytest.raises(FileNotFoundError, match="speech_tokenizer"):
        evaluate({"teacher": models["teacher"]}, {"sSC": bench / "sSC"}, tmp_path)  # no speech_tokenizer/ in the folder


def test_reports_of_models_scored_apart_merge_into_the_report_of_one_run(setup, tmp_path):
    """`tinywave demo` scores its models in several processes and merges their reports (merge_reports)."""
    from tinywave.eval.report import merge_reports

    root, models, bench = setup
    benches = {"swuggy": bench / "sLM21" / "lexical", "sblimp": bench / "sLM21" / "syntactic"}
    stok = EnergyTokenizer()
    corpus = tmp_path / "tokens.jsonl"
    corpus.write_text(json.dumps({"id": "a", "speech": "[Hu1][Hu4][Hu2][Hu9]", "seconds": 0.5, "tokenizer": stok.fingerprint}) + "\n")

    def run(ms, out, ref):
        return evaluate({m: models[m] for m in ms}, benches, tmp_path / out, reference=ref, speech_tokenizer=stok, perplexity={"held": corpus})

    whole = run(["teacher", "student"], "whole", "teacher")
    parts = [run(["student"], "a", "student"), run(["teacher"], "b", "teacher")]
    merged = merge_reports(parts, ["teacher", "student"], reference="teacher")
    assert merged == whole
    assert list(merged["models"]) == ["teacher", "student"] and list(merged["results"]["swuggy"]) == ["teacher", "student"]
    with pytest.raises(ValueError, match="exactly once"):
        merge_reports([parts[0], parts[0]], ["teacher", "student"], reference="teacher")
    with pytest.raises(ValueError, match="differ in 'counts'"):
        merge_reports([parts[0], {**parts[1], "counts": {}}], ["teacher", "student"], reference="teacher")
