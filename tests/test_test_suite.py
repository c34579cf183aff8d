"""Checks of the test suite itself: a broken project import is an error, not a skip; shared helpers
come from tests/support/, not from other test modules; Hypothesis draws the same examples on every
CI run and a printed, repeatable seed elsewhere."""

import ast
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT

PROBE = "TINYWAVE_HYPOTHESIS_PROBE"  # file the probe below writes its examples to


def test_project_modules_are_imported_plainly():
    """``importorskip`` turns a broken import into a skip; only optional third-party packages may use it."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):  # the test modules and tests/support/
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip" and node.args
                    and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).split(".")[0] == "tinywave"):
                found.append(f"{path.relative_to(ROOT / 'tests')}:{node.lineno} importorskip({node.args[0].value!r})")
    assert not found, f"import the project's modules plainly instead: {found}"


def test_test_modules_do_not_import_each_other():
    """Helpers shared by test modules live in tests/support/ (``from support.models import tiny_llama``) and
    shared fixtures in tests/support/fixtures.py (registered in conftest.py): importing a test module
    runs its module-level code, and its fixtures come along by accident."""
    tests = ROOT / "tests"
    found = []
    for path in sorted([*tests.glob("test_*.py"), *(tests / "support").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.relative_to(tests)}:{node.lineno} imports {name}" for name in names if name.split(".")[0].startswith("test_")]
    assert not found, f"move what they share to tests/support/ and import it from there: {found}"


@pytest.mark.skipif(PROBE not in os.environ, reason="run by test_hypothesis_examples_are_fixed_in_ci_and_repeatable_elsewhere")
@settings(deadline=None)
@given(st.integers())
def test_probe_records_its_examples(x):
    with open(os.environ[PROBE], "a") as f:
        f.write(json.dumps(x) + "\n")


def probe_run(tmp_path, name: str, ci: bool, *args: str) -> tuple[list[int], str]:
    """(examples drawn, pytest output) of one run of the probe in a fresh pytest process."""
    record = tmp_path / f"{name}.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {PROBE: str(record)} | ({"CI": "true"} if ci else {})
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::test_probe_records_its_examples",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in record.read_text().splitlines()], proc.stdout


def test_hypothesis_examples_are_fixed_in_ci_and_repeatable_elsewhere(tmp_path):
    first, out = probe_run(tmp_path, "ci1", ci=True)
    assert "hypothesis: profile 'derandomize' (derandomize=True): the same examples on every run" in out
    assert probe_run(tmp_path, "ci2", ci=True)[0] == first and len(first) > 10
    dev, out = probe_run(tmp_path, "dev", ci=False)
    seed = re.search(r"hypothesis: profile 'seeded' \(derandomize=False\), seed (\d+); repeat these examples with "
                     r"--hypothesis-seed=\1", out)
    assert seed, out
    assert probe_run(tmp_path, "again", False, f"--hypothesis-seed={seed.group(1)}")[0] == dev
