"""The `tinywave` command's own surface: --version, group help, --print-config."""

from __future__ import annotations

import yaml

from tinywave.cli import COMMANDS, main


def test_version_is_the_installed_package_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tinywave {version('tinywave')}"


def test_group_help_lists_exactly_its_subcommands(capsys):
    assert main(["sfm", "--help"]) == 0
    out = capsys.readouterr().out
    listed = {line.split("  ")[1].strip() for line in out.splitlines() if line.startswith("  sfm ")}
    assert listed == {k for k in COMMANDS if k.startswith("sfm ")}  # and nothing outside the group
    assert main(["corpus"]) == 0
    assert "corpus synth" in capsys.readouterr().out


def test_print_config_resolves_overrides_and_round_trips(tmp_path, capsys):
    assert main(["distill", "--print-config", "student.n_layers=3", "--optim.lr", "0.002"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["student"]["n_layers"] == 3 and printed["optim"]["lr"] == 0.002 and printed["teacher"]["dir"] == ""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(printed))
    assert main(["distill", "--config", str(tmp_path / "c.yaml"), "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == printed
    assert main(["distill", "--print-config", "student.n_layerz=3"]) == 2  # a wrong key is still an error
