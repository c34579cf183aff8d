"""Batched vs one-at-a-time likelihood scoring throughput (run by hand, prints ratios).

    .venv/bin/python benchmarks/scoring_throughput.py [--sequences 100] [--layers 4] [--width 256]
        [--batch-tokens 2048 8192] [--threads N] [--repeats 3] [--out results.json]

A random LlamaForCausalLM with the SpiritLM-style speech vocabulary scores random speech
sequences of 150-300 tokens both ways in the same run (interleaved, best of --repeats);
the LLs of the two paths are compared too. Target: batched >= 3x one-at-a-time.

Then benchmark pairs: ``--sequences`` pairs whose two files share a prefix of 40-160 tokens
and end in 20-80 tokens of their own (the demo's pairs share 30% of their tokens), scored
with shared prefixes (one row per pair, tinywave/eval/scoring.py ``plan_trees``) and with a
padded row per file, both batched at the first ``--batch-tokens``. Writes the figures and
the conditions to ``benchmarks/results/scoring_throughput.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM

from tinywave.eval.scoring import ScoreRequest, SequenceBuilder, log_likelihoods, pair_outcomes, plan_trees  # noqa: E402
from tinywave.text.vocab import train_bpe_tokenizer  # noqa: E402

TARGET = 3.0  # batched / one-at-a-time


def build(layers: int, width: int, seed: int):
    tok, layout = train_bpe_tokenizer(["the cat sat on the mat", "a dog ran to the park"] * 20, vocab_size=200)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=layout.size, hidden_size=width, intermediate_size=int(width * 8 / 3 // 64 + 1) * 64,
                      num_hidden_layers=layers, num_attention_heads=max(1, width // 64), max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return tok, layout, LlamaForCausalLM(cfg).eval()


def requests(tok, layout, n: int, seed: int):
    rng = random.Random(seed)
    builder = SequenceBuilder(tok)
    speech = ["".join(f"[Hu{rng.randrange(layout.n_hu)}]" for _ in range(rng.randint(150, 300) - 3)) for _ in range(n)]
    return builder, [builder.speech(s) for s in speech]


def pair_requests(layout, n: int, seed: int):
    """``n`` pairs of speech sequences sharing a 40-160-token prefix, each ending in 20-80 tokens of its own."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prefix = [layout.hu_offset + rng.randrange(layout.n_hu) for _ in range(rng.randint(40, 160))]
        for _ in range(2):
            out.append(ScoreRequest(tuple(prefix + [layout.hu_offset + rng.randrange(layout.n_hu) for _ in range(rng.randint(20, 80))]), 1))
    return out


def timed(fn) -> tuple[float, list[float]]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch-tokens", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/scoring_throughput.json)")
    args = ap.parse_args()
    from conditions import conditions
    from record import figure, write_results

    if args.threads:
        torch.set_num_threads(args.threads)
    tok, layout, model = build(args.layers, args.width, seed=0)
    builder, reqs = requests(tok, layout, args.sequences, seed=1)
    tokens = sum(len(r.ids) for r in reqs)
    print(f"model: {args.layers} layers x {args.width}, vocab {layout.size}; {len(reqs)} sequences, {tokens} tokens; torch threads {torch.get_num_threads()}")
    log_likelihoods(model, reqs[:4], batch_tokens=0, pad_id=builder.pad)  # warm-up
    best: dict[int, float] = {}
    results: dict[int, list[float]] = {}
    for _ in range(args.repeats):
        for budget in [0, *args.batch_tokens]:  # interleaved, so load changes hit both paths alike
            seconds, lls = timed(lambda b=budget: log_likelihoods(model, reqs, "mean", b, builder.pad))
            best[budget] = min(best.get(budget, float("inf")), seconds)
            results[budget] = lls
    single = best[0]
    figures = []
    print(f"{'path':>24} {'seconds':>8} {'seq/s':>8} {'speedup':>8} {'max |dLL|':>10}")
    for budget, seconds in best.items():
        name = "one at a time" if budget == 0 else f"batched {budget} tokens"
        diff = max(abs(a - b) for a, b in zip(results[budget], results[0]))
        print(f"{name:>24} {seconds:8.2f} {len(reqs) / seconds:8.1f} {single / seconds:7.2f}x {diff:10.2e}")
        figures.append(figure(f"{name}: sequences per second", len(reqs) / seconds, "seq/s"))
        if budget:
            figures += [figure(f"{name} / one at a time", single / seconds, "x", (">=", TARGET)),
                        figure(f"{name}: max |LL difference| from one at a time", diff, "nats")]
    pairs = pair_requests(layout, args.sequences, seed=2)
    pair_tokens = sum(len(r.ids) for r in pairs)
    shared_tokens = sum(t.length for t in plan_trees(pairs))
    budget = args.batch_tokens[0]
    pair_best: dict[bool, float] = {}
    pair_lls: dict[bool, list[float]] = {}
    for _ in range(args.repeats):
        for share in (False, True):  # interleaved
            seconds, lls = timed(lambda sh=share: log_likelihoods(model, pairs, "mean", budget, builder.pad, share_prefix=sh))
            pair_best[share] = min(pair_best.get(share, float("inf")), seconds)
            pair_lls[share] = lls
    ratio = pair_best[False] / pair_best[True]
    diff = max(abs(a - b) for a, b in zip(pair_lls[True], pair_lls[False]))
    flips = sum(a != b for a, b in zip(pair_outcomes(pair_lls[True][0::2], pair_lls[True][1::2]),
                                       pair_outcomes(pair_lls[False][0::2], pair_lls[False][1::2])))
    print(f"pairs: {len(pairs) // 2} pairs, {pair_tokens} tokens, {shared_tokens} with shared prefixes ({shared_tokens / pair_tokens:.2f}); "
          f"padded rows {pair_best[False]:.2f} s, shared prefixes {pair_best[True]:.2f} s: {ratio:.2f}x, max |dLL| {diff:.1e}, "
          f"{flips} pair outcomes differ")
    figures += [figure("pairs: shared prefixes / padded rows (speed-up)", ratio, "x"),
                figure("pairs: tokens scored with shared prefixes / without", shared_tokens / pair_tokens, "x"),
                figure("pairs: max |LL difference| shared prefixes vs padded rows", diff, "nats"),
                figure("pairs: pair outcomes that differ", flips, "pairs")]
    write_results("scoring_throughput", figures, conditions("fp32", torch.get_num_threads()), args.out,
                  model={"layers": args.layers, "width": args.width}, sequences=len(reqs), tokens=tokens, repeats=args.repeats,
                  pairs={"pairs": len(pairs) // 2, "tokens": pair_tokens, "batch_tokens": budget})


if __name__ == "__main__":
    main()
