"""Benchmark: the attention-map KL of one mapped layer pair, closed form vs checkpointed autograd, side by side.

    .venv/bin/python benchmarks/attention_kl.py               # the demo's shapes and a longer one, 1 and 2 threads
    .venv/bin/python benchmarks/attention_kl.py --quick       # small shapes, a smoke run

Both variants compute the same loss and gradients (tests/test_perf_fused.py): the KL between
teacher and student attention rows from recorded queries and keys
(``tinywave.distill.fused.attention_kl_from_qk``), in causal blocks of 128 query rows.

* ``autograd``: each block's log-softmaxes under activation checkpointing (the path for
  different head counts, and the only path before the closed form);
* ``closed``: :class:`tinywave.distill.fused._BlockKL`, the loss from each row's two
  log-normalizers and the gradient ``softmax(s) - p_teacher`` in closed form.

A step is forward + backward of one pair (no optimizer). Variants alternate within each
round; the figure is the ratio of medians over ``--rounds`` rounds, so a change of machine
load hits both alike. Writes ``benchmarks/results/attention_kl.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402

from conditions import conditions  # noqa: E402
from record import figure, write_results  # noqa: E402
from tinywave.distill.fused import attention_kl_from_qk  # noqa: E402

# (name, rows B, heads H, tokens T, head dim d): the demo's student step (4 x 512, 4 heads of 64), a longer context
SHAPES = {"demo 4x512, 4 heads x 64": (4, 4, 512, 64), "2x1024, 8 heads x 64": (2, 8, 1024, 64)}
QUICK = {"quick 2x64, 2 heads x 16": (2, 2, 64, 16)}


def inputs(b: int, h: int, t: int, d: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, t, dtype=torch.bool)  # (B, T): every token real, as in padding-free rows
    return {"s": [torch.randn(b, h, t, d, generator=g).requires_grad_() for _ in range(2)],
            "t": [torch.randn(b, h, t, d, generator=g) * 2 for _ in range(2)], "mask": mask, "scale": d ** -0.5}


def step_seconds(x: dict, closed: bool) -> float:
    t0 = time.perf_counter()
    loss = attention_kl_from_qk((*x["s"], x["scale"]), (*x["t"], x["scale"]), x["mask"], x["mask"], closed_form=closed)
    loss.backward()
    seconds = time.perf_counter() - t0
    for p in x["s"]:
        p.grad = None
    return seconds


def measure(shape: tuple[int, int, int, int], threads: int, rounds: int) -> dict:
    torch.set_num_threads(threads)
    x = inputs(*shape)
    for closed in (True, False):  # warm-up
        step_seconds(x, closed)
    times: dict[str, list[float]] = {"closed": [], "autograd": []}
    for _ in range(rounds):
        for name, closed in (("closed", True), ("autograd", False)):
            times[name].append(step_seconds(x, closed))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"threads": threads, "median_s": med, "speedup": med["autograd"] / med["closed"], "times": times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, 2 rounds (smoke run)")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per shape and thread count")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/attention_kl.json)")
    a = ap.parse_args(argv)
    shapes, rounds = (QUICK, 2) if a.quick else (SHAPES, a.rounds)
    load = [round(v, 2) for v in os.getloadavg()]
    rows, figures = [], []
    for name, shape in shapes.items():
        for threads in a.threads:
            r = {"shape": name, "B_H_T_d": shape, **measure(shape, threads, rounds)}
            rows.append(r)
            print(f"{name}, {threads} thread(s): closed {r['median_s']['closed'] * 1e3:.1f} ms, autograd "
                  f"{r['median_s']['autograd'] * 1e3:.1f} ms per pair step -> {r['speedup']:.2f}x")
            figures.append(figure(f"attention KL step, autograd / closed form, {name}, {threads} thread(s)", round(r["speedup"], 3), "x",
                                  note=f"median of {rounds} alternating rounds"))
    write_results("attention_kl", figures, conditions("fp32", threads=max(a.threads), load_average_at_start=load), a.out or None,
                  rows=rows, rounds=rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
