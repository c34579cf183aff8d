"""Resumable stage bookkeeping shared by `tinywave demo` and `tinywave demo-assets`.

Each stage writes into its own folder and is recorded in ``<folder>/stages.json`` when it
completes, with the part of the configuration it depends on. Rerunning continues an
interrupted run (training stages also resume from their own checkpoints); when a key a
finished stage depends on has changed, that stage and every stage finished after it run
again (their folders are cleared first), and nothing before it does.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from tinywave.config import from_dict
from tinywave.files import atomic_write_text

log = logging.getLogger(__name__)

Depends = dict[str, Callable[[dict[str, Any]], Any]]


def stage_family(name: str) -> str:
    """``shards_student`` -> ``shards``, ``students:student-s0`` -> ``students``: the DEPENDS key of a stage."""
    return name.split(":", 1)[0].split("_", 1)[0]


class Stages:
    """Completed stages of one run folder (``stages.json``) and what each was computed from."""

    def __init__(self, out: Path, config: dict[str, Any], depends: Depends | None = None):
        self.path = out / "stages.json"
        self.config = config
        self.depends = depends or {}
        self.state: dict[str, Any] = {"config": config, "done": {}, "inputs": {}, "stale": []}
        if self.path.is_file():
            saved = json.loads(self.path.read_text())
            self.state = {"config": config, "done": saved.get("done", {}), "inputs": saved.get("inputs", {}),
                          "stale": saved.get("stale", [])}

    def inputs(self, name: str) -> Any:
        fn = self.depends.get(name) or self.depends.get(stage_family(name))
        return json.loads(json.dumps(fn(self.config))) if fn else None

    def _invalidate_from(self, name: str) -> list[str]:
        """Forget ``name`` and every stage finished after it; returns their names."""
        order = list(self.state["done"])
        dropped = order[order.index(name):]
        for n in dropped:
            self.state["done"].pop(n)
            self.state["inputs"].pop(n, None)
        self.state["stale"] = sorted(set(self.state["stale"]) | set(dropped))
        atomic_write_text(self.path, json.dumps(self.state, indent=1))
        return dropped

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None], clear: list[Path] | None = None) -> dict[str, Any]:
        wanted = self.inputs(name)
        if name in self.state["done"]:
            if name not in self.state["inputs"]:  # recorded before stages kept their inputs: adopt it as it is
                self.state["inputs"][name] = wanted
            if self.state["inputs"].get(name) == wanted:
                log.info("%s already done, skipping", name)
                return self.state["done"][name]
            dropped = self._invalidate_from(name)
            log.info("%s: its configuration changed; rerunning it and the %d stages after it (%s)", name, len(dropped) - 1,
                     ", ".join(dropped[1:]) or "none")
        if name in self.state["stale"]:  # outputs of an older configuration: never resume from them
            for path in clear or []:
                shutil.rmtree(path, ignore_errors=True)
        log.info("%s ...", name)
        t0 = time.monotonic()
        info = fn() or {}
        info["seconds"] = round(time.monotonic() - t0, 1)
        self.state["done"][name] = info
        self.state["inputs"][name] = wanted
        self.state["stale"] = [n for n in self.state["stale"] if n != name]
        atomic_write_text(self.path, json.dumps(self.state, indent=1))
        log.info("%s done in %.0f s", name, info["seconds"])
        return info

    @property
    def done(self) -> dict[str, Any]:
        return self.state["done"]


def call(module: str, **sections: Any) -> None:
    """Run a stage recipe with its own Config built from a nested dict (unknown keys are errors)."""
    recipe = importlib.import_module(f"tinywave.recipes.{module}")
    code = recipe.run(from_dict(recipe.Config, sections))
    if code:
        raise RuntimeError(f"stage `tinywave {module}` failed with exit code {code}; see the log above")
