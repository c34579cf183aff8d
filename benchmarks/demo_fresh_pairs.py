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
import re
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


SEEDED = re.compile(r"-s\d+$")  # evaluation names of one seed's run: student-s0, baseline_pruned_ce-s2, ...
RETENTION_TARGET = {"sSC": (">=", 0.93), "tSC": (">=", 0.93)}  # the demo's target, on speech-only scoring
GROUPS = ("teacher", "student", "baseline_pruned_ce", "baseline_random_ce")


def scored(eval_dir: Path, models: list[str], cross_modal: bool) -> bool:
    """True when an earlier run of this script left scores of every model (and the cross-modal tasks, if asked)."""
    results = eval_dir / "results.json"
    if not results.is_file() or not set(models) <= set(json.loads(results.read_text()).get("models", {})):
        return False
    tasks = [p.name for p in (eval_dir / "scores").iterdir()] if (eval_dir / "scores").is_dir() else []
    return bool(tasks) and (not cross_modal or any(t.endswith("-t2s") for t in tasks))


def own_ids(demo: Path, task: str) -> set[str]:
    """The ids of the pairs the demo itself scored on ``task``."""
    return {json.loads(line)["id"] for line in (demo / "eval" / "scores" / task / "teacher.jsonl").read_text().splitlines()}


def fresh_outcomes(scores: Path, own: set[str]) -> np.ndarray:
    """Outcomes (1 correct, 0 not) of one model's scores file on the pairs the demo never scored, in id order: [items]."""
    rows = sorted((json.loads(line) for line in scores.read_text().splitlines()), key=lambda r: r["id"])
    return np.array([r["outcome"] for r in rows if r["id"] not in own], dtype=np.float64)


