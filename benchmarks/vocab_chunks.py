"""Benchmark: the fused CE + KL vocabulary loss at several chunk sizes, side by side.

    .venv/bin/python benchmarks/vocab_chunks.py            # SpiritLM's vocabulary, 2048 tokens, 1 and 2 threads
    .venv/bin/python benchmarks/vocab_chunks.py --quick    # small shapes, a smoke run

:func:`tinywave.distill.fused.fused_vocab_losses` computes a chunk of rows' logits, both
losses and their gradient at once; most of its passes over the (chunk, V) float32 tensors
are memory-bound, so the chunk decides whether they stream from DRAM (1024 x 32,667 x 4 B =
134 MB per tensor) or stay in the last-level cache. A step here is forward + backward of the
loss (student logits, teacher logits from the teacher's last hidden states, CE + KL(T=2)),
the way the distillation step calls it (``LossWeights.chunk_size``). Chunk sizes alternate
within each round; the figure is each size's median against the default's. Every size gives
the same loss and gradients (tests/test_perf_fused.py). Writes
``benchmarks/results/vocab_chunks.json``.
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

from conditions import conditions  # noqa: E402
from record import figure, write_results  # noqa: E402
from timing import alternating_medians  # noqa: E402
from tinywave.distill.fused import fused_vocab_losses  # noqa: E402
from tinywave.distill.objective import LossWeights  # noqa: E402

FULL = {"tokens": 2048, "width": 256, "vocab": 32667, "chunks": [128, 256, 512, 1024, 2048]}
QUICK = {"tokens": 512, "width": 64, "vocab": 4096, "chunks": [64, 256]}
TEMPERATURE = 2.0


def inputs(tokens: int, width: int, vocab: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"hidden": (torch.randn(tokens, width, generator=g) * 0.5).requires_grad_(),
            "weight": (torch.randn(vocab, width, generator=g) * 0.05).requires_grad_(),
            "teacher_hidden": torch.randn(tokens, width, generator=g) * 0.5,
            "teacher_weight": torch.randn(vocab, width, generator=g) * 0.05,
            "targets": torch.randint(0, vocab, (tokens,), generator=g)}


def step_seconds(x: dict, chunk: int) -> float:
    def teacher_logits(rows: torch.Tensor) -> torch.Tensor:
        return x["teacher_hidden"][rows] @ x["teacher_weight"].T  # (n, V)

    t0 = time.perf_counter()
    loss, _, _ = fused_vocab_losses(x["hidden"], x["weight"], x["targets"], teacher_logits, temperature=TEMPERATURE, chunk_size=chunk)
    loss.backward()
    seconds = time.perf_counter() - t0
    x["hidden"].grad = x["weight"].grad = None
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a smoke run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="", help="results JSON (default: benchmarks/results/vocab_chunks.json)")
    args = parser.parse_args()
    shape = QUICK if args.quick else FULL
    default = LossWeights().chunk_size
    chunks = sorted({*shape["chunks"], default})
    x = inputs(shape["tokens"], shape["width"], shape["vocab"])
    figures = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        med, _ = alternating_medians(lambda c: step_seconds(x, int(c)), [str(c) for c in chunks], rounds=args.rounds)
        print(f"{threads} thread(s): " + ", ".join(f"chunk {c}: {1000 * med[str(c)]:.0f} ms" for c in chunks))
        for c in chunks:
            figures.append(figure(f"{threads} thread(s), chunk {c}: step time", 1000 * med[str(c)], "ms"))
            if c != default:
                figures.append(figure(f"{threads} thread(s): chunk {default} / chunk {c} step time", med[str(default)] / med[str(c)], "x"))
    write_results("vocab_chunks", figures, conditions("fp32", max(args.threads)), args.out,
                  shape={k: v for k, v in shape.items() if k != "chunks"}, chunks=chunks, default_chunk=default, rounds=args.rounds)


if __name__ == "__main__":
    main()
