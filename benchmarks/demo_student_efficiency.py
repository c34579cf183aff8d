"""Benchmark: what buys the demo's student more quality per CPU second (seeds, paired tests).

    .venv/bin/python benchmarks/demo_student_efficiency.py --demo demo_out --work bench_student_eff \
        --variants demo b2s1200 --seeds 0 1 --threads 1

On a `tinywave demo` folder that has reached its teacher cache (``models/teacher``,
``tokens/``, ``benchmarks/``, ``shards/student``, ``teacher_cache``), trains students exactly
as the demo does (``_student_run`` of ``tinywave/recipes/demo.py``, the demo's own config from
``stages.json``) with a few keys changed, exports and scores each speech-only on the demo's
tSC / sSC pairs and held-out perplexity, and compares every variant with ``demo`` on the same
pairs (paired bootstrap over pairs, seeds pooled). Variants whose data differ (mixture) get
their own shards and their own exact teacher cache. Runs are kept in ``--work``, so a rerun
only trains what is missing; run two processes with ``--threads 1`` on a 2-core machine.

Writes ``benchmarks/results/<--name>.{json,md}`` with the conditions, train and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
RESULTS = HERE / "results"

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from conditions import conditions  # noqa: E402
from tinywave.config import load_config  # noqa: E402
from tinywave.demo.stages import call  # noqa: E402
from tinywave.eval.stats import bootstrap_mean_ci, load_outcomes, paired_bootstrap_p  # noqa: E402
from tinywave.recipes import demo as demo_recipe  # noqa: E402

# name -> (what changes, which model the demo would train, demo-config overrides)
VARIANTS: dict[str, tuple[str, str, list[str]]] = {
    "demo": ("the demo's student: 600 steps x 4 rows", "student", []),
    "b2s1200": ("1200 steps x 2 rows (same tokens, 2x the updates)", "student", ["student.steps=1200", "student.batch_size=2"]),
    "mix80": ("mixture 0.8 / 0.15 / 0.05 speech / interleaved / text", "student",
              ["mixture.speech=0.8", "mixture.interleaved=0.15", "mixture.text=0.05"]),
    "lr2": ("lr 2e-3", "student", ["student.lr=0.002"]),
    "h10": ("hidden and attention weights 10", "student", ["student.hidden_weight=10", "student.attn_weight=10"]),
    "h1": ("hidden and attention weights 1", "student", ["student.hidden_weight=1", "student.attn_weight=1"]),
    "T1": ("KL temperature 1 (the demo's is 2)", "student", ["student.temperature=1"]),
    "noattn": ("no attention term (hidden weight 3, attention 0)", "student", ["student.attn_weight=0"]),
    "nohid": ("no hidden-state term (attention weight 3, hidden 0)", "student", ["student.hidden_weight=0"]),
    "klonly": ("CE + KL only (hidden and attention weights 0)", "student", ["student.hidden_weight=0", "student.attn_weight=0"]),
    "kl3": ("KL weight 3 (the demo's is 1): the teacher's soft targets outweigh the ground truth 3:1", "student", ["student.kl_weight=3"]),
    "T4": ("KL temperature 4 (the demo's is 2)", "student", ["student.temperature=4"]),
    "s900": ("900 steps x 4 rows (1.5x the tokens)", "student", ["student.steps=900"]),
    "k35": ("keep teacher layers [3, 5] (the demo keeps [2, 5])", "student", ["student.keep_layers=[3,5]"]),
    "k15": ("keep teacher layers [1, 5]", "student", ["student.keep_layers=[1,5]"]),
    "n3": ("3 layers of 6 (uniform: [1, 3, 5]): half the teacher, beyond the method's third -- a capacity check", "student",
           ["student.n_layers=3"]),
    "ce_demo": ("CE baseline, pruned init, as in the demo", "baseline_pruned_ce", []),
    "ce_b2s1200": ("CE baseline, pruned init, 1200 steps x 2 rows", "baseline_pruned_ce", ["student.steps=1200", "student.batch_size=2"]),
}
DATA_KEYS = ("mixture.", "student.passes", "seq_len", "packing")
LAYER_KEYS = ("student.keep_layers", "student.n_layers", "student.temperature")  # each needs its own teacher cache


def demo_config(demo: Path, overrides: list[str]) -> demo_recipe.Config:
    """The demo's own config (its stages.json) with ``overrides`` applied."""
    base = json.loads((demo / "stages.json").read_text(encoding="utf-8"))["config"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(base, f)
    try:
        return load_config(demo_recipe.Config, f.name, overrides)
    finally:
        os.unlink(f.name)


def data_for(demo: Path, work: Path, name: str, cfg: demo_recipe.Config, overrides: list[str]) -> tuple[Path, Path]:
    """(shards, exact teacher cache) for a variant: the demo's own unless it changes the data (or the kept layers: a cache
    of their hidden states, queries and keys over the demo's shards)."""
    new_data, new_layers = any(o.startswith(DATA_KEYS) for o in overrides), any(o.startswith(LAYER_KEYS) for o in overrides)
    if not new_data and not new_layers:
        return demo / "shards" / "student", demo / "teacher_cache"
    shards = work / f"shards_{name}" if new_data else demo / "shards" / "student"
    cache = work / f"cache_{name}"
    if new_data and not (shards / "index.json").exists():
        call("data_build", tokens=[str(demo / "tokens" / "subset.jsonl")], tokenizer=str(demo / "models" / "teacher"), out=str(shards),
             seq_len=cfg.seq_len, mixture=cfg.mixture, passes=cfg.student.passes, seed=cfg.seed, packing=cfg.packing)
    if not (cache / "index.json").exists():
        demo_recipe._teacher_cache(cfg, demo / "models" / "teacher", shards, cache)
    return shards, cache


def run_variant(demo: Path, work: Path, name: str, seed: int, precision: str = "fp32") -> Path:
    """Train, export and score one (variant, seed) unless its scores exist; its eval folder."""
    _, model, overrides = VARIANTS[name]
    folder = work / f"{name}-s{seed}"
    if (folder / "eval" / "results.json").exists():
        return folder / "eval"
    cfg = demo_config(demo, overrides)
    shards, cache = data_for(demo, work, name, cfg, overrides)
    t0, c0 = time.monotonic(), time.process_time()
    demo_recipe._student_run(cfg, folder, model, seed, shards, demo / "models" / "teacher", precision=precision, cache=cache)
    (folder / "train_seconds.json").write_text(json.dumps({"wall": time.monotonic() - t0, "cpu": time.process_time() - c0}))
    run = folder / demo_recipe.run_name(model, seed)
    call("export", checkpoint=str(run), out=str(folder / "model"))
    call("evaluate", model=[f"m={folder / 'model'}"], bench=[str(demo / "benchmarks")], out=str(folder / "eval"),
         cross_modal=False, ppl=[f"heldout={demo / 'tokens' / 'heldout.jsonl'}"])
    return folder / "eval"


def teacher_eval(demo: Path, work: Path) -> Path:
    out = work / "teacher" / "eval"
    if not (out / "results.json").exists():
        call("evaluate", model=[f"m={demo / 'models' / 'teacher'}"], bench=[str(demo / "benchmarks")], out=str(out),
             cross_modal=False, ppl=[f"heldout={demo / 'tokens' / 'heldout.jsonl'}"])
    return out


def outcomes(evals: list[Path], bench: str) -> np.ndarray:
    """[seeds, pairs] outcomes of one variant (1 right, 0 wrong, 0.5 tie)."""
    return np.concatenate([load_outcomes(e / "scores", bench, ["m"]) for e in evals])


def summarize(work: Path, names: list[str], seeds: list[int], teacher: Path) -> dict:
    rows = {}
    t = {b: float(outcomes([teacher], b).mean()) for b in ("tSC", "sSC")}
    ref = {b: outcomes([work / f"demo-s{s}" / "eval" for s in seeds], b) for b in ("tSC", "sSC")} if "demo" in names else None
    for name in names:
        evals = [work / f"{name}-s{s}" / "eval" for s in seeds]
        row = {"change": VARIANTS[name][0], "model": VARIANTS[name][1], "seeds": seeds}
        for b in ("tSC", "sSC"):
            o = outcomes(evals, b)
            per_seed = o.mean(axis=1)
            row[b] = {"mean": float(o.mean()), "std_over_seeds": float(per_seed.std(ddof=1)) if len(seeds) > 1 else None,
                      "ci95": list(bootstrap_mean_ci(o)), "retention": float(o.mean()) / t[b]}
            if ref is not None and name != "demo":
                row[b]["delta_vs_demo"] = float(o.mean() - ref[b].mean())
                row[b]["p_vs_demo"] = float(paired_bootstrap_p(o, ref[b]))
        ppl = [json.loads((e / "results.json").read_text())["perplexity"]["heldout"]["m"]["ppl_per_token"] for e in evals]
        secs = [json.loads((work / f"{name}-s{s}" / "train_seconds.json").read_text()) for s in seeds]
        row["ppl"] = float(np.mean(ppl))
        row["train_wall_s"] = float(np.mean([x["wall"] for x in secs]))
        row["train_cpu_s"] = float(np.mean([x["cpu"] for x in secs]))
        rows[name] = row
    return {"teacher": t, "variants": rows}


def markdown(out: dict) -> str:
    t = out["teacher"]
    lines = [f"# Demo student: quality per CPU second ({len(out['seeds'])} seed(s), 400 pairs, speech-only scoring)", "",
             f"Conditions: {out['conditions']}", "",
             f"Teacher (corrected, 6 layers): tSC {t['tSC']:.3f}, sSC {t['sSC']:.3f}. Brackets: 95% bootstrap intervals over pairs, "
             "seeds pooled; p: paired bootstrap against `demo` on the same pairs. One standard error is about 0.02 per seed.", "",
             "| variant | change | tSC [95%] (/ teacher) | sSC [95%] (/ teacher) | Δ tSC, p | Δ sSC, p | held-out ppl | train s (CPU s) |",
             "|---|---|---|---|---|---|---|---|"]
    def cell(r: dict, b: str) -> str:
        return f"{r[b]['mean']:.3f} [{r[b]['ci95'][0]:.3f}, {r[b]['ci95'][1]:.3f}] ({r[b]['retention']:.3f})"

    def delta(r: dict, b: str) -> str:
        return f"{r[b]['delta_vs_demo']:+.3f}, p={r[b]['p_vs_demo']:.3f}" if "delta_vs_demo" in r[b] else "-"

    for name, r in out["variants"].items():
        lines.append(f"| {name} | {r['change']} | {cell(r, 'tSC')} | {cell(r, 'sSC')} | {delta(r, 'tSC')} | {delta(r, 'sSC')} "
                     f"| {r['ppl']:.2f} | {r['train_wall_s']:.0f} ({r['train_cpu_s']:.0f}) |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a `tinywave demo` folder past its teacher cache stage")
    parser.add_argument("--work", default="bench_student_eff", help="folder of the runs (kept; reruns skip finished ones)")
    parser.add_argument("--variants", nargs="+", default=["demo", "b2s1200"], choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="training precision of every run (compare variants only within one precision)")
    parser.add_argument("--train-only", action="store_true", help="train and score, write no results file (for parallel streams)")
    parser.add_argument("--name", default="demo_student_efficiency", help="results file stem under benchmarks/results/")
    args = parser.parse_args()

    import torch  # lazy: after the thread count is known

    if args.threads:
        torch.set_num_threads(args.threads)
    demo, work = Path(args.demo), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name in args.variants:
            run_variant(demo, work, name, seed, args.precision)
    if args.train_only:
        return 0
    out = {"demo": str(demo), "seeds": args.seeds, **summarize(work, args.variants, args.seeds, teacher_eval(demo, work)),
           "conditions": conditions(args.precision)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    text = markdown(out)
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
