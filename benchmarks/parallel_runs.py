"""Benchmark: the demo's student runs one at a time on every core vs two at once on half the cores each.

    .venv/bin/python benchmarks/parallel_runs.py --demo demo_out --steps 60

On a `tinywave demo` folder past its teacher cache, trains the demo's distilled student (from
the cache) and its pruned-init CE baseline for ``--steps`` steps each, exactly as the demo
does (``_student_run`` of ``tinywave/recipes/demo.py``, each in a child process):

* ``sequential``: one run after the other, each with every core's thread;
* ``parallel``: both at once, each with ``cores // 2`` threads (``student.parallel_runs=2``).

The figure is the throughput ratio (steps of both runs per wall second, parallel over
sequential), from the runs' own step timings after ``--skip`` warm-up steps. Writes
``benchmarks/results/parallel_runs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from conditions import conditions  # noqa: E402
from demo_student_efficiency import demo_config  # noqa: E402
from record import figure, write_results  # noqa: E402
from tinywave.recipes import demo as demo_recipe  # noqa: E402

RUNS = ("student", "baseline_pruned_ce")


def seconds_per_step(run: Path, skip: int) -> float:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "train_seconds" in r and r["step"] >= skip]
    return (rows[-1]["train_seconds"] - rows[0]["train_seconds"]) / (rows[-1]["step"] - rows[0]["step"])


def train(demo: Path, work: Path, name: str, steps: int, threads: int) -> None:
    cfg = demo_config(demo, [f"student.steps={steps}"])
    demo_recipe._student_run(cfg, work, name, 0, demo / "shards" / "student", demo / "models" / "teacher", precision="fp32",
                             cache=demo / "teacher_cache", threads=threads)


def measure(demo: Path, steps: int, skip: int, cores: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("sequential", "parallel"):
            work = Path(tmp) / mode
            t0 = time.monotonic()
            if mode == "sequential":
                for name in RUNS:
                    train(demo, work, name, steps, cores)
            else:
                jobs = [threading.Thread(target=train, args=(demo, work, name, steps, max(1, cores // 2))) for name in RUNS]
                for j in jobs:
                    j.start()
                for j in jobs:
                    j.join()
            per_step = {name: seconds_per_step(work / demo_recipe.run_name(name, 0), skip) for name in RUNS}
            # steps of both runs per second: sequential runs add their times, parallel ones share the wall clock
            rate = 2 / sum(per_step.values()) if mode == "sequential" else sum(1 / s for s in per_step.values())
            out[mode] = {"seconds_per_step": per_step, "steps_per_second": rate, "wall_s": time.monotonic() - t0}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", default="demo_out", help="a `tinywave demo` folder past its teacher cache stage")
    ap.add_argument("--steps", type=int, default=60, help="steps of each run")
    ap.add_argument("--skip", type=int, default=10, help="warm-up steps left out of the timing")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/parallel_runs.json)")
    a = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    load = [round(v, 2) for v in os.getloadavg()]
    r = measure(Path(a.demo), a.steps, a.skip, cores)
    ratio = r["parallel"]["steps_per_second"] / r["sequential"]["steps_per_second"]
    for mode, m in r.items():
        print(f"{mode}: " + ", ".join(f"{n} {s:.3f} s/step" for n, s in m["seconds_per_step"].items())
              + f"; {m['steps_per_second']:.2f} steps/s of both runs")
    print(f"parallel / sequential throughput: {ratio:.2f}x")
    figures = [figure("demo student runs, two at once / one at a time, steps per second", round(ratio, 3), "x",
                      note=f"distilled student (teacher cache) and pruned-init CE baseline, {a.steps} steps each, fp32")]
    figures += [figure(f"{mode}, {name}, seconds per step", round(s, 4), "s") for mode, m in r.items()
                for name, s in m["seconds_per_step"].items()]
    write_results("parallel_runs", figures, conditions("fp32", threads=cores, load_average_at_start=load), a.out or None, rows=r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
