"""Every shipped YAML under configs/ loads into the config of the recipe its header names; --help lists every key."""

import re
from itertools import takewhile
from pathlib import Path

import pytest

from tinywave.cli import main
from tinywave.config import load_config
from tinywave.recipes import distill, sfm_distill, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = {"train": train, "distill": distill, "sfm distill": sfm_distill}  # the commands that take --config


def recipe_of(path: Path):
    """The recipe of the command in the YAML's header comment: ``tinywave <command> --config configs/<name>``."""
    header = "".join(takewhile(lambda line: line.startswith("#"), path.read_text().splitlines(keepends=True)))
    command = re.search(rf"tinywave ((?:[a-z]+ )+)--config configs/{re.escape(path.name)}\b", header)
    assert command, f"{path.name}: say in its header comment which command reads it (tinywave <command> --config configs/{path.name})"
    name = command.group(1).strip()
    assert name in RECIPES, f"{path.name}: `tinywave {name}` is not one of {sorted(RECIPES)}"
    return RECIPES[name]


def test_every_shipped_config_is_covered():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert {"teacher-tiny.yaml", "distill-tiny.yaml", "sfm-stacking.yaml"} <= set(names)
    assert {recipe_of(CONFIGS / name) for name in names} == set(RECIPES.values())


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_config_loads(name):
    recipe = recipe_of(CONFIGS / name)
    cfg = load_config(recipe.Config, CONFIGS / name)
    assert cfg.train.steps > 0
    if recipe is not sfm_distill:  # the LM recipes' precision (sfm distill trains in fp32)
        assert cfg.train.precision in ("fp32", "bf16")
    if recipe is distill:
        assert cfg.student.init in ("pruned", "random") and cfg.loss.ce_weight > 0


def test_spiritlm_config_keeps_the_papers_shape():
    cfg = load_config(distill.Config, CONFIGS / "spiritlm-base-2b.yaml")
    assert cfg.student.n_layers == 10 and cfg.student.width == 0
    teacher = load_config(train.Config, CONFIGS / "teacher-7b.yaml").model
    assert (teacher.n_layers, teacher.width, teacher.heads, teacher.ffn) == (32, 4096, 32, 11008)


def test_baseline_config_runs_no_teacher_loss():
    cfg = load_config(distill.Config, CONFIGS / "distill-baseline-ce.yaml", ["student.init=random"])
    assert (cfg.loss.kl_weight, cfg.loss.hidden_weight, cfg.loss.attn_weight) == (0, 0, 0) and cfg.student.init == "random"


@pytest.mark.parametrize("command, key", [("distill", "loss.kl_weight"), ("train", "lora.r"), ("export", "checkpoint")])
def test_help_lists_keys(capsys, command, key):
    assert main([command, "--help"]) == 0
    assert key in capsys.readouterr().out


@pytest.mark.parametrize("name", ["distill-tiny.yaml", "spiritlm-base-2b.yaml", "spiritlm-expressive-2b.yaml"])
def test_distillation_loss_is_one_default_everywhere(name):
    """`tinywave distill` with no config, the demo's student and the shipped configs use the same loss."""
    from tinywave.distill.defaults import DISTILL_LOSS
    from tinywave.recipes import demo

    bare = distill.Config().loss
    assert {k: getattr(bare, k) for k in DISTILL_LOSS} == DISTILL_LOSS
    shipped = load_config(distill.Config, CONFIGS / name).loss
    assert {k: getattr(shipped, k) for k in DISTILL_LOSS} == DISTILL_LOSS
    student = demo.Config().student
    assert {k: getattr(student, k) for k in DISTILL_LOSS} == DISTILL_LOSS