def pool_seeds(task_dir: Path, models: list[str], own: set[str]) -> dict:
    """Each model group's fresh-pair outcomes stacked over its seeds [seeds, items]: mean, 95% CI, the student's
    retention of the teacher and its paired bootstrap p against each baseline."""
    from tinywave.eval.stats import bootstrap_mean_ci, paired_bootstrap_p, percentile_interval, resampled_sums

    groups: dict[str, list[str]] = {}
    for name in models:
        groups.setdefault(SEEDED.sub("", name), []).append(name)
    arr = {g: np.stack([fresh_outcomes(task_dir / f"{n}.jsonl", own) for n in names]) for g, names in groups.items()}
    out = {"mean": {g: float(a.mean()) for g, a in arr.items()}, "ci": {g: list(bootstrap_mean_ci(a)) for g, a in arr.items()},
           "seeds": len(groups.get("student", [])), "fresh_pairs": int(arr["teacher"].shape[1]), "p": {}}
    out["retention"] = out["mean"]["student"] / out["mean"]["teacher"]
    sums = resampled_sums(np.stack([arr["student"].mean(0), arr["teacher"].mean(0)]), 2000, 0)  # [n_boot, 2]: same items for both
    out["retention_ci"] = list(percentile_interval(sums[:, 0] / sums[:, 1], 0.95))
    for base in GROUPS[2:]:
        if base in arr:
            out["p"][base] = float(paired_bootstrap_p(arr["student"], arr[base]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a finished `tinywave demo` folder")
    parser.add_argument("--items", type=int, default=800, help="pairs per benchmark to build (more than the demo's)")
    parser.add_argument("--models", nargs="+", default=[],
                        help="evaluation names (default: the teacher and every seed of the student and both baselines)")
    parser.add_argument("--rescore", action="store_true", help="build and score again even where an earlier run left its files")
    parser.add_argument("--cross-modal", action="store_true", help="also score t2s / s2t (slower)")
    parser.add_argument("--out", default="", help="results JSON (default: benchmarks/results/demo_fresh_pairs.json)")
    args = parser.parse_args()

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
    models = args.models or ["teacher", *sorted(p.name for p in (demo / "models").iterdir() if SEEDED.search(p.name))]
    t0 = time.monotonic()
    bench = demo / f"benchmarks_{args.items}"
    if args.rescore or not (bench / "benchmarks.json").is_file():
        call("corpus_benchmarks", out=str(bench), seed=cfg["seed"], items=args.items, rate=target["rate"], only=["storycloze"],
             voices=target["voices"], workers=cfg["workers"])
    if args.rescore or not scored(bench / "eval", models, args.cross_modal):
        call("evaluate", model=[f"{n}={demo / 'models' / n}" for n in models], bench=[str(bench)], out=str(bench / "eval"),
             cross_modal=args.cross_modal, cache=str(demo / "eval" / "cache"))
    report = json.loads((demo / "report.json").read_text())
    table: dict = {}
    own = {task: own_ids(demo, task) for task in sorted(p.name for p in (bench / "eval" / "scores").iterdir())}
    for task in own:
        for name in models:
            fresh = fresh_outcomes(bench / "eval" / "scores" / task / f"{name}.jsonl", own[task])  # [fresh items]
            demo_name = name.rsplit("-s", 1)[0] if name != "teacher" else name
            table.setdefault(task, {})[name] = {
                "fresh_pairs": int(len(fresh)), "fresh": float(fresh.mean()), "fresh_ci": [float(v) for v in bootstrap_mean_ci(fresh)],
                "demo_pairs_mean_over_seeds": report["benchmarks"].get(task, {}).get(demo_name)}
    pooled = {task: pool_seeds(bench / "eval" / "scores" / task, models, own[task]) for task in own}
    cond = conditions("fp32 scoring", torch.get_num_threads())
    figures = [figure(f"{task} {name}: accuracy on fresh pairs", r["fresh"], "", None,
                      f"95% CI [{r['fresh_ci'][0]:.3f}, {r['fresh_ci'][1]:.3f}], {r['fresh_pairs']} pairs")
               for task, rows in table.items() for name, r in rows.items()]
    figures += [figure(f"{task} student: retention of the teacher on fresh pairs", r["retention"], "", RETENTION_TARGET.get(task),
                       f"95% CI [{r['retention_ci'][0]:.3f}, {r['retention_ci'][1]:.3f}], pooled over {r['seeds']} seeds, "
                       f"{r['fresh_pairs']} pairs") for task, r in pooled.items()]
    path = write_results("demo_fresh_pairs", figures, cond, args.out, demo=str(demo), items=args.items, table=table,
                         pooled=pooled, wall_seconds=round(time.monotonic() - t0, 1))
    lines = [f"# The demo's models on fresh benchmark pairs (--items {args.items}; {cond})", "",
             "| benchmark | model | fresh pairs | accuracy on fresh pairs [95% CI] | demo's figure (its own pairs) |", "|---|---|---|---|---|"]
    for task, rows in table.items():
        for name, r in rows.items():
            d = r["demo_pairs_mean_over_seeds"]
            lines.append(f"| {task} | {name} | {r['fresh_pairs']} | {r['fresh']:.3f} [{r['fresh_ci'][0]:.3f}, {r['fresh_ci'][1]:.3f}] | "
                         + (f"{d:.3f}" if d is not None else "-") + " |")
    lines += ["", "Pooled over seeds, fresh pairs only: mean over seeds [95% CI, items resampled], the student's retention of the "
              "teacher [95% CI, the same items resampled for both], and paired bootstrap p of the student against each baseline (same pairs, seeds averaged per pair).", "",
              "| benchmark | teacher | student | pruned-init CE | random-init CE | retention | p vs pruned | p vs random |",
              "|---|---|---|---|---|---|---|---|"]
    for task, r in pooled.items():
        cells = [f"{r['mean'][g]:.3f} [{r['ci'][g][0]:.3f}, {r['ci'][g][1]:.3f}]" if g in r["mean"] else "-" for g in GROUPS]
        p = [f"{r['p'][b]:.4f}" if b in r["p"] else "-" for b in GROUPS[2:]]
        lines.append(f"| {task} | {' | '.join(cells)} | {r['retention']:.3f} [{r['retention_ci'][0]:.3f}, {r['retention_ci'][1]:.3f}] | {' | '.join(p)} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
