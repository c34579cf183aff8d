"""Benchmark: padding-free packing (shards ``packing=split``) against whole-document rows.

    .venv/bin/python benchmarks/packing.py --demo demo_out --steps 40 --threads 2

Builds the demo students' shards both ways from the same token corpus (``tokens/subset.jsonl``,
the demo's mixture, passes and seed), then trains the demo's student (2 of the corrected
teacher's layers, every distillation loss, the teacher online) for ``--steps`` steps on each,
alternating whole / split / whole / split in one process so a changing load hits both alike.
Reports the share of padding, target tokens per step and target tokens per second (the run
log's ``tokens_per_s``, first two log lines dropped as warm-up) side by side. Writes
``benchmarks/results/packing.json`` (or ``--out``) with the conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


def build(demo: Path, cfg: dict, out: Path, packing: str) -> dict:
    from tinywave.demo.stages import call

    call("data_build", tokens=[str(demo / "tokens" / "subset.jsonl")], tokenizer=str(demo / "models" / "teacher"), out=str(out),
         seq_len=cfg["seq_len"], mixture=cfg["mixture"], passes=cfg["student"]["passes"], seed=cfg["seed"], packing=packing)
    return json.loads((out / "index.json").read_text())


def train(demo: Path, cfg: dict, shards: Path, out: Path, steps: int) -> list[dict]:
    from tinywave.demo.stages import call

    s = cfg["student"]
    call("distill", teacher={"dir": str(demo / "models" / "teacher")}, student={"n_layers": s["n_layers"], "init": "pruned"},
         loss={"ce_weight": 1.0, "kl_weight": s["kl_weight"], "temperature": s["temperature"], "hidden_weight": s["hidden_weight"],
               "hidden_kind": s["hidden_kind"], "attn_weight": s["attn_weight"]},
         data={"shards": str(shards), "batch_size": s["batch_size"]}, optim={"lr": s["lr"], "warmup_steps": max(1, steps // 10)},
         train={"out": str(out), "steps": steps, "seed": 0, "precision": "fp32", "log_every": 5, "ckpt_every": steps,
                "parallel": "none"})
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="demo_out", help="a `tinywave demo` folder past its correction stage")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per timed run")
    parser.add_argument("--rounds", type=int, default=2, help="whole / split pairs of runs, alternated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="", help="results JSON (default: benchmarks/results/packing.json)")
    args = parser.parse_args()

    import torch

    from conditions import conditions
    from record import figure, write_results

    torch.set_num_threads(args.threads)
    demo = Path(args.demo)
    cfg = json.loads((demo / "stages.json").read_text())["config"]
    work = Path(tempfile.mkdtemp(prefix="tinywave-packing-"))
    index = {p: build(demo, cfg, work / f"shards_{p}", p) for p in ("whole", "split")}
    rates: dict[str, list[float]] = {"whole": [], "split": []}
    per_step: dict[str, list[float]] = {"whole": [], "split": []}
    for r in range(args.rounds):
        for packing in ("whole", "split"):
            log = train(demo, cfg, work / f"shards_{packing}", work / f"run_{packing}_{r}", args.steps)[2:]
            rates[packing] += [x["tokens_per_s"] for x in log]
            per_step[packing] += [x["tokens"] for x in log]
            print(f"round {r} {packing}: {statistics.median(x['tokens_per_s'] for x in log):.0f} target tokens/s")
    fill = {p: i["tokens"] / (i["count"] * i["seq_len"]) for p, i in index.items()}
    tok_s = {p: statistics.median(v) for p, v in rates.items()}
    tok_step = {p: statistics.mean(v) for p, v in per_step.items()}
    row_tokens = cfg["student"]["batch_size"] * cfg["seq_len"]
    figures = [
        figure("padding share, whole rows", round(1 - fill["whole"], 3)),
        figure("padding share, split rows", round(1 - fill["split"], 3), target=("<=", 0.01)),
        figure("target tokens per step, whole", round(tok_step["whole"]), note=f"of {row_tokens} row tokens"),
        figure("target tokens per step, split", round(tok_step["split"]), note=f"of {row_tokens} row tokens"),
        figure("target tokens/s, split / whole", round(tok_s["split"] / tok_s["whole"], 3), "x", target=(">=", 1.05),
               note=f"medians {tok_s['split']:.0f} / {tok_s['whole']:.0f}; spread of the logged rates "
                    f"{statistics.pstdev(rates['whole']):.0f} / {statistics.pstdev(rates['split']):.0f} tokens/s"),
    ]
    for f in figures:
        print(f"{f['name']}: {f['value']}{f['unit']} {f['note']}")
    write_results("packing", figures, conditions("fp32", threads=args.threads, steps=args.steps, rounds=args.rounds,
                                                 model="demo student, teacher online, all losses"),
                  out=args.out or None, rates=rates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
