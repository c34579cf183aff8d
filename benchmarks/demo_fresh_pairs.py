"""Benchmark: do the demo's figures depend on its particular benchmark pairs?

    .venv/bin/python benchmarks/demo_fresh_pairs.py --demo demo_out --items 800

Builds the target-domain sSC / tSC benchmarks again with a different ``--items`` count
(same seed and speaking rate as the demo, so the first ``target.bench_items`` pairs are the
demo's own and the rest are pairs the demo never scored), scores the demo's exported
models on them, and reports each model's accuracy with a 95% bootstrap interval on the
*fresh* pairs only, next to the demo's figures on its own pairs. Writes
``benchmarks/results/demo_fresh_pairs.{json,md}`` (or ``--out`` and the Markdown beside it)
with the conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a finished `tinywave demo` folder")
    parser.add_argument("--items", type=int, default=800, help="pairs per benchmark to build (more than the demo's)")
    parser.add_argument("--models", nargs="+", default=["teacher", "student-s0", "baseline_pruned_ce-s0", "baseline_random_ce-s0"])
    parser.add_argument("--cross-modal", action="store_true", help="also score t2s / s2t (slower)")
    parser.add_argument("--out", default="", help="results JSON (default: benchmarks/results/demo_fresh_pairs.json)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from conditions import conditions
    from record import figure, write_results
    from tinywave.demo.stages import call
    from tinywave.eval.stats import bootstrap_mean_ci

    demo = Path(args.demo)
    cfg = json.loads((demo / "stages.json").read_text())["config"]
    target = cfg["target"]
    if args.items <= target["bench_items"]:
        raise SystemExit(f"--items {args.items} must exceed the demo's target.bench_items={target['bench_items']} to give fresh pairs")
    t0 = time.monotonic()
    bench = demo / f"benchmarks_{args.items}"
    call("corpus_benchmarks", out=str(bench), seed=cfg["seed"], items=args.items, rate=target["rate"], only=["storycloze"],
         voices=target["voices"], workers=cfg["workers"])
    call("evaluate", model=[f"{n}={demo / 'models' / n}" for n in args.models], bench=[str(bench)], out=str(bench / "eval"),
         cross_modal=args.cross_modal, cache=str(demo / "eval" / "cache"))
    report = json.loads((demo / "report.json").read_text())
    table: dict = {}
    for task in sorted(p.name for p in (bench / "eval" / "scores").iterdir()):
        own = {json.loads(line)["id"] for line in (demo / "eval" / "scores" / task / "teacher.jsonl").read_text().splitlines()}
        for name in args.models:
            rows = [json.loads(line) for line in (bench / "eval" / "scores" / task / f"{name}.jsonl").read_text().splitlines()]
            fresh = np.array([r["outcome"] for r in rows if r["id"] not in own])  # [fresh items]
            demo_name = name.rsplit("-s", 1)[0] if name != "teacher" else name
            table.setdefault(task, {})[name] = {
                "fresh_pairs": int(len(fresh)), "fresh": float(fresh.mean()), "fresh_ci": [float(v) for v in bootstrap_mean_ci(fresh)],
                "demo_pairs_mean_over_seeds": report["benchmarks"].get(task, {}).get(demo_name)}
    cond = conditions("fp32 scoring", torch.get_num_threads())
    figures = [figure(f"{task} {name}: accuracy on fresh pairs", r["fresh"], "", None,
                      f"95% CI [{r['fresh_ci'][0]:.3f}, {r['fresh_ci'][1]:.3f}], {r['fresh_pairs']} pairs")
               for task, rows in table.items() for name, r in rows.items()]
    path = write_results("demo_fresh_pairs", figures, cond, args.out, demo=str(demo), items=args.items, table=table,
                         wall_seconds=round(time.monotonic() - t0, 1))
    lines = [f"# The demo's models on fresh benchmark pairs (--items {args.items}; {cond})", "",
             "| benchmark | model | fresh pairs | accuracy on fresh pairs [95% CI] | demo's figure (its own pairs) |", "|---|---|---|---|---|"]
    for task, rows in table.items():
        for name, r in rows.items():
            d = r["demo_pairs_mean_over_seeds"]
            lines.append(f"| {task} | {name} | {r['fresh_pairs']} | {r['fresh']:.3f} [{r['fresh_ci'][0]:.3f}, {r['fresh_ci'][1]:.3f}] | "
                         + (f"{d:.3f}" if d is not None else "-") + " |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
