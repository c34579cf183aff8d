"""Fuzzing (hypothesis): whatever a user or a file feeds in, only clean, named errors come out.

Targets: SpiritLM token strings, the vocabulary fast path, manifests (random bytes and
random JSON), benchmark ``gold.csv`` files, YAML configs, and the command line of real
subcommands. Allowed outcomes are a result or one of our named errors (ValueError with a
message, FileNotFoundError, ConfigError); anything else (TypeError, OverflowError,
RecursionError, csv.Error, a traceback on stderr) is a bug.
"""

import contextlib
import csv
import io
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import OUTCOME
from tinywave.cli import main
from tinywave.config import ConfigError, describe, load_config
from tinywave.data.manifest import read_manifest
from tinywave.eval.layouts import LEXICAL_COLUMNS, SYNTACTIC_COLUMNS, load_benchmark, load_lexical, load_syntactic
from tinywave.speech.format import parse_speech_and_text, split_tokens, string_to_units, units_to_string
from tinywave.text.vocab import VocabLayout

FAST = settings(max_examples=200, deadline=None)
SLOWER = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CLI = settings(SLOWER, max_examples=20)
CASES = {"examples": 0}
RAN: dict[str, str] = {}  # test id -> outcome, filled as the tests of this module run

# ---------------------------------------------------------------- strategies

