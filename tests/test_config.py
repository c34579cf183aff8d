import dataclasses
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import ClassVar

import pytest

from tinywave.cli import main, split_args
from tinywave.config import ConfigError, describe, field, field_type, from_dict, load_config, to_dict


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


# ---------------------------------------------------------------- renamed keys


@dataclass
class Model:
    n_layers: int = field(2)
    width: int = field(8)


@dataclass
class Growth:
    op: str = field("none")
    stages: int = field(2)


@dataclass
class Renamed:
    RENAMED: ClassVar[dict[str, str]] = {"model.num_layers": "model.n_layers", "stacking": "growth", "batch": "optim.batch_size",
                                         "train.lr": "optim.lr"}
    model: Model = dc_field(default_factory=Model)
    growth: Growth = dc_field(default_factory=Growth)
    optim: Optim = dc_field(default_factory=Optim)


def test_a_renamed_override_names_the_new_key():
    with pytest.raises(ConfigError, match=r"^config key 'model.num_layers' was renamed 'model.n_layers'; write model.n_layers=\.\.\.$"):
        load_config(Renamed, None, ["model.num_layers=4"])
    with pytest.raises(ConfigError, match=r"config key 'train.lr' was renamed 'optim.lr'; write optim.lr="):
        load_config(Renamed, None, ["train.lr=0.1"])  # into another section
    with pytest.raises(ConfigError, match=r"config key 'stacking.op' was renamed 'growth.op'; write growth.op="):
        load_config(Renamed, None, ["stacking.op=top"])  # a renamed section renames every key under it
    with pytest.raises(ConfigError, match=r"config key 'batch' was renamed 'optim.batch_size'"):
        load_config(Renamed, None, ["batch=4"])  # a flat key moved into a section
    cfg = load_config(Renamed, None, ["model.n_layers=4", "growth.op=top"])  # the new keys work
    assert cfg.model.n_layers == 4 and cfg.growth.op == "top"
    with pytest.raises(ConfigError, match=r"unknown config key 'model.n_layer'.*Did you mean 'n_layers'"):
        load_config(Renamed, None, ["model.n_layer=4"])  # a typo stays an unknown key


def test_a_renamed_key_in_yaml_names_the_new_key(tmp_path):
    y = tmp_path / "old.yaml"
    y.write_text("model:\n  width: 4\n  num_layers: 3\n")
    with pytest.raises(ConfigError, match=r"config key 'model.num_layers' was renamed 'model.n_layers'; write model.n_layers="):
        load_config(Renamed, y)
    y.write_text("stacking:\n  op: top\n  stages: 3\n")
    with pytest.raises(ConfigError, match=r"config key 'stacking.op' was renamed 'growth.op'"):
        load_config(Renamed, y)
    with pytest.raises(ConfigError, match=r"config key 'stacking' was renamed 'growth'"):
        from_dict(Renamed, {"stacking": {}})  # from_dict (the demo's stage calls) checks too


def test_cli_names_the_new_key_of_a_renamed_one(capsys, tmp_path):
    assert main(["sfm", "distill", "--out", str(tmp_path), "student.num_layers=4"]) == 2
    assert "config key 'student.num_layers' was renamed 'student.n_layers'; write student.n_layers=..." in capsys.readouterr().err
    assert main(["vocoder", "train", "--minutes", "5"]) == 2  # --key VALUE spelling
    err = capsys.readouterr().err
    assert "config key 'minutes' was renamed 'train.max_minutes'" in err and "Traceback" not in err
    assert main(["sfm", "distill", "--help"]) == 0
    assert "stacking -> growth" in capsys.readouterr().out  # --help lists the renames


def test_every_recipe_renames_to_keys_it_has():
    for module in recipe_modules():
        for old, new in getattr(module.Config, "RENAMED", {}).items():
            assert field_type(module.Config, new) is not None, (module.__name__, old, new)
            assert field_type(module.Config, old) is None, (module.__name__, old)


# ---------------------------------------------------------------- one vocabulary across recipes

OLD_LEAF_NAMES = {"hidden_size", "num_layers", "intermediate_size", "save_every", "stop_at", "keep", "warmup", "minutes", "batch"}
PRECISION_NAMES = {"fp32", "bf16", "fp16", "auto"}


def recipe_modules() -> list:
    import importlib

    root = Path(__file__).resolve().parents[1] / "tinywave" / "recipes"
    modules = [importlib.import_module(f"tinywave.recipes.{p.stem}") for p in sorted(root.glob("*.py")) if p.stem != "__init__"]
    return [m for m in modules if dataclasses.is_dataclass(getattr(m, "Config", None))]


def test_no_recipe_config_uses_the_old_key_names():
    modules = recipe_modules()
    assert {"sfm_distill", "sfm_pretrain", "vocoder_train", "distill", "train"} <= {m.__name__.rsplit(".", 1)[1] for m in modules}
    for module in modules:
        rows = describe(module.Config)
        old = [key for key, *_ in rows if key.rsplit(".", 1)[-1] in OLD_LEAF_NAMES or key.split(".")[0] == "stacking"]
        assert not old, f"{module.__name__} still has {old}"


def test_every_precision_default_uses_the_short_spelling():
    checked = 0
    for module in recipe_modules():
        for key, _, default, text in describe(module.Config):
            leaf = key.rsplit(".", 1)[-1]
            if "dtype" not in leaf and "precision" not in leaf:
                continue
            values = default if isinstance(default, list) else [default]
            allowed = PRECISION_NAMES | ({"int8"} if isinstance(default, list) else set())  # bench latency's variants
            assert set(values) <= allowed, f"{module.__name__} {key} defaults to {default!r}"
            assert not any(name in text.split("(")[0] for name in ("float32", "bfloat16", "float16")), (module.__name__, key, text)
            checked += 1
    assert checked >= 8  # teacher.dtype, train.precision, dtype of eval/export/generate/app, the cache's four


# ---------------------------------------------------------------- one entry of a mapping value


@dataclass
class WithMapping:
    mixture: dict[str, float] = field({"speech": 0.7, "interleaved": 0.2, "text": 0.1}, help="shares")


def test_a_dotted_override_sets_one_entry_of_a_mapping(tmp_path):
    # the form the data build docstring and the shipped configs' commands use: entries merge into the default
    assert load_config(WithMapping, None, ["mixture.interleaved=0.5", "mixture.text=0"]).mixture == {
        "speech": 0.7, "interleaved": 0.5, "text": 0.0}
    # ... or into the value the YAML file gave, which a whole-value override replaces
    (tmp_path / "c.yaml").write_text("mixture: {speech: 1.0}\n")
    assert load_config(WithMapping, tmp_path / "c.yaml", ["mixture.text=0.5"]).mixture == {"speech": 1.0, "text": 0.5}
    assert load_config(WithMapping, tmp_path / "c.yaml", ["mixture={text: 1}"]).mixture == {"text": 1}
    with pytest.raises(ConfigError, match=r"'mixture' is a mapping of values: set one entry with mixture.KEY=VALUE"):
        load_config(WithMapping, None, ["mixture.speech.x=1"])  # one level only: a mapping's entries are values
