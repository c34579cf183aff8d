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


def test_doctor_fails_on_an_output_path_under_a_file(capsys, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    assert main(["doctor", "--out", str(tmp_path / "file.txt" / "run")]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] write" in out and "file.txt is a file, not a folder" in out and "fix the FAIL lines" in out


def test_doctor_warns_on_low_disk_space_and_bad_threads(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "9999")
    assert main(["doctor", "--out", str(tmp_path), "min_free_gb=1e12"]) in (0, 1)
    out = capsys.readouterr().out
    assert "[warn] disk" in out and "free space or choose another --out" in out
    assert "[warn] threads" in out and "OMP_NUM_THREADS=9999 is more than" in out
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert main(["doctor", "--out", str(tmp_path)]) == 1
    assert "[FAIL] threads" in capsys.readouterr().out


def test_doctor_says_how_to_get_bit_identical_resumes(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.delenv("MKL_CBWR", raising=False)
    main(["doctor", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert ("MKL_CBWR=AUTO,STRICT" in out) == torch.backends.mkl.is_available()
    monkeypatch.setenv("MKL_CBWR", "AUTO,STRICT")
    main(["doctor", "--out", str(tmp_path)])
    assert "export MKL_CBWR" not in capsys.readouterr().out