TOKENS = st.sampled_from(["[Hu", "[Pi", "[St", "]", "[", "[Text]", "[Speech]", "Hu", "12", "0", "007", "9" * 30, "٣", "²", " ", "\n", "\x00"])
speechish = st.lists(st.one_of(TOKENS, st.text(max_size=4)), max_size=40).map("".join)
any_text = st.one_of(st.text(max_size=200), speechish)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**320),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_value = st.recursive(json_scalar, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
manifest_keys = st.sampled_from(["id", "audio", "text", "words", "speaker", "word", "start", "end", "voice"])
time_value = st.one_of(st.floats(-1, 100), st.integers(-5, 10**320), json_value)
word = st.fixed_dictionaries({"word": st.text(max_size=5), "start": time_value, "end": time_value}) | st.fixed_dictionaries(
    {}, optional={"word": json_value, "start": json_value, "end": json_value})
manifest_obj = st.dictionaries(manifest_keys, st.one_of(json_value, st.lists(word, max_size=3)), max_size=6)


def fuzz_summary(examples: int, outcomes: dict[str, str]) -> str:
    """The figures line, from the outcomes of the tests that ran: "0 unnamed errors" only when all passed."""
    counts = Counter(outcomes.values())
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    line = (f"[reliability] fuzzing: {examples} generated inputs in {len(outcomes)} tests "
            f"({counts['passed']} passed, {len(failed)} failed, {counts['skipped']} skipped)")
    if failed:
        return line + f": {len(failed)} with an unnamed error or a wrong result: {', '.join(failed)}"
    return line + (": 0 unnamed errors" if counts["passed"] else ": nothing checked")


@pytest.fixture(autouse=True, scope="module")
def report_figures():
    yield
    shutil.rmtree(SCRATCH, ignore_errors=True)
    print("\n" + fuzz_summary(CASES["examples"], RAN))


@pytest.fixture(autouse=True)
def record_outcome(request):
    yield
    RAN[request.node.name] = request.node.stash.get(OUTCOME, "passed")


def test_summary_counts_what_ran():
    assert fuzz_summary(7, {"a": "passed", "b": "passed"}).endswith("7 generated inputs in 2 tests (2 passed, 0 failed, 0 skipped): 0 unnamed errors")
    line = fuzz_summary(7, {"a": "passed", "b": "failed", "c": "skipped"})
    assert "0 unnamed errors" not in line and line.endswith("(1 passed, 1 failed, 1 skipped): 1 with an unnamed error or a wrong result: b")
    assert "0 unnamed errors" not in fuzz_summary(0, {"a": "skipped"})


def count():
    CASES["examples"] += 1


# ---------------------------------------------------------------- speech token strings


@FAST
@given(any_text)
def test_string_to_units_never_raises(text):
    count()
    units = string_to_units(text, seed=0)
    n = len(units["hubert"])
    assert all(len(v) == n for v in units.values())
    assert all(isinstance(u, int) and u >= 0 for v in units.values() for u in v)
    assert string_to_units(text, duplicate_hubert_for_multiple_pitch=True, seed=0).keys() == units.keys()


@FAST
@given(any_text)
def test_parse_speech_and_text_partitions_the_text(text):
    count()
    segments = parse_speech_and_text(text)
    assert "".join(s for s, _ in segments) == text.replace("[Text]", "").replace("[Speech]", "")
    assert all(a[1] != b[1] for a, b in zip(segments, segments[1:]))  # runs alternate
    for seg, kind in segments:
        assert ("".join(split_tokens(seg)) == seg) if kind == "s" else (split_tokens(seg) == [])


@FAST
@given(any_text)
def test_speech_string_to_ids_or_a_named_error(text):
    count()
    layout = VocabLayout(100, n_hu=20, n_pi=4, n_st=3)
    try:
        ids = layout.speech_string_to_ids(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert all(layout.text_id <= i < layout.size for i in ids)
    assert layout.speech_string_to_ids(layout.ids_to_speech_string(ids)) == ids  # "[Hu007]" is canonically "[Hu7]"


@FAST
@given(st.lists(st.integers(0, 19), max_size=30), st.lists(st.integers(0, 3), max_size=15), st.lists(st.integers(0, 2), max_size=2))
def test_valid_strings_round_trip_through_the_vocabulary(hubert, pitch, style):
    count()
    layout = VocabLayout(100, n_hu=20, n_pi=4, n_st=3)
    text = units_to_string(hubert, pitch or None, style or None)
    assert layout.ids_to_speech_string(layout.speech_string_to_ids(text)) == text


# ---------------------------------------------------------------- manifests


SCRATCH = Path(tempfile.mkdtemp(prefix="tw-fuzz-"))


def fresh_dir() -> Path:
    """An empty scratch folder (the same one each time: examples run one after another)."""
    for p in sorted(SCRATCH.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    return SCRATCH


def check_manifest(path: Path, n_lines: int) -> None:
    items, bad = read_manifest(path)
    assert len(items) + len(bad) == n_lines  # every non-blank line is an item or a reported bad line
    assert len({it.id for it in items}) == len(items)
    assert all(b.reason in ("bad_line", "bad_entry", "duplicate_id") and b.detail and b.where.startswith(str(path)) for b in bad)


@FAST
@given(st.binary(max_size=400))
def test_manifest_of_random_bytes(data):
    count()
    folder = fresh_dir()
    path = folder / "m.jsonl"
    path.write_bytes(data)
    check_manifest(path, sum(1 for line in data.split(b"\n") if line.strip()))


@settings(max_examples=120, deadline=None)
@given(st.lists(st.one_of(manifest_obj, json_value), min_size=1, max_size=6))
def test_manifest_of_random_json(objs):
    count()
    folder = fresh_dir()
    path = folder / "m.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    check_manifest(path, len(objs))


def test_manifest_pathological_lines(tmp_path):
    lines = ["[" * 100_000, '{"id": "a", "audio": "x", "words": [{"word": "w", "start": ' + "9" * 400 + ', "end": 1}]}',
             '{"id": ' + "7" * 5000 + ', "audio": "x"}', '{"id": "b", "audio": "x", "words": [{"word": "w", "start": 1e999, "end": 1e999}]}',
             '{"id": "c", "audio": "\\u0000"}']
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    items, bad = read_manifest(path)
    assert [b.reason for b in bad] == ["bad_line", "bad_entry", "bad_line", "bad_entry"]
    assert "not usable JSON" in bad[2].detail and [it.id for it in items] == ["c"]  # its audio path is refused when loading


# ---------------------------------------------------------------- gold.csv


cell = st.one_of(st.text(max_size=6), st.sampled_from(["0", "1", " 1", "2", "", "x.wav", "a", "1e3", "nan"]))


def gold_text(columns: tuple[str, ...]):
    header = st.one_of(st.just(list(columns)), st.permutations(list(columns)), st.lists(st.sampled_from(list(columns) + ["junk"]), max_size=9))
    rows = st.lists(st.lists(cell, max_size=10), max_size=6)
    return st.tuples(header, rows)


def write_gold(folder: Path, header: list[str], rows: list[list[str]], wav_names: set[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    (folder / "gold.csv").write_text(buf.getvalue(), encoding="utf-8")
    for name in wav_names:  # some rows name files that exist
        with contextlib.suppress(OSError, ValueError):
            (folder / (name if name.endswith(".wav") else name + ".wav")).write_bytes(b"RIFF")


def named_error_only(call, folder: Path) -> None:
    try:
        items = call()
    except (ValueError, FileNotFoundError) as exc:
        assert str(folder) in str(exc), f"the error does not name the folder or file: {exc}"
        return
    assert all(it.pos.audio.is_file() and it.neg.audio.is_file() for it in items)


@SLOWER
@given(gold_text(LEXICAL_COLUMNS), st.sets(cell, max_size=3))
def test_lexical_gold_csv(gold, wavs):
    count()
    folder = fresh_dir()
    write_gold(folder, *gold, wavs)
    named_error_only(lambda: load_lexical(folder), folder)


@SLOWER
@given(gold_text(SYNTACTIC_COLUMNS), st.sets(cell, max_size=3))
def test_syntactic_gold_csv(gold, wavs):
    count()
    folder = fresh_dir()
    write_gold(folder, *gold, wavs)
    named_error_only(lambda: load_syntactic(folder), folder)


@SLOWER
@given(st.binary(max_size=300))
def test_gold_csv_of_random_bytes(data):
    count()
    folder = fresh_dir()
    (folder / "gold.csv").write_bytes(data)
    for name in ("swuggy", "sblimp", "mystery"):
        named_error_only(lambda: load_benchmark(name, folder).items, folder)


def test_gold_csv_pathological(tmp_path):
    cases = {
        "latin1": "id,filename,voice,frequency,word,phones,length,correct\n1,a,v,1,caf\xe9,p,1,1\n".encode("latin-1"),
        "short_rows": b"id,filename,voice,frequency,word,phones,length,correct\n1,a\n",
        "huge_field": b"id,filename,voice,frequency,word,phones,length,correct\n" + b'"' + b"x" * 200_000 + b'"\n',
        "nul": b"id,filename,voice,frequency,word,phones,length,correct\n1,a\x00b,v,1,w,p,1,1\n",
    }
    for name, data in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "gold.csv").write_bytes(data)
        with pytest.raises((ValueError, FileNotFoundError), match="gold.csv"):
            load_lexical(folder)


# ---------------------------------------------------------------- YAML configs and CLI overrides


def recipe_config(name: str):
    import importlib

    return importlib.import_module(f"tinywave.recipes.{name}").Config


yaml_scalar = st.one_of(json_scalar, st.sampled_from(["1e400", "-.inf", ".nan", "0x1F", "2024-01-01", "~", "yes", "[1, 2", "{a: 1", "!!python/object:os.system", "&a [*a]"]))
yaml_text = st.one_of(
    st.text(max_size=120),
    st.dictionaries(st.sampled_from(["train", "optim", "loss", "student", "data", "layer_map", "teacher", "steps", "_base_", "resume", "lr"]),
                    st.recursive(yaml_scalar, lambda k: st.lists(k, max_size=3)
                                 | st.dictionaries(st.sampled_from(["lr", "steps", "out", "x", "betas"]), k, max_size=3), max_leaves=8),
                    max_size=5).map(lambda d: json.dumps(d, default=str)),
)


@SLOWER
@given(yaml_text, st.sampled_from(["distill", "train", "tokenize", "units_train"]))
def test_yaml_config_files(text, recipe):
    count()
    folder = fresh_dir()
    path = folder / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(recipe_config(recipe), path)
    except (ConfigError, FileNotFoundError) as exc:
        assert str(exc)


def override_values():
    return st.one_of(yaml_scalar.map(str), st.text(max_size=12), st.just("9" * 400), st.just("[" * 2000))


@st.composite
def argv(draw, cfg_cls):
    keys = [k for k, *_ in describe(cfg_cls)]
    key = st.one_of(st.sampled_from(keys), st.text(max_size=10))
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        form = draw(st.integers(0, 4))
        k, v = draw(key), draw(override_values())
        parts += [[f"--{k}", v], [f"--{k}"], [f"{k}={v}"], [f"--{k}={v}"], [draw(st.text(max_size=8))]][form]
    return parts


@pytest.mark.parametrize("command,module", [("distill", "distill"), ("tokenize", "tokenize"), ("data build", "data_build"), ("doctor", "doctor")])
def test_cli_with_random_arguments(command, module, capsys, monkeypatch):
    monkeypatch.chdir(fresh_dir())  # a relative path anything writes lands in a scratch folder
    monkeypatch.delenv("TINYWAVE_DEBUG", raising=False)
    cfg_cls = recipe_config(module)

    @CLI
    @given(argv(cfg_cls))
    def run(args):
        count()
        assume("--help" not in args and "-h" not in args)
        rc = main([*command.split(), *args])
        err = capsys.readouterr().err
        assert rc in (0, 1, 2) and "Traceback" not in err
        if rc == 2:
            assert err.startswith("error: ") or "error: " in err

    run()


@pytest.mark.parametrize("override", ["train.steps=" + "9" * 5000, "loss.kl_weight=" + "9" * 400, "train.steps=1e400",
                                      "train.steps=.nan", "layer_map=" + "[" * 3000, "loss.temperature=[1, 2",
                                      "student.keep_layers=!!python/object/apply:os.system ['true']"])
def test_config_pathological_overrides(override):
    from tinywave.recipes.distill import Config

    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(Config, None, [override])


def test_yaml_pathological_files(tmp_path):
    from tinywave.recipes.distill import Config

    marker = tmp_path / "PWNED"
    for i, text in enumerate(["[" * 5000, "train: {steps: " + "9" * 5000 + "}", f"x: !!python/object/apply:os.system ['touch {marker}']",
                              "\udcff", "a: &a [*a, *a]", "- 1\n- 2"]):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        with pytest.raises(ConfigError, match=str(path)) if i != 4 else pytest.raises(ConfigError, match="unknown config key 'a'"):
            load_config(Config, path)
    assert not marker.exists()
