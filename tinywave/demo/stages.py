"""Resumable stage bookkeeping shared by `tinywave demo` and `tinywave demo-assets`.

Each stage writes into its own folders and is recorded in ``<folder>/stages.json`` when it
completes, with two things it was made from: the part of the configuration it depends on
(``Depends``) and the stages whose outputs it reads (``Upstream``), like a Makefile. A
finished stage is skipped unless its configuration changed or one of its upstream stages
finished after it (that is, was rerun); then its folders are cleared and it runs again, and
the same rule carries the change on to its own downstream stages, and to nothing else.
Changing ``student.steps`` in the demo reruns the students, their exports, evaluation and
samples; the corpus, the teacher's correction, its cache and the vocoder stay.

Stage names are ``family`` (``corpus``), ``family_part`` (``shards_student``) or
``family:instance`` (``students:student-s0``). Depends and Upstream are looked up by the full
name first, then by the family. Upstream entries are glob patterns over stage names in
which ``{instance}`` stands for the stage's own instance (``export:{instance}`` reads
``students:{instance}``). Interrupted stages resume from their own checkpoints.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

from tinywave.config import from_dict
from tinywave.files import atomic_write_text

log = logging.getLogger(__name__)

Depends = dict[str, Callable[[dict[str, Any]], Any]]
Upstream = dict[str, tuple[str, ...]]


def stage_family(name: str) -> str:
    """``shards_student`` -> ``shards``, ``students:student-s0`` -> ``students``: the DEPENDS key of a stage."""
    return name.split(":", 1)[0].split("_", 1)[0]


def stage_instance(name: str) -> str:
    """``students:student-s0`` -> ``student-s0``; ``""`` for a stage without an instance."""
    return name.split(":", 1)[1] if ":" in name else ""


def lookup(table: dict[str, Any], name: str) -> Any:
    return table[name] if name in table else table.get(stage_family(name))


class Stages:
    """Completed stages of one run folder (``stages.json``), what each was computed from and when."""

    def __init__(self, out: Path, config: dict[str, Any], depends: Depends, upstream: Upstream):
        self.path = out / "stages.json"
        self.config = config
        self.depends, self.upstream = depends, upstream
        self.state: dict[str, Any] = {"config": config, "done": {}, "inputs": {}, "order": {}, "stale": []}
        self._lock = threading.RLock()
        if self.path.is_file():
            saved = json.loads(self.path.read_text())
            self.state.update({k: saved.get(k, self.state[k]) for k in ("done", "inputs", "order", "stale")})

    def inputs(self, name: str) -> Any:
        fn = lookup(self.depends, name)
        return json.loads(json.dumps(fn(self.config))) if fn else None

    def prerequisites(self, name: str) -> list[str]:
        """The finished stages ``name`` reads (its Upstream patterns matched against ``done``)."""
        patterns = lookup(self.upstream, name)
        if patterns is None:
            raise KeyError(f"stage {name!r} has no Upstream entry; add the stages it reads (or () for none) to the recipe's UPSTREAM")
        wanted = [p.replace("{instance}", stage_instance(name)) for p in patterns]
        return [n for n in self.state["done"] if n != name and any(fnmatch.fnmatchcase(n, p) for p in wanted)]

    def why_outdated(self, name: str) -> str | None:
        """None if the finished stage ``name`` is up to date, else the reason it must run again."""
        if name not in self.state["inputs"]:  # recorded before stages kept their inputs: adopt it as it is
            self.state["inputs"][name] = self.inputs(name)
        if self.state["inputs"][name] != self.inputs(name):
            return "its configuration changed"
        mine = self.state["order"].get(name, 0)
        newer = [n for n in self.prerequisites(name) if self.state["order"].get(n, 0) > mine]
        return f"{', '.join(newer)} ran after it" if newer else None

    def _forget(self, name: str, clear: list[Path]) -> None:
        for path in clear:
            shutil.rmtree(path, ignore_errors=True)
        for key in ("done", "inputs", "order"):
            self.state[key].pop(name, None)
        self.state["stale"] = [n for n in self.state["stale"] if n != name]
        atomic_write_text(self.path, json.dumps(self.state, indent=1))

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None], clear: list[Path] | None = None) -> dict[str, Any]:
        """Run stage ``name`` unless it is done and up to date. Safe to call from several threads at once (the
        bookkeeping is locked; ``fn`` runs unlocked), for stages that do not read each other."""
        with self._lock:
            self.prerequisites(name)  # a stage must say what it reads before it first runs
            if name in self.state["done"]:
                reason = self.why_outdated(name)
                if reason is None:
                    log.info("%s already done, skipping", name)
                    return self.state["done"][name]
                log.info("%s: %s; clearing its output and running it again", name, reason)
                self._forget(name, clear or [])
            elif name in self.state["stale"]:  # outputs of an older configuration (stages.json of earlier versions)
                self._forget(name, clear or [])
        log.info("%s ...", name)
        t0, started = time.monotonic(), time.time()
        info = fn() or {}
        info["seconds"] = round(time.monotonic() - t0, 1)
        info["span"] = [round(started, 1), round(time.time(), 1)]  # epoch seconds: stages run at once overlap (busy_seconds)
        with self._lock:
            self.state["done"][name] = info
            self.state["inputs"][name] = self.inputs(name)
            self.state["order"][name] = 1 + max(self.state["order"].values(), default=0)
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


def busy_seconds(done: dict[str, dict[str, Any]]) -> float:
    """Wall seconds during which some stage ran: the union of the stages' spans (stages run at once count once);
    stages recorded without a span (older stages.json) add their own seconds."""
    spans = sorted(tuple(v["span"]) for v in done.values() if "span" in v)
    total, end = 0.0, float("-inf")
    for a, b in spans:
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total + sum(v.get("seconds", 0.0) for v in done.values() if "span" not in v)
