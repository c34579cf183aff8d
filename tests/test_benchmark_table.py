"""benchmarks/table.py and benchmarks/record.py: results files -> TABLE.md, one row per figure with
its target (met / MISSED), its conditions (missing fields named, never invented) and its file."""

import json
import re
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import table  # noqa: E402
from record import figure, met, write_results  # noqa: E402

FULL_CONDITIONS = {"cpu": "Test CPU 9000", "cpu_flags": ["avx2"], "cores": 2, "threads": 1, "precision": "fp32",
                   "torch": "2.13.0", "commit": "abc1234", "date": "2026-01-02T03:04:05+00:00", "load_average": [1.5, 1.0, 1.0]}
HELPERS = {"conditions.py", "record.py", "stacking_report.py", "table.py", "timing.py"}


def _rows(text: str, file: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and f"]({file})" in line]


def test_targets_are_marked_met_or_missed_and_every_figure_gets_a_row(tmp_path):
    figs = [figure("speed-up", 1.5, "x", (">=", 1.2)), figure("memory", 0.7, "x", ("<=", 0.5)),
            figure("never reached", None, "s", ("<=", 10.0)), figure("claim", "supported"), figure("exact", True, "", ("==", True))]
    write_results("fake_bench", figs, FULL_CONDITIONS, tmp_path / "fake_bench.json", rows=[1, 2])
    rows = _rows(table.build(tmp_path), "fake_bench.json")
    assert len(rows) == 5
    by_name = {r.split(" | ")[0][2:]: r for r in rows}
    assert "| >= 1.2 | met |" in by_name["speed-up"]
    assert "| <= 0.5 | **MISSED** |" in by_name["memory"]
    assert "| — | <= 10 | **MISSED** |" in by_name["never reached"]  # no value: the target is missed, not dropped
    assert "| supported |  |  |" in by_name["claim"]
    assert "| yes | == yes | met |" in by_name["exact"]
    assert all("Test CPU 9000 (avx2); 2 cores, 1 threads; fp32; torch 2.13.0; commit abc1234" in r for r in rows)
    assert not any("not recorded" in r for r in rows)


def test_files_before_the_conditions_fields_say_what_is_not_recorded(tmp_path):
    legacy = {"table": {"sSC": {"ce": {"mean": 0.525, "std": 0.01, "ci": [0.47, 0.57], "p_vs_ce": 0.5}}},
              "conditions": {"cpu": "x86_64", "threads": 2, "precision": "bf16", "torch": "2.13.0", "commit": "30f6b06"}}
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    (tmp_path / "older.json").write_text(json.dumps({"table": {"a": {"value": 3.0}}}))
    text = table.build(tmp_path)
    old = _rows(text, "old.json")
    assert [r.split(" | ")[:2] for r in old] == [["| table.sSC.ce.mean", "0.525 (± 0.01 [0.47, 0.57])"],
                                                 ["| table.sSC.ce.p_vs_ce", "0.5"]]
    assert all("not recorded: cpu_flags, cores, date" in r for r in old)
    assert "x86_64" in old[0] and "bf16" in old[0]  # what was recorded is shown as recorded
    (older,) = _rows(text, "older.json")
    assert "| table.a.value | 3 |" in older and "| conditions not recorded |" in older


def test_quick_runs_are_flagged_and_a_broken_file_does_not_stop_the_table(tmp_path):
    write_results("quick_bench", [figure("x", 1.0)], FULL_CONDITIONS, tmp_path / "quick_bench.json", settings={"quick": True})
    (tmp_path / "broken.json").write_text("{not json")
    text = table.build(tmp_path)
    assert "QUICK / tiny smoke run" in _rows(text, "quick_bench.json")[0]
    assert "unreadable" in _rows(text, "broken.json")[0]


def test_the_cli_writes_table_md_and_refuses_a_missing_folder(tmp_path):
    write_results("fake_bench", [figure("speed-up", 1.5, "x", (">=", 1.2))], FULL_CONDITIONS, tmp_path / "fake_bench.json")
    assert table.main(["--results", str(tmp_path)]) == 0
    assert "| speed-up | 1.5 x | >= 1.2 | met |" in (tmp_path / "TABLE.md").read_text()
    with pytest.raises(SystemExit, match="is not a folder"):
        table.main(["--results", str(tmp_path / "nope")])


def test_figure_refuses_an_unknown_target_operator():
    with pytest.raises(ValueError, match=r"'=>' is not known; use one of"):
        figure("x", 1.0, target=("=>", 1.0))
    assert met(figure("x", 2.0)) is None


def test_every_benchmark_script_writes_the_shared_conditions():
    """The conditions come from benchmarks/conditions.py in every script, not a local copy."""
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name not in HELPERS)
    assert len(scripts) >= 10
    lacking = [p.name for p in scripts if not re.search(r"^\s*from conditions import conditions", p.read_text(), re.M)]
    assert not lacking, f"these scripts do not use benchmarks/conditions.py: {lacking}"
