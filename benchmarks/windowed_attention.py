"""Benchmark: attention on segmented rows, one SDPA call over the full mask vs key windows, side by side.

    .venv/bin/python benchmarks/windowed_attention.py            # the demo's student shapes, 1 and 2 threads
    .venv/bin/python benchmarks/windowed_attention.py --quick    # small shapes, a smoke run

Rows as the demo packs them (``packing=split``): documents of 124 tokens on average
(geometric lengths, as in benchmarks/attention_kl.py), each its own segment, so the mask
transformers builds is block-causal. ``plain`` is one ``F.scaled_dot_product_attention``
over the (B, 1, T, T) mask (what SDPA did before); ``windowed`` is
:func:`tinywave.models.windowed.windowed_sdpa` (blocks of 128 queries, each over the keys its
mask allows at all). Both give the same outputs and gradients (tests/test_windowed_attention.py).
A step is forward + backward of one layer's attention. Variants alternate within each round;
the figure is the ratio of medians. Writes ``benchmarks/results/windowed_attention.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from attention_kl import DOC_TOKENS, packed_segments  # noqa: E402
from conditions import conditions  # noqa: E402
from record import figure, write_results  # noqa: E402
from timing import alternating_medians  # noqa: E402
from tinywave.models.windowed import windowed_sdpa  # noqa: E402

SHAPES = {"demo student 4x512, 4 heads x 64": (4, 4, 512, 64), "demo correction 8x512, 4 heads x 64": (8, 4, 512, 64)}
QUICK = {"quick 2x256, 2 heads x 16": (2, 2, 256, 16)}
VARIANTS = {
    "plain": lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
    "windowed": lambda q, k, v, m: windowed_sdpa(q, k, v, m),
}


def inputs(b: int, h: int, t: int, d: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    segments = packed_segments(b, t, DOC_TOKENS, seed)  # (B, T)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    mask = (causal & (segments[:, :, None] == segments[:, None, :]))[:, None]  # (B, 1, T, T)
    qkv = [torch.randn(b, h, t, d, generator=g).requires_grad_() for _ in range(3)]
    return {"qkv": qkv, "mask": mask, "grad": torch.randn(b, h, t, d, generator=g)}


def step_seconds(x: dict, variant: str) -> float:
    t0 = time.perf_counter()
    out = VARIANTS[variant](*x["qkv"], x["mask"])
    out.backward(x["grad"])
    seconds = time.perf_counter() - t0
    for p in x["qkv"]:
        p.grad = None
    return seconds


def measure(shape: tuple[int, int, int, int], threads: int, rounds: int) -> dict:
    torch.set_num_threads(threads)
    x = inputs(*shape)
    med, times = alternating_medians(lambda v: step_seconds(x, v), list(VARIANTS), rounds)
    return {"threads": threads, "median_s": med, "speedup": med["plain"] / med["windowed"], "times": times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, 2 rounds (smoke run)")
    ap.add_argument("--rounds", type=int, default=9, help="alternating rounds per shape and thread count")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/windowed_attention.json)")
    a = ap.parse_args(argv)
    shapes, rounds = (QUICK, 2) if a.quick else (SHAPES, a.rounds)
    load = [round(v, 2) for v in os.getloadavg()]
    rows, figures = [], []
    for name, shape in shapes.items():
        for threads in a.threads:
            r = {"shape": name, "B_H_T_d": shape, **measure(shape, threads, rounds)}
            rows.append(r)
            print(f"{name}, {threads} thread(s): plain {r['median_s']['plain'] * 1e3:.1f} ms, windowed "
                  f"{r['median_s']['windowed'] * 1e3:.1f} ms per layer step -> {r['speedup']:.2f}x")
            figures.append(figure(f"attention on segmented rows, plain / windowed, {name}, {threads} thread(s)", round(r["speedup"], 3),
                                  "x", note=f"median of {rounds} alternating rounds; documents of {DOC_TOKENS} tokens on average"))
    write_results("windowed_attention", figures, conditions("fp32", threads=max(a.threads), load_average_at_start=load), a.out or None,
                  rows=rows, rounds=rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
