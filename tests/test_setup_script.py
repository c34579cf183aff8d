"""`make setup` (scripts/setup.sh) with a stand-in virtualenv python: a failing step stops the
set-up loudly and leaves no "installed" stamp; the import check runs outside the repository."""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT

# records each call (working directory and arguments); fails, with pip's kind of message, on a match
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$PWD :: $*" >> "$CALLS"
if [ -n "$FAIL_ON" ] && [[ "$*" == *"$FAIL_ON"* ]]; then
  echo "$FAIL_MESSAGE"
  exit 1
fi
"""

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or any(shutil.which(p) is None for p in ("espeak-ng", "ffmpeg")) or not os.path.exists("/usr/bin/chromium"),
    reason="needs make, and espeak-ng, ffmpeg and chromium already installed (else setup.sh would run apt-get)")


def make_setup(tmp_path, fail_on: str = "", message: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(FAKE_PYTHON)
    (venv / "bin" / "python").chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = dict(os.environ, CALLS=str(calls), FAIL_ON=fail_on, FAIL_MESSAGE=message)
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "setup", f"VENV={venv}"], env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_a_failing_pip_install_stops_setup_naming_the_command_and_the_package(tmp_path):
    pip_error = "ERROR: No matching distribution found for no-such-package>=1"
    proc, calls = make_setup(tmp_path, fail_on="-e .[dev]", message=pip_error)
    assert proc.returncode != 0
    assert "[setup] FAILED: installing tinywave[dev] and its dependencies from pyproject.toml" in proc.stderr
    assert "-m pip install -q -e .[dev]" in proc.stderr and pip_error in proc.stderr
    assert not (tmp_path / "venv" / ".tinywave-installed").exists()
    assert not any(" -I -c " in c for c in calls)  # nothing ran after the failed step


def test_a_failing_import_check_stops_setup(tmp_path):
    proc, _ = make_setup(tmp_path, fail_on="-I -c", message="ModuleNotFoundError: No module named 'tinywave'")
    assert proc.returncode != 0 and "[setup] FAILED: checking the installed packages import" in proc.stderr
    assert "No module named 'tinywave'" in proc.stderr
    assert not (tmp_path / "venv" / ".tinywave-installed").exists()


def test_a_set_up_that_works_writes_the_stamp_after_an_import_check_outside_the_repository(tmp_path):
    proc, calls = make_setup(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "venv" / ".tinywave-installed").exists()
    pip = [c for c in calls if "-m pip install" in c]
    assert [c.split(" :: ")[1] for c in pip] == ["-m pip install -q --upgrade pip", "-m pip install -q torch==2.13.0", "-m pip install -q -e .[dev]"]
    checks = [c for c in calls if " -I -c " in c]
    assert checks and all(not c.split(" :: ")[0].startswith(str(ROOT)) for c in checks)
    assert "pytest_timeout" in checks[0] and "tinywave" in checks[0]
