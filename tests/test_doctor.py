import os

import pytest

from tinywave.cli import main


def test_doctor_reports_environment(capsys, tmp_path):
    rc = main(["doctor", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "torch" in out and "espeak-ng" in out and "writable" in out
    assert rc == (1 if "FAIL" in out else 0)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_doctor_flags_unwritable_folder(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["doctor", "--out", str(ro)]) == 1
        assert "cannot write" in capsys.readouterr().out
    finally:
        ro.chmod(0o700)
