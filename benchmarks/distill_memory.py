"""Benchmark: the two fast paths of the distillation step, measured side by side in one run.

    .venv/bin/python benchmarks/distill_memory.py            # ~2-4 min on 2 CPU cores, ~3 GB RAM
    .venv/bin/python benchmarks/distill_memory.py --quick    # smaller shapes

1. Vocabulary losses (CE + KL, forward + backward) from hidden states and the LM head:
   plain (full [N, V] float32 logits for student and teacher) vs chunked
   (``tinywave.distill.losses.chunked_vocab_losses``). Each variant runs in a fresh
   process; printed: peak resident memory above the inputs (MB), seconds, and ratios.
2. Attention maps of a Llama model (forward + backward, maps of 2 of 6 layers for the
   attention loss): the whole model on eager attention vs SDPA everywhere except the
   mapped layers (``tinywave_mapped``), and plain SDPA without maps as the floor.

Nothing here is asserted; correctness is covered by the parity tests. Writes the figures
and the conditions to ``benchmarks/results/distill_memory.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _vocab_variant(kind: str, n: int, v: int, d: int, chunk: int, queue) -> None:
    import torch.nn.functional as F

    from tinywave.distill.losses import ce_loss, chunked_vocab_losses, kl_loss

    torch.manual_seed(0)
    hidden = torch.randn(n, d, requires_grad=True)
    weight = (torch.randn(v, d) * 0.05).requires_grad_(True)
    t_hidden, t_weight = torch.randn(n, d), torch.randn(v, d) * 0.05
    targets = torch.randint(0, v, (n,))
    base = _peak_mb()
    t0 = time.perf_counter()
    if kind == "plain":
        logits = F.linear(hidden, weight)[None]  # (1, N, V)
        t_logits = F.linear(t_hidden, t_weight)[None]
        ce = ce_loss(logits, targets[None])
        kl = kl_loss(logits, t_logits, torch.ones(1, n, dtype=torch.bool), 2.0)
    else:
        ce, kl = chunked_vocab_losses(hidden, weight, targets, lambda r: F.linear(t_hidden[r], t_weight), None, 2.0, chunk_size=chunk)
    (ce + kl).backward()
    queue.put((kind, _peak_mb() - base, time.perf_counter() - t0, float(ce.detach()), float(kl.detach())))


def bench_vocab(n: int, v: int, d: int, chunk: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    rows = {}
    for kind in ("plain", "chunked"):
        q = ctx.Queue()
        p = ctx.Process(target=_vocab_variant, args=(kind, n, v, d, chunk, q))
        p.start()
        rows[kind] = q.get()
        p.join()
    print(f"\n1. vocabulary losses, N={n} tokens, V={v}, D={d}, chunk={chunk} (one [N, V] fp32 = {n * v * 4 / 2**20:.0f} MB)")
    for kind, (_, mb, sec, ce, kl) in rows.items():
        print(f"   {kind:8s} peak +{mb:8.1f} MB  {sec:6.2f} s  ce={ce:.5f} kl={kl:.5f}")
    memory, seconds = rows["plain"][1] / max(rows["chunked"][1], 1e-6), rows["chunked"][2] / rows["plain"][2]
    print(f"   memory ratio plain/chunked = {memory:.1f}x, time ratio chunked/plain = {seconds:.2f}x")
    from record import figure

    shape = f"N={n}, V={v}, D={d}"
    return [*(figure(f"vocabulary losses {kind}, {shape}: peak memory added", mb, "MB") for kind, (_, mb, _, _, _) in rows.items()),
            *(figure(f"vocabulary losses {kind}, {shape}: seconds", sec, "s") for kind, (_, _, sec, _, _) in rows.items()),
            figure(f"vocabulary losses, peak memory plain / chunked ({shape})", memory, "x"),
            figure(f"vocabulary losses, time chunked / plain ({shape})", seconds, "x")]


def _llama(layers: int, width: int, heads: int, impl: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=1000, hidden_size=width, intermediate_size=width * 2, num_hidden_layers=layers,
                      num_attention_heads=heads, max_position_embeddings=2048, attn_implementation=impl)
    return LlamaForCausalLM(cfg).train()


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def bench_attention(batch: int, seq: int, repeats: int) -> list[dict]:
    from tinywave.models.attention import capture, use_mapped_attention

    ids = torch.randint(0, 1000, (batch, seq))
    mapped_layers = [2, 5]

    eager = _llama(6, 256, 4, "eager")

    def run_eager():
        out = eager.model(ids, output_attentions=True)
        maps = [out.attentions[i] for i in mapped_layers]
        (out.last_hidden_state.mean() + sum(m.float().mean() for m in maps)).backward()

    mapped = _llama(6, 256, 4, "sdpa")
    use_mapped_attention(mapped)

    def run_mapped():
        with capture(mapped, attn_layers=mapped_layers) as got:
            out = mapped.model(ids)
        (out.last_hidden_state.mean() + sum(got.attn_logp[i].exp().mean() for i in mapped_layers)).backward()

    sdpa = _llama(6, 256, 4, "sdpa")

    def run_sdpa():
        sdpa.model(ids).last_hidden_state.mean().backward()

    times = {"eager (all layers)": _time(run_eager, repeats), "mapped (2 of 6)": _time(run_mapped, repeats), "sdpa (no maps)": _time(run_sdpa, repeats)}
    print(f"\n2. attention maps, 6 layers x 256, batch {batch} x {seq} tokens, forward + backward")
    for name, sec in times.items():
        print(f"   {name:20s} {sec * 1000:8.1f} ms/step")
    print(f"   eager / mapped = {times['eager (all layers)'] / times['mapped (2 of 6)']:.2f}x, "
          f"mapped / sdpa = {times['mapped (2 of 6)'] / times['sdpa (no maps)']:.2f}x")
    from record import figure

    shape = f"6 x 256, batch {batch} x {seq}"
    return [*(figure(f"attention maps, {name} ({shape}): forward + backward", sec * 1000, "ms/step") for name, sec in times.items()),
            figure(f"attention maps, eager / mapped ({shape})", times["eager (all layers)"] / times["mapped (2 of 6)"], "x"),
            figure(f"attention maps, mapped / sdpa ({shape})", times["mapped (2 of 6)"] / times["sdpa (no maps)"], "x")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/distill_memory.json)")
    args = ap.parse_args()
    from conditions import conditions
    from record import write_results

    if args.quick:
        figures = bench_vocab(n=1024, v=8192, d=128, chunk=256) + bench_attention(batch=2, seq=256, repeats=2)
    else:
        figures = bench_vocab(n=2048, v=32768, d=256, chunk=512) + bench_attention(batch=4, seq=512, repeats=3)
    write_results("distill_memory", figures, conditions("fp32", torch.get_num_threads()), args.out, quick=args.quick)


if __name__ == "__main__":
    main()
