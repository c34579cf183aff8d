from dataclasses import dataclass, field as dc_field

import pytest

from tinywave.cli import main, split_args
from tinywave.config import ConfigError, field, load_config, to_dict


@dataclass
class Optim:
    lr: float = field(1e-3)
    betas: list[float] = field([0.9, 0.95])


@dataclass
class Cfg:
    out: str = field("x")
    steps: int = field(10)
    small: bool = field(False)
    names: list[str] = field([])
    optim: Optim = dc_field(default_factory=Optim)


def test_defaults_yaml_and_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("steps: 20\noptim:\n  lr: 0.01\n")
    cfg = load_config(Cfg, y, ["optim.lr=3e-4", "small=true", "optim.betas=[0.8, 0.9]"])
    assert cfg.steps == 20 and cfg.optim.lr == 3e-4 and cfg.small is True and cfg.optim.betas == [0.8, 0.9]
    assert to_dict(cfg)["optim"]["lr"] == 3e-4


def test_unknown_key_names_closest():
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*Did you mean 'lr'"):
        load_config(Cfg, None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"'step'.*Did you mean 'steps'"):
        load_config(Cfg, None, ["step=1"])


def test_unknown_key_in_yaml(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("optim:\n  lrate: 0.1\n")
    with pytest.raises(ConfigError, match="optim.lrate"):
        load_config(Cfg, y)


def test_type_errors_are_named():
    with pytest.raises(ConfigError, match="steps: expected an integer"):
        load_config(Cfg, None, ["steps=ten"])
    with pytest.raises(ConfigError, match="small: expected true or false"):
        load_config(Cfg, None, ["small=maybe"])


def test_split_args_flags_and_lists():
    path, over = split_args(Cfg, ["--out", "d", "--small", "--names", "a=1", "--names", "b=2", "optim.lr=0.5"])
    cfg = load_config(Cfg, path, over)
    assert cfg.out == "d" and cfg.small and cfg.names == ["a=1", "b=2"] and cfg.optim.lr == 0.5


def test_cli_unknown_subcommand(capsys):
    assert main(["tokenise"]) == 2
    assert "Did you mean 'tinywave tokenize'" in capsys.readouterr().err


def test_cli_unknown_key_is_clean_error(capsys, tmp_path):
    assert main(["vocab", "--out", str(tmp_path / "v"), "vocab_sise=10"]) == 2
    err = capsys.readouterr().err
    assert "vocab_sise" in err and "vocab_size" in err and "Traceback" not in err


def test_yaml_base_inheritance(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 5\noptim:\n  lr: 0.1\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\noptim:\n  lr: 0.2\n")
    cfg = load_config(Cfg, tmp_path / "child.yaml")
    assert cfg.steps == 5 and cfg.optim.lr == 0.2


def test_section_default_instance():
    @dataclass
    class C2:
        optim: Optim = field(Optim(lr=0.5))

    a, b = C2(), C2()
    assert a.optim.lr == 0.5 and a.optim is not b.optim
