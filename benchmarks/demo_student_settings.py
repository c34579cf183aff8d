"""Benchmark: which student settings the demo uses, measured at the demo's budget (one seed).

    .venv/bin/python benchmarks/demo_student_settings.py --demo demo_out --work bench_student_settings

On a finished (or corrected: ``models/teacher`` and ``tokens/`` present) `tinywave demo`
folder, trains one student per variant with `tinywave distill` at the demo's budget (300
steps of 4 x 512 tokens, bf16 where chosen, seed 0, the demo's loss), exports it and scores it
speech-only on the demo's own sSC / tSC pairs and held-out perplexity. Variants differ from
the demo's previous defaults (lr 1e-3, 40% of the target stories, uniform layer choice
[2, 5]) in one or two settings. Each variant's folder is kept, so a rerun only trains
what is missing. Writes ``benchmarks/results/demo_student_settings.{json,md}``.

The budget variants (``now``, ``now_s600``, ``now_s1200`` ...: the current defaults at other
step counts and batch sizes) were run with ``--variants now_s600`` / ``--variants now_s1200``
and ``--name``; their table is ``benchmarks/results/demo_student_budget.md``.

One seed: a single difference of 0.02-0.025 is one standard error at 400 pairs; the
demo's report (three seeds, paired tests) is where claims are made.
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
RESULTS = HERE / "results"

LOSS = {"ce_weight": 1.0, "kl_weight": 1.0, "temperature": 2.0, "hidden_weight": 1.0, "hidden_kind": "cosine", "attn_weight": 1.0}
# name -> (what changes, overrides of the distill config; "shards" names a student shard variant below)
VARIANTS: dict[str, tuple[str, dict]] = {
    "base": ("previous defaults: lr 1e-3, 40% of stories x 4 passes, layers [2, 5]", {}),
    "k05": ("layers [0, 5] (first and last)", {"student.keep_layers": [0, 5]}),
    "lr3": ("lr 3e-3", {"optim.lr": 3e-3}),
    "k05lr3": ("layers [0, 5], lr 3e-3", {"student.keep_layers": [0, 5], "optim.lr": 3e-3}),
    "lr6": ("lr 6e-3", {"optim.lr": 6e-3}),
    "lr3_T1": ("lr 3e-3, KL temperature 1", {"optim.lr": 3e-3, "loss.temperature": 1.0}),
    "lr3_full4": ("lr 3e-3, all stories x 4 passes", {"optim.lr": 3e-3, "shards": "full4"}),
    "lr3_full4t": ("lr 3e-3, all stories x 4, mixture 0.4/0.3/0.3 (more text)", {"optim.lr": 3e-3, "shards": "full4t"}),
    "lr3_full4_h3": ("lr 3e-3, all stories x 4, hidden and attention weights 3 (the new default)", {
        "optim.lr": 3e-3, "shards": "full4", "loss.hidden_weight": 3.0, "loss.attn_weight": 3.0}),
    "lr3_full4_h10": ("lr 3e-3, all stories x 4, hidden and attention weights 10", {
        "optim.lr": 3e-3, "shards": "full4", "loss.hidden_weight": 10.0, "loss.attn_weight": 10.0}),
    "lr2_full4_h3": ("lr 2e-3, all stories x 4, weights 3", {
        "optim.lr": 2e-3, "shards": "full4", "loss.hidden_weight": 3.0, "loss.attn_weight": 3.0}),
    "lr3_full4_h3_kl0": ("lr 3e-3, all stories x 4, weights 3, no KL", {
        "optim.lr": 3e-3, "shards": "full4", "loss.hidden_weight": 3.0, "loss.attn_weight": 3.0, "loss.kl_weight": 0.0}),
    "ce_lr1_full4": ("CE baseline (pruned init): lr 1e-3, all stories x 4", {"optim.lr": 1e-3, "shards": "full4", **{
        f"loss.{k}": 0.0 for k in ("kl_weight", "hidden_weight", "attn_weight")}}),
    "ce_lr3_full4": ("CE baseline (pruned init): lr 3e-3, all stories x 4 (the demo's schedule)", {"optim.lr": 3e-3, "shards": "full4", **{
        f"loss.{k}": 0.0 for k in ("kl_weight", "hidden_weight", "attn_weight")}}),
}
# The current demo defaults (lr 3e-3, every story x 4 passes, weights 3: the demo's own student shards) at other
# budgets: how far from converged the demo's 300 steps are, and whether more updates of fewer rows help.
NOW = {"optim.lr": 3e-3, "loss.hidden_weight": 3.0, "loss.attn_weight": 3.0}
CE = {f"loss.{k}": 0.0 for k in ("kl_weight", "hidden_weight", "attn_weight")}
BUDGETS: dict[str, tuple[str, dict]] = {
    "now": ("demo defaults: 300 steps x 4 rows", dict(NOW)),
    "now_s600": ("600 steps x 4 rows (2x the tokens)", {**NOW, "train.steps": 600}),
    "now_s1200": ("1200 steps x 4 rows (4x the tokens)", {**NOW, "train.steps": 1200}),
    "now_b2s600": ("600 steps x 2 rows (the same tokens, 2x the updates)", {**NOW, "train.steps": 600, "data.batch_size": 2}),
    "now_b2s1200": ("1200 steps x 2 rows (2x the tokens, 4x the updates)", {**NOW, "train.steps": 1200, "data.batch_size": 2}),
    "ce_now_s1200": ("CE baseline (pruned init), 1200 steps x 4 rows", {**NOW, **CE, "train.steps": 1200}),
}
VARIANTS.update(BUDGETS)
SHARDS = {"full4": {"speech": 0.6, "interleaved": 0.3, "text": 0.1}, "full4t": {"speech": 0.4, "interleaved": 0.3, "text": 0.3}}


def build_shards(demo: Path, work: Path, name: str) -> Path:
    from tinywave.demo.stages import call

    out = work / f"shards_{name}"
    if not (out / "index.json").exists():
        call("data_build", tokens=[str(demo / "tokens" / "train.jsonl")], tokenizer=str(demo / "models" / "teacher"), out=str(out),
             seq_len=512, mixture=SHARDS[name], passes=4, seed=0)
    return out


def run_variant(demo: Path, work: Path, name: str, precision: str) -> dict:
    """Train, export and score one variant (skipped when its results exist); its scores."""
    from tinywave.demo.stages import call

    folder = work / name
    if not (folder / "eval" / "results.json").exists():
        over = dict(VARIANTS[name][1])
        shards = build_shards(demo, work, over.pop("shards")) if "shards" in over else demo / "shards" / "student"
        cfg = {"teacher": {"dir": str(demo / "models" / "teacher")}, "student": {"n_layers": 2, "init": "pruned"}, "loss": dict(LOSS),
               "data": {"shards": str(shards), "batch_size": 4}, "optim": {"lr": 1e-3, "warmup_steps": 30},
               "train": {"out": str(folder / "run"), "steps": 300, "seed": 0, "precision": precision, "log_every": 10,
                         "ckpt_every": 1000, "resume": True, "parallel": "none"}}
        for key, value in over.items():
            section, field = key.split(".")
            cfg[section][field] = value
        if "train.steps" in over and "optim.warmup_steps" not in over:
            cfg["optim"]["warmup_steps"] = max(1, cfg["train"]["steps"] // 10)  # the demo's warm-up share
        t0 = time.monotonic()
        call("distill", **cfg)
        (folder / "train_seconds.txt").write_text(f"{time.monotonic() - t0:.1f}\n")
        call("export", checkpoint=str(folder / "run"), out=str(folder / "model"))
        call("evaluate", model=[f"{name}={folder / 'model'}"], bench=[str(demo / "benchmarks")], out=str(folder / "eval"),
             cross_modal=False, ppl=[f"heldout={demo / 'tokens' / 'heldout.jsonl'}"])
    r = json.loads((folder / "eval" / "results.json").read_text())
    seconds = folder / "train_seconds.txt"
    return {"tSC": r["results"]["tSC"][name], "sSC": r["results"]["sSC"][name],
            "ppl": r["perplexity"]["heldout"][name]["ppl_per_token"],
            "train_s": float(seconds.read_text()) if seconds.exists() else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a `tinywave demo` folder with models/teacher, tokens/, benchmarks/")
    parser.add_argument("--work", default="bench_student_settings", help="folder of the variants' runs (kept; reruns skip them)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--name", default="demo_student_settings", help="results file stem under benchmarks/results/")
    parser.add_argument("--teacher-results", default="", help="an eval results.json holding the teacher's scores on the same pairs")
    args = parser.parse_args()

    from conditions import conditions

    demo, work = Path(args.demo), Path(args.work)
    results = Path(args.teacher_results or demo / "eval" / "results.json")
    teacher = json.loads(results.read_text()) if results.exists() else None
    rows = {name: {"change": VARIANTS[name][0], **run_variant(demo, work, name, args.precision)} for name in args.variants}
    out = {"demo": str(demo), "budget": "300 steps x 4 x 512 tokens unless the variant says, seed 0, 400 pairs, speech-only scoring",
           "variants": rows,
           "teacher": {k: teacher["results"][k]["teacher"] for k in ("tSC", "sSC")} if teacher else None,
           "conditions": conditions(args.precision)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    lines = ["# Demo student settings at the demo's budget (one seed; +-0.02-0.025 standard error at 400 pairs)", "",
             f"Conditions: {out['conditions']}", "",
             "| variant | change | tSC | sSC | held-out ppl/token | train s |", "|---|---|---|---|---|---|"]
    if teacher:
        lines.append(f"| teacher | 6 layers, corrected | {out['teacher']['tSC']:.3f} | {out['teacher']['sSC']:.3f} | - | - |")
    lines += [f"| {n} | {r['change']} | {r['tSC']:.3f} | {r['sSC']:.3f} | {r['ppl']:.2f} | {r['train_s'] or 0:.0f} |" for n, r in rows.items()]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
