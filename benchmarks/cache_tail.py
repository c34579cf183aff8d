"""Benchmark: distilling from a top-k teacher cache, with the old (uniform) and new (modality) tail, vs online.

    .venv/bin/python benchmarks/cache_tail.py --demo demo_out --work bench_cache_tail --top-k 32

On a finished `tinywave demo` folder (its corrected teacher, student shards, benchmarks and
held-out tokens), trains one student per variant at the demo's budget (its `student.*`
settings from ``stages.json``, seed 0) and scores all of them on the same pairs:

* ``online_ha``: the teacher run online, hidden + attention terms (the demo's student);
* ``online_h``: online, hidden term only (what a cache can serve: it stores no attention maps);
* ``cache_uniform``: top-k cache, the rest mass spread over every other id (the old tail);
* ``cache_modality``: top-k cache, the rest mass over the top-1 id's modality only (the new default).

Reports accuracy with 95% bootstrap intervals, held-out perplexity with its interval, paired
bootstrap p-values of each cache variant against ``online_h``, and training seconds. Writes
``benchmarks/results/cache_tail.{json,md}`` (``--name``). Variant folders are kept; reruns
skip them. ``--seeds 0 1 2 --variants online_ha online_h --name attention_term`` repeats the
online pair over seeds (the attention term's effect, pooled paired test).
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

# name -> (cache tail or None for the online teacher, attention term on)
VARIANTS: dict[str, tuple[str | None, bool]] = {
    "online_ha": (None, True), "online_h": (None, False), "cache_uniform": ("uniform", False), "cache_modality": ("modality", False),
}


def build_cache(demo: Path, work: Path, top_k: int, temperature: float, hidden: list[int]) -> tuple[Path, float]:
    from tinywave.demo.stages import call

    out = work / f"cache_top{top_k}"
    t0 = time.monotonic()
    if not (out / "index.json").exists():
        call("teacher_cache", teacher=str(demo / "models" / "teacher"), shards=str(demo / "shards" / "student"), out=str(out),
             top_k=top_k, temperatures=[temperature], hidden_layers=hidden, logit_dtype="fp32")
    return out, time.monotonic() - t0


def run_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}-s{seed}"  # seed 0 keeps the folder names of single-seed runs


def train(demo: Path, work: Path, name: str, seed: int, s: dict, cache: Path, precision: str) -> float:
    """Train and export one variant at one seed (skipped when exported); its training seconds."""
    from tinywave.demo.stages import call

    folder = work / run_name(name, seed)
    if (folder / "model" / "config.json").exists():
        return float((folder / "train_seconds.txt").read_text())
    tail, attention = VARIANTS[name]
    loss = {"ce_weight": 1.0, "kl_weight": s["kl_weight"], "temperature": s["temperature"], "hidden_weight": s["hidden_weight"],
            "hidden_kind": s["hidden_kind"], "attn_weight": s["attn_weight"] if attention else 0.0}
    teacher = {"dir": str(demo / "models" / "teacher")}
    if tail:
        teacher |= {"cache": str(cache), "cache_tail": tail}
    t0 = time.monotonic()
    call("distill", teacher=teacher, student={"n_layers": s["n_layers"], "init": "pruned"}, loss=loss,
         data={"shards": str(demo / "shards" / "student"), "batch_size": s["batch_size"]},
         optim={"lr": s["lr"], "warmup_steps": max(1, s["steps"] // 10)},
         train={"out": str(folder / "run"), "steps": s["steps"], "seed": seed, "precision": precision, "log_every": 10,
                "ckpt_every": 10_000, "resume": True, "parallel": "none"})
    seconds = time.monotonic() - t0
    (folder / "train_seconds.txt").write_text(f"{seconds:.1f}\n")
    call("export", checkpoint=str(folder / "run"), out=str(folder / "model"))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a finished `tinywave demo` folder")
    parser.add_argument("--work", default="bench_cache_tail", help="folder of the cache and the variants' runs (kept)")
    parser.add_argument("--top-k", type=int, default=32, help="logits kept per position in the cache")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--name", default="cache_tail", help="stem of the results files under benchmarks/results/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (statistics pool over them)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="online_h is always included")
    args = parser.parse_args()

    import numpy as np

    from conditions import conditions
    from tinywave.demo.stages import call
    from tinywave.eval.scores import load_outcomes, load_ppl_rows
    from tinywave.eval.stats import bootstrap_mean_ci, corpus_ppl, paired_bootstrap_p, paired_ppl_p, ppl_ci
    from tinywave.models.student import uniform_layer_map

    demo, work = Path(args.demo), Path(args.work)
    s = json.loads((demo / "stages.json").read_text())["config"]["student"]
    n_teacher = json.loads((demo / "models" / "teacher" / "config.json").read_text())["num_hidden_layers"]
    hidden = uniform_layer_map(n_teacher, s["n_layers"])
    cache, cache_seconds = build_cache(demo, work, args.top_k, s["temperature"], hidden)
    names = ["online_h", *[n for n in args.variants if n != "online_h"]]
    seconds = {n: [train(demo, work, n, seed, s, cache, args.precision) for seed in args.seeds] for n in names}
    runs = [run_name(n, seed) for n in names for seed in args.seeds]
    call("evaluate", model=[f"{r}={work / r / 'model'}" for r in runs], bench=[str(demo / "benchmarks")], out=str(work / "eval"),
         cross_modal=False, ppl=[f"heldout={demo / 'tokens' / 'heldout.jsonl'}"])
    scores = work / "eval" / "scores"
    k = len(args.seeds)
    table: dict = {}
    for task in ("tSC", "sSC"):
        outcomes = load_outcomes(scores, task, runs).reshape(len(names), k, -1)  # [variants, seeds, pairs]
        for i, n in enumerate(names):
            row = {"acc": float(outcomes[i].mean()), "ci": [float(v) for v in bootstrap_mean_ci(outcomes[i])],
                   "per_seed": [float(v) for v in outcomes[i].mean(1)]}
            if n != "online_h":
                row["p_vs_online_h"] = paired_bootstrap_p(outcomes[i], outcomes[0])
            table.setdefault(n, {})[task] = row
    nll, tok = (a.reshape(len(names), k, -1) for a in load_ppl_rows(scores, "heldout", runs))  # [variants, seeds, utterances]
    for i, n in enumerate(names):
        table[n]["ppl"] = {"value": corpus_ppl(nll[i], tok[i]), "ci": [float(v) for v in ppl_ci(nll[i], tok[i])]}
        if n != "online_h":
            table[n]["ppl"]["p_vs_online_h"] = paired_ppl_p(nll[i], tok[i], nll[0], tok[0])
        table[n]["train_seconds"] = round(float(np.mean(seconds[n])), 1)
    out = {"demo": str(demo), "top_k": args.top_k, "seeds": args.seeds, "cache_build_seconds": round(cache_seconds, 1), "student": s, "table": table,
           "conditions": conditions(args.precision)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    fmt = lambda r: f"{r['acc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" + (f" p={r['p_vs_online_h']:.3f}" if "p_vs_online_h" in r else "")  # noqa: E731
    lines = [f"# Students from a top-{args.top_k} teacher cache vs the online teacher (seeds {args.seeds}, the demo's student settings)", "",
             f"Conditions: {out['conditions']}; cache built in {out['cache_build_seconds']} s (0 if it existed).", "",
             "Accuracy and ppl pooled over the seeds; p: paired bootstrap against `online_h` (same pairs / utterances, "
             "seeds pooled).", "",
             "| variant | tSC [95% CI] | sSC [95% CI] | held-out ppl [95% CI] | train s |", "|---|---|---|---|---|"]
    for n, r in table.items():
        p = r["ppl"]
        lines.append(f"| {n} | {fmt(r['tSC'])} | {fmt(r['sSC'])} | {p['value']:.2f} [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]"
                     + (f" p={p['p_vs_online_h']:.3f}" if "p_vs_online_h" in p else "") + f" | {r['train_seconds']} |")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
