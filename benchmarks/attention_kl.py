"""Benchmark: the attention-map KL of one mapped layer pair, closed form vs checkpointed autograd, side by side.

    .venv/bin/python benchmarks/attention_kl.py               # the demo's shapes and a longer one, 1 and 2 threads
    .venv/bin/python benchmarks/attention_kl.py --quick       # small shapes, a smoke run

Both variants compute the same loss and gradients (tests/test_perf_fused.py): the KL between
teacher and student attention rows from recorded queries and keys
(``tinywave.distill.fused.attention_kl_from_qk``), in causal blocks of 64 query rows.

* ``autograd``: each block's log-softmaxes under activation checkpointing (the path for
  different head counts, and the only path before the closed form);
* ``closed``: :class:`tinywave.distill.fused._PairKL`, the loss from each row's two
  log-normalizers and the gradient ``softmax(s) - p_teacher`` in closed form, computed in
  the forward pass (each block's score maps once; backward only scales d/dq, d/dk).

With ``--packed`` (the default shapes include it), rows hold documents of the demo's
measured length (124 tokens on average, lengths drawn from a geometric law; each its own
segment, ``packing=split``), and two more variants run:

* ``closed_nowin``: the closed form over every causal key of a block (the code before key
  windows);
* ``closed_b128``: blocks of 128 query rows instead of 64 (the default before the forward-pass gradient).

``closed`` then skips, per block of queries, the keys before the earliest start of their
segments in any row (the loss is unchanged: tests/test_perf_fused.py).

With ``--against REV`` one more variant, ``closed@REV``, runs the closed form of
``tinywave/distill/fused.py`` as it was at git revision REV (read with ``git show``), so a
change to the fast path is timed side by side with its predecessor in the same run.

A step is forward + backward of one pair (no optimizer). Variants alternate within each
round; the figure is the ratio of medians over ``--rounds`` rounds, so a change of machine
load hits both alike. Writes ``benchmarks/results/attention_kl.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402

from conditions import conditions  # noqa: E402
from record import figure, write_results  # noqa: E402
from timing import alternating_medians  # noqa: E402
from tinywave.distill.fused import attention_kl_from_qk  # noqa: E402

# (name, rows B, heads H, tokens T, head dim d): the demo's student step (4 x 512, 4 heads of 64), a longer context
SHAPES = {"demo 4x512, 4 heads x 64": (4, 4, 512, 64), "2x1024, 8 heads x 64": (2, 8, 1024, 64)}
QUICK = {"quick 2x64, 2 heads x 16": (2, 2, 64, 16)}
DOC_TOKENS = 124  # mean document length of the demo's student shards (468,429 tokens in 3,788 documents)
# variant -> keyword arguments of attention_kl_from_qk
VARIANTS = {"closed": {"closed_form": True}, "autograd": {"closed_form": False},
            "closed_nowin": {"closed_form": True, "key_windows": False}, "closed_b128": {"closed_form": True, "block": 128}}
PLAIN = ("closed", "autograd", "closed_b128")
KL: dict[str, Callable] = {}  # variant -> the attention_kl_from_qk it calls (default: today's)


def kl_at_revision(rev: str) -> Callable:
    """``attention_kl_from_qk`` of tinywave/distill/fused.py at git revision ``rev``, loaded as its own module."""
    path = "tinywave/distill/fused.py"
    done = subprocess.run(["git", "-C", str(HERE.parent), "show", f"{rev}:{path}"], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"--against {rev}: git cannot show {path} at that revision ({done.stderr.strip()}); give a commit of this repository")
    module = types.ModuleType(f"fused_at_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up here
    exec(compile(done.stdout, f"{rev}:{path}", "exec"), module.__dict__)
    return module.attention_kl_from_qk


def packed_segments(b: int, t: int, mean: int, seed: int) -> torch.Tensor:
    """(B, T) segment index of packed rows: documents of geometric lengths (mean ``mean``) cut across rows."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.rand(b, t, generator=g) < 1.0 / mean
    starts[:, 0] = True  # a row starts a segment (a document continued from the previous row)
    return starts.long().cumsum(-1) - 1


def inputs(b: int, h: int, t: int, d: int, seed: int = 0, packed: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, t, dtype=torch.bool)  # (B, T): every token real, as in padding-free rows
    return {"s": [torch.randn(b, h, t, d, generator=g).requires_grad_() for _ in range(2)],
            "t": [torch.randn(b, h, t, d, generator=g) * 2 for _ in range(2)], "mask": mask, "scale": d ** -0.5,
            "segments": packed_segments(b, t, DOC_TOKENS, seed) if packed else None}


def step_seconds(x: dict, variant: str) -> float:
    t0 = time.perf_counter()
    kl = KL.get(variant, attention_kl_from_qk)
    loss = kl((*x["s"], x["scale"]), (*x["t"], x["scale"]), x["mask"], x["mask"], segments=x["segments"], **VARIANTS[variant])
    loss.backward()
    seconds = time.perf_counter() - t0
    for p in x["s"]:
        p.grad = None
    return seconds


def measure(shape: tuple[int, int, int, int], threads: int, rounds: int, packed: bool) -> dict:
    torch.set_num_threads(threads)
    x = inputs(*shape, packed=packed)
    variants = [v for v in VARIANTS if packed or v in PLAIN or v in KL]
    med, times = alternating_medians(lambda v: step_seconds(x, v), variants, rounds)
    ratios = {f"{v} / closed": med[v] / med["closed"] for v in variants if v != "closed"}
    return {"threads": threads, "packed": packed, "median_s": med, "speedup": med["autograd"] / med["closed"], "ratios": ratios,
            "times": times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, 2 rounds (smoke run)")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per shape and thread count")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/attention_kl.json)")
    ap.add_argument("--packing", nargs="+", default=["plain", "packed"], choices=["plain", "packed"],
                    help="rows of one document each (plain) and/or documents packed as segments (packed)")
    ap.add_argument("--against", default="", metavar="REV", help="also time the closed form of fused.py at this git revision")
    a = ap.parse_args(argv)
    if a.against:
        KL[f"closed@{a.against}"] = kl_at_revision(a.against)
        VARIANTS[f"closed@{a.against}"] = {"closed_form": True}
    shapes, rounds = (QUICK, 2) if a.quick else (SHAPES, a.rounds)
    load = [round(v, 2) for v in os.getloadavg()]
    rows, figures = [], []
    for name, shape in shapes.items():
        for packing in a.packing:
            for threads in a.threads:
                r = {"shape": name, "B_H_T_d": shape, **measure(shape, threads, rounds, packing == "packed")}
                rows.append(r)
                label = f"{name}, {packing} rows, {threads} thread(s)"
                print(f"{label}: " + ", ".join(f"{v} {s * 1e3:.1f} ms" for v, s in r["median_s"].items())
                      + " per pair step; " + ", ".join(f"{k} {x:.2f}x" for k, x in r["ratios"].items()))
                for key, x in r["ratios"].items():
                    figures.append(figure(f"attention KL step, {key}, {label}", round(x, 3), "x",
                                          note=f"median of {rounds} alternating rounds"))
    write_results("attention_kl", figures, conditions("fp32", threads=max(a.threads), load_average_at_start=load), a.out or None,
                  rows=rows, rounds=rounds, against=a.against or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
