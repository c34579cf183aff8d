"""Resumable stage bookkeeping shared by `tinywave demo` and `tinywave demo-assets`.

Each stage writes into its own folder and is recorded in ``<folder>/stages.json`` when it
completes, so an interrupted run continues where it stopped (training stages also
resume from their own checkpoints).
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from tinywave.config import from_dict
from tinywave.files import atomic_write_text

log = logging.getLogger(__name__)


class Stages:
    """Completed stages of one run folder (``stages.json``), refusing a changed configuration."""

    def __init__(self, out: Path, config: dict[str, Any], fixed: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.path = out / "stages.json"
        self.state: dict[str, Any] = {"config": config, "done": {}}
        fixed = fixed or (lambda c: c)
        if self.path.is_file():
            saved = json.loads(self.path.read_text())
            if fixed(saved.get("config", {})) != fixed(config):
                raise ValueError(f"{out} holds a run made with another configuration of the stages already done; rerun with "
                                 f"the same options, or pass a new --out (or delete {out}) to start over")
            self.state = {**saved, "config": config}

    def forget(self, names: list[str]) -> None:
        """Mark ``names`` as not done (their inputs changed): they run again."""
        for name in names:
            self.state["done"].pop(name, None)

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        if name in self.state["done"]:
            log.info("%s already done, skipping", name)
            return self.state["done"][name]
        log.info("%s ...", name)
        t0 = time.monotonic()
        info = fn() or {}
        info["seconds"] = round(time.monotonic() - t0, 1)
        self.state["done"][name] = info
        atomic_write_text(self.path, json.dumps(self.state, indent=1))
        log.info("%s done in %.0f s", name, info["seconds"])
        return info


def call(module: str, **sections: Any) -> None:
    """Run a stage recipe with its own Config built from a nested dict (unknown keys are errors)."""
    recipe = importlib.import_module(f"tinywave.recipes.{module}")
    code = recipe.run(from_dict(recipe.Config, sections))
    if code:
        raise RuntimeError(f"stage `tinywave {module}` failed with exit code {code}; see the log above")
