"""`tinywave doctor`: a healthy environment passes, and each check, made to fail on purpose, names its failure.

Conditions that cannot be produced for real here (an old Python, a missing package, an
unwritable folder when the tests run as root) are simulated by patching what the check reads.
"""

import ctypes
import os
import re
import sys
from collections import namedtuple
from types import SimpleNamespace

import pytest

from tinywave.cli import main
from tinywave.recipes import doctor

LINE = re.compile(r"^\[\s*(ok|warn|FAIL)\] (\S+)\s+(.*)$")


def run_doctor(capsys, out, *extra) -> tuple[int, dict[str, tuple[str, str]]]:
    """Exit code and {check: (status, message)} of one `tinywave doctor` run."""
    rc = main(["doctor", "--out", str(out), *extra])
    lines = capsys.readouterr().out.splitlines()
    checks = {m.group(2): (m.group(1), m.group(3)) for m in map(LINE.match, lines) if m}
    assert lines[-1] in ("all good", "usable, see the warnings above", "fix the FAIL lines above")
    return rc, checks


def failed(checks) -> dict[str, str]:
    return {name: msg for name, (status, msg) in checks.items() if status == "FAIL"}


def test_a_set_up_environment_is_healthy(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    rc, checks = run_doctor(capsys, tmp_path)
    assert set(checks) == {"python", "torch", "threads", "resume", "packages", "espeak-ng", "disk", "write"}
    assert failed(checks) == {} and rc == 0, f"`make setup` should leave no FAIL: {failed(checks)}"


def expect_only_failure(capsys, tmp_path, name: str, message: str) -> None:
    rc, checks = run_doctor(capsys, tmp_path)
    assert rc == 1 and list(failed(checks)) == [name], checks
    assert message in failed(checks)[name]


@pytest.fixture
def packages_imported():
    """The dependencies imported before a test patches ``sys``: their own imports then see the real one."""
    assert doctor.check_packages()[0] == "ok"


def test_old_python_fails(capsys, tmp_path, monkeypatch, packages_imported):
    version = namedtuple("version_info", "major minor micro releaselevel serial")
    monkeypatch.setattr(sys, "version_info", version(3, 10, 4, "final", 0))
    expect_only_failure(capsys, tmp_path, "python", "Python 3.10: tinywave needs Python >= 3.11")


def test_missing_torch_fails_and_the_checks_that_need_it_say_so(capsys, tmp_path, monkeypatch, packages_imported):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    rc, checks = run_doctor(capsys, tmp_path)
    assert rc == 1 and "torch is not installed: pip install torch==2.13.0" in failed(checks)["torch"]
    assert checks["resume"] == ("warn", "torch is not installed (see the torch line): reproducibility not checked")


def test_more_torch_threads_than_cores_warns(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: (os.cpu_count() or 1) + 3)
    rc, checks = run_doctor(capsys, tmp_path)
    assert checks["torch"][0] == "warn" and f"set OMP_NUM_THREADS={os.cpu_count() or 1}" in checks["torch"][1] and rc == 0


@pytest.mark.parametrize("value, status, message", [
    ("lots", "FAIL", "OMP_NUM_THREADS='lots' is not a positive integer: unset it"),
    ("0", "FAIL", "OMP_NUM_THREADS='0' is not a positive integer"),
    ("9999", "warn", "OMP_NUM_THREADS=9999 is more than the"),
])
def test_bad_omp_num_threads(capsys, tmp_path, monkeypatch, value, status, message):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    rc, checks = run_doctor(capsys, tmp_path)
    assert checks["threads"][0] == status and message in checks["threads"][1]
    assert rc == (1 if status == "FAIL" else 0)


def test_missing_package_fails_naming_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyworld", None)
    monkeypatch.setitem(sys.modules, "soxr", None)
    expect_only_failure(capsys, tmp_path, "packages", "missing packages ['soxr', 'pyworld']: run `pip install -e .`")


def fake_ctypes(find_library, cdll=ctypes.CDLL) -> SimpleNamespace:
    """What the doctor sees as ``ctypes`` (patched for the doctor only: other imports keep the real one)."""
    return SimpleNamespace(util=SimpleNamespace(find_library=find_library), CDLL=cdll)


def test_missing_espeak_library_fails(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "ctypes", fake_ctypes(lambda name: None))
    expect_only_failure(capsys, tmp_path, "espeak-ng", "libespeak-ng is missing (needed to synthesize the embedded corpus): apt-get install espeak-ng")


def test_espeak_library_that_does_not_load_fails(capsys, tmp_path, monkeypatch):
    def broken(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(doctor, "ctypes", fake_ctypes(lambda name: "libespeak-ng.so.1", broken))
    expect_only_failure(capsys, tmp_path, "espeak-ng", "libespeak-ng.so.1 does not load (libespeak-ng.so.1: cannot open shared object file): reinstall")


def test_espeak_command_off_path_warns(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    rc, checks = run_doctor(capsys, tmp_path)
    assert checks["espeak-ng"][0] == "warn" and "the espeak-ng command is not on PATH" in checks["espeak-ng"][1] and rc == 0


def test_low_disk_space_warns(capsys, tmp_path):
    rc, checks = run_doctor(capsys, tmp_path, "min_free_gb=1e12")
    assert checks["disk"][0] == "warn" and "free space or choose another --out" in checks["disk"][1] and rc == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; the simulated twin below runs instead")
def test_unwritable_folder_fails(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        expect_only_failure(capsys, ro, "write", f"cannot write in {ro} (Permission denied): choose a writable --out")
    finally:
        ro.chmod(0o700)


def test_unwritable_folder_fails_simulated(capsys, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(doctor.tempfile, "NamedTemporaryFile", denied)
    expect_only_failure(capsys, tmp_path, "write", f"cannot write in {tmp_path} (Permission denied): choose a writable --out")


def test_output_path_under_a_file_fails(capsys, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    expect_only_failure(capsys, tmp_path / "file.txt" / "run", "write", "file.txt is a file, not a folder: choose another --out")


def test_doctor_says_how_to_get_bit_identical_resumes(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.delenv("MKL_CBWR", raising=False)
    main(["doctor", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert ("MKL_CBWR=AUTO,STRICT" in out) == torch.backends.mkl.is_available()
    monkeypatch.setenv("MKL_CBWR", "AUTO,STRICT")
    main(["doctor", "--out", str(tmp_path)])
    assert "export MKL_CBWR" not in capsys.readouterr().out
