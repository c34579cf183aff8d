"""Benchmark: which distillation loss terms help, measured with seeds, intervals and paired tests.

    .venv/bin/python benchmarks/distill_loss_ablation.py --demo demo_out              # every variant, 3 seeds
    .venv/bin/python benchmarks/distill_loss_ablation.py --demo demo_out --seeds 0 \
        --variants ce kl kl_h1_a1 --steps 200                                          # a smaller run

Reuses a finished `tinywave demo` folder: its corrected teacher (``models/teacher``), the
students' shards (``shards/student``), the target-domain benchmarks and held-out tokens.
Each variant trains the demo's student (same layers, steps, batch, schedule, precision as
the demo's config unless overridden) for each seed with `tinywave distill`, all variants
are scored together on the same pairs (speech-only and cross-modal sSC / tSC, held-out
perplexity), and each variant is compared with CE-only by a paired bootstrap pooled over
seeds. Writes ``benchmarks/results/distill_loss_ablation.{json,md}`` (or ``--out`` and the
Markdown beside it) with the conditions (benchmarks/conditions.py).
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

NONE = {"kl_weight": 0.0, "hidden_weight": 0.0, "attn_weight": 0.0}
VARIANTS: dict[str, dict] = {
    "ce": NONE,
    "kl": {**NONE, "kl_weight": 1.0, "temperature": 2.0},
    "kl_h01_a01": {"kl_weight": 1.0, "temperature": 2.0, "hidden_weight": 0.1, "attn_weight": 0.1, "hidden_kind": "cosine"},
    "kl_h1": {"kl_weight": 1.0, "temperature": 2.0, "hidden_weight": 1.0, "attn_weight": 0.0, "hidden_kind": "cosine"},
    "kl_a1": {"kl_weight": 1.0, "temperature": 2.0, "hidden_weight": 0.0, "attn_weight": 1.0, "hidden_kind": "cosine"},
    "kl_h1_a1": {"kl_weight": 1.0, "temperature": 2.0, "hidden_weight": 1.0, "attn_weight": 1.0, "hidden_kind": "cosine"},
}


def train_variant(demo: Path, work: Path, name: str, seed: int, steps: int, cfg: dict, precision: str) -> Path:
    from tinywave.demo.stages import call

    s = cfg["student"]
    run = work / "runs" / f"{name}-s{seed}"
    call("distill", teacher={"dir": str(demo / "models" / "teacher")},
         student={"n_layers": s["n_layers"], "init": "pruned"}, loss={"ce_weight": 1.0, **VARIANTS[name]},
         data={"shards": str(demo / "shards" / "student"), "batch_size": s["batch_size"]},
         optim={"lr": s["lr"], "warmup_steps": max(1, steps // 10)},
         train={"out": str(run), "steps": steps, "seed": seed, "precision": precision, "log_every": 10,
                "ckpt_every": max(1, steps // 2), "resume": True, "parallel": "none"})
    return run / "model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a finished `tinywave demo` folder")
    parser.add_argument("--work", default="runs/loss_ablation", help="where the runs and evaluation go")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=0, help="student steps (0: the demo's)")
    parser.add_argument("--out", default="", help="results JSON (default: benchmarks/results/distill_loss_ablation.json)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from conditions import conditions
    from record import figure, write_results

    from tinywave.demo.precision import choose_precision
    from tinywave.demo.stages import call
    from tinywave.eval.stats import bootstrap_mean_ci, load_outcomes, load_ppl_rows, paired_bootstrap_p, paired_ppl_p, ppl_ci

    demo, work = Path(args.demo), Path(args.work)
    cfg = json.loads((demo / "stages.json").read_text())["config"]
    steps = args.steps or cfg["student"]["steps"]
    precision = choose_precision(cfg.get("precision", "auto"))
    t0 = time.monotonic()
    models, seconds = {}, {}
    for name in args.variants:
        for seed in args.seeds:
            start = time.monotonic()
            models[f"{name}-s{seed}"] = train_variant(demo, work, name, seed, steps, cfg, precision.name)
            seconds[f"{name}-s{seed}"] = round(time.monotonic() - start, 1)
    models["teacher"] = demo / "models" / "teacher"
    call("evaluate", model=[f"{n}={p}" for n, p in models.items()], bench=[str(demo / "benchmarks")], out=str(work / "eval"),
         reference="teacher", cross_modal=True, ppl=[f"heldout={demo / 'tokens' / 'heldout.jsonl'}"],
         cache=str(demo / "eval" / "cache"))
    scores = work / "eval" / "scores"
    results = json.loads((work / "eval" / "results.json").read_text())
    benches = [b for b in results["results"] if "/" not in b]
    table: dict = {}
    for bench in benches:
        teacher = float(load_outcomes(scores, bench, ["teacher"]).mean())
        ce = load_outcomes(scores, bench, [f"ce-s{s}" for s in args.seeds]) if "ce" in args.variants else None
        for name in args.variants:
            arr = load_outcomes(scores, bench, [f"{name}-s{s}" for s in args.seeds])  # [seeds, items]
            row = {"mean": float(arr.mean()), "std": float(arr.mean(axis=1).std(ddof=1)) if len(args.seeds) > 1 else 0.0,
                   "ci": [float(v) for v in bootstrap_mean_ci(arr)], "of_teacher": float(arr.mean()) / teacher}
            if ce is not None and name != "ce":
                row["p_vs_ce"] = float(paired_bootstrap_p(arr, ce))
            table.setdefault(bench, {})[name] = row
        table[bench]["teacher"] = {"mean": teacher}
    nll_ce = load_ppl_rows(scores, "heldout", [f"ce-s{s}" for s in args.seeds]) if "ce" in args.variants else None
    for name in args.variants:
        nll, tok = load_ppl_rows(scores, "heldout", [f"{name}-s{s}" for s in args.seeds])
        row = {"mean": float(np.mean(np.exp(nll.sum(1) / tok.sum(1)))), "ci": [float(v) for v in ppl_ci(nll, tok)]}
        if nll_ce is not None and name != "ce":
            row["p_vs_ce"] = float(paired_ppl_p(nll, tok, *nll_ce))
        table.setdefault("ppl", {})[name] = row
    out = {"variants": {n: VARIANTS[n] for n in args.variants}, "seeds": args.seeds, "steps": steps, "demo": str(demo),
           "student": cfg["student"], "table": table, "train_seconds": seconds, "wall_seconds": round(time.monotonic() - t0, 1)}
    cond = conditions(precision.name, torch.get_num_threads())
    figures = [figure(f"{bench} {name}", r["mean"], "ppl" if bench == "ppl" else "accuracy", None,
                      (f"95% CI [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if "ci" in r else "")
                      + (f", p vs CE {r['p_vs_ce']:.3f}" if "p_vs_ce" in r else ""))
               for bench, rows in table.items() for name, r in rows.items()]
    path = write_results("distill_loss_ablation", figures, cond, args.out, **out)
    lines = [f"# Distillation loss ablation ({len(args.seeds)} seeds, {steps} steps; {cond})", "",
             "| variant | " + " | ".join(benches) + " | held-out ppl |", "|---" * (len(benches) + 2) + "|"]
    for name in args.variants:
        cells = []
        for bench in benches:
            r = table[bench][name]
            cells.append(f"{r['mean']:.3f} ± {r['std']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
                         + (f" p={r['p_vs_ce']:.3f}" if "p_vs_ce" in r else ""))
        r = table["ppl"][name]
        cells.append(f"{r['mean']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" + (f" p={r['p_vs_ce']:.3f}" if "p_vs_ce" in r else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| teacher | " + " | ".join(f"{table[b]['teacher']['mean']:.3f}" for b in benches) + " | |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
