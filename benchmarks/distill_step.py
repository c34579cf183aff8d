"""Benchmark: one layer-aligned distillation step, naive vs TinyWave's, measured side by side in one run.

    .venv/bin/python benchmarks/distill_step.py              # V=32667, T=1024, batch 2: ~5-10 min on 1 core, ~4 GB
    .venv/bin/python benchmarks/distill_step.py --quick      # small shapes, a smoke run

Teacher: Llama, 8 layers x 256 wide (4 heads), vocabulary 32,667 (SpiritLM's); student:
its layers 1, 3, 5, 7 (4 layers, the teacher's width), each mapped to its teacher layer
for the hidden-state and attention losses (CE + KL(T=2) + hidden + attention, weights 1).

Variants (a "step" is forward + backward; no optimizer):

* ``naive``: eager attention in every layer of both models (``output_attentions``,
  ``output_hidden_states``), full float32 [B*T, V] logits for teacher and student, plain KL/CE;
* ``ours``: ``DistillObjective`` + ``OnlineTeacher``: attention probabilities only on the
  mapped layers (SDPA elsewhere), CE and KL in chunks from the LM heads;
* ``teacher_fwd``: the teacher's no-grad forward (SDPA, full logits); ``student_ce``: a plain
  student CE step (SDPA, Hugging Face loss) -- together the floor of any online distillation;
* ``online_no_attn`` / ``cached``: ours without the attention loss, the teacher run online
  vs read from a ``tinywave teacher-cache`` (top-64 logits float16, hidden states bfloat16).

Each variant runs in a fresh spawned process. Time: median of ``--repeats`` steps after
one warm-up step. Memory: peak resident set size (``ru_maxrss``) of the process during
the warm-up step minus its RSS once models, inputs and cache were set up -- what the step
itself adds (activations, logits, gradients). Throughput: tokens/s, and model FLOP/s
(PaLM accounting: 6N + 12LDT per trained token, 2N + 4LDT per teacher token) as a fraction
of this machine's float32 GEMM rate (1024^3) measured in the same process right after its
steps, so a busy machine slows both alike (model FLOPs utilization).
Nothing here is asserted; correctness is covered by the parity tests. Writes the figures,
their targets and the conditions to ``benchmarks/results/distill_step.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402


@dataclass
class Shape:
    vocab: int = 32667
    seq: int = 1024
    batch: int = 2
    width: int = 256
    heads: int = 4
    teacher_layers: int = 8
    keep: tuple[int, ...] = (1, 3, 5, 7)
    chunk: int = 256  # LossWeights' default (benchmarks/vocab_chunks.py)
    top_k: int = 64


QUICK = Shape(vocab=8192, seq=256, batch=2, width=128, heads=2, chunk=256)
TEMPERATURE = 2.0


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _models(shape: Shape):
    from tinywave.models.hf import new_llama
    from tinywave.models.student import build_student

    torch.manual_seed(0)
    teacher = new_llama(shape.vocab, shape.teacher_layers, shape.width, shape.heads, max_positions=shape.seq).eval()
    teacher.requires_grad_(False)
    student = build_student(teacher, len(shape.keep), list(shape.keep)).train()
    return teacher, student


def _batch(shape: Shape) -> dict[str, torch.Tensor]:
    from tinywave.data.shards import labels_from_batch

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, shape.vocab, (shape.batch, shape.seq), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, shape.seq * 3 // 4 :] = 0  # one padded row
    return {"input_ids": ids, "attention_mask": mask, "labels": labels_from_batch(ids, mask), "rows": torch.arange(shape.batch)}


def _pairs(shape: Shape) -> list[tuple[int, int]]:
    return list(enumerate(shape.keep))


def _naive_step(shape: Shape):
    from tinywave.distill.losses import IGNORE_INDEX, attention_loss, ce_loss, hidden_loss, kl_loss

    teacher, student = _models(shape)
    for m in (teacher, student):
        m.set_attn_implementation("eager")
    batch, pairs = _batch(shape), _pairs(shape)
    tmask = batch["labels"] != IGNORE_INDEX
    kmask = batch["attention_mask"].bool()

    def step():
        with torch.no_grad():
            t = teacher(batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True, output_attentions=True)
        s = student(batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True, output_attentions=True)
        ce = ce_loss(s.logits, batch["labels"])  # (B, T, V) float32 logits, student and teacher
        kl = kl_loss(s.logits, t.logits, tmask, TEMPERATURE)
        hidden = torch.stack([hidden_loss(s.hidden_states[i + 1], t.hidden_states[j + 1], tmask) for i, j in pairs]).mean()
        attn = torch.stack([attention_loss(s.attentions[i].clamp_min(1e-30).log(), t.attentions[j].clamp_min(1e-30).log(), tmask, kmask)
                            for i, j in pairs]).mean()
        (ce + kl + hidden + attn).backward()
        student.zero_grad(set_to_none=True)

    return step


def _ours_step(shape: Shape, attn: bool = True, cache: str = ""):
    from tinywave.distill.teacher_cache import CachedTeacher
    from tinywave.distill.losses import IGNORE_INDEX
    from tinywave.distill.objective import DistillObjective, LossWeights
    from tinywave.distill.teacher import OnlineTeacher
    from tinywave.distill.fused import use_qk_attention

    teacher, student = _models(shape)
    pairs = _pairs(shape)
    mapped = [t for _, t in pairs]
    if cache:
        targets = CachedTeacher(cache, TEMPERATURE, mapped)
    else:
        targets = OnlineTeacher(teacher, mapped, mapped if attn else (), logits=True)
    if attn:
        use_qk_attention(student)  # SDPA recording the mapped layers' queries and keys
    weights = LossWeights(ce=1.0, kl=1.0, hidden=1.0, attn=1.0 if attn else 0.0, temperature=TEMPERATURE, chunk_size=shape.chunk)
    objective = DistillObjective(student, weights, pairs, targets)
    batch = _batch(shape)
    n = float((batch["labels"] != IGNORE_INDEX).sum())

    def step():
        objective(batch, n)["loss"].backward()
        student.zero_grad(set_to_none=True)

    return step


def _teacher_forward(shape: Shape):
    teacher, _ = _models(shape)
    batch = _batch(shape)

    def step():
        with torch.no_grad():
            teacher(batch["input_ids"], attention_mask=batch["attention_mask"]).logits.sum()

    return step


def _student_ce(shape: Shape):
    _, student = _models(shape)
    batch = _batch(shape)

    def step():
        student(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["input_ids"]).loss.backward()
        student.zero_grad(set_to_none=True)

    return step


VARIANTS = {
    "naive": _naive_step,
    "ours": _ours_step,
    "teacher_fwd": _teacher_forward,
    "student_ce": _student_ce,
    "online_no_attn": lambda shape: _ours_step(shape, attn=False),
}


def _child(name: str, shape: Shape, repeats: int, threads: int, cache: str, queue) -> None:
    torch.set_num_threads(threads)
    step = _ours_step(shape, attn=False, cache=cache) if name == "cached" else VARIANTS[name](shape)
    base = _rss_now_mb()
    t0 = time.perf_counter()
    step()  # warm-up, and the memory high-water mark
    first = time.perf_counter() - t0
    peak = _rss_peak_mb() - base
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    gflops = matmul_gflops(threads, n=1024, repeats=4)  # this process's GEMM rate, in the conditions of its steps
    queue.put((name, statistics.median(times) if times else first, peak, gflops))


def _run(name: str, shape: Shape, repeats: int, threads: int, cache: str = "") -> tuple[float, float, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, shape, repeats, threads, cache, queue))
    proc.start()
    _, seconds, mb, gflops = queue.get()
    proc.join()
    print(f"   {name:15s} {seconds * 1000:9.0f} ms/step   peak +{mb:7.0f} MB   (GEMM {gflops:.1f} GFLOP/s here)", flush=True)
    return seconds, mb, gflops


def _build_cache(shape: Shape, folder: Path) -> str:
    """A teacher cache over the benchmark batch's rows (built here, outside the measured processes)."""
    from tinywave.data.shards import ShardDataset, write_shards
    from tinywave.distill.teacher_cache import CacheSettings, build_cache

    batch = _batch(shape)
    docs = [row[: int(m.sum())].tolist() for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    write_shards(folder / "shards", docs, shape.seq, "bench", shape.vocab, 0, bos_id=1, eos_id=2)
    teacher, _ = _models(shape)
    settings = CacheSettings(top_k=shape.top_k, temperatures=(TEMPERATURE,), logit_dtype="fp16",
                             hidden_layers=tuple(shape.keep), hidden_dtype="bf16", batch_size=shape.batch, chunk_size=shape.chunk)
    build_cache(teacher, ShardDataset(folder / "shards"), folder / "cache", settings)
    return str(folder / "cache")


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 GEMM rate (n x n x n) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def model_flops(shape: Shape) -> tuple[float, float]:
    """(student training FLOPs, teacher forward FLOPs) of one step, PaLM accounting."""
    teacher, student = _models(shape)
    tokens = shape.batch * shape.seq

    def n_params(m):  # every weight but the input embedding (a lookup)
        return sum(p.numel() for p in m.parameters()) - m.get_input_embeddings().weight.numel()

    attn = 12 * shape.width * shape.seq  # per layer and token, forward + backward
    student_flops = tokens * (6 * n_params(student) + attn * len(shape.keep))
    teacher_flops = tokens * (2 * n_params(teacher) + attn / 3 * shape.teacher_layers)
    return student_flops, teacher_flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes (smoke run)")
    ap.add_argument("--repeats", type=int, default=2, help="timed steps per variant after the warm-up")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in every measured process")
    ap.add_argument("--batch", type=int, default=0, help="rows per step (default: 2); the last row is 1/4 padding")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/distill_step.json)")
    args = ap.parse_args()
    shape = QUICK if args.quick else Shape()
    if args.batch:
        shape = dataclasses.replace(shape, batch=args.batch)
    tokens = shape.batch * shape.seq
    print(f"distillation step: V={shape.vocab}, batch {shape.batch} x {shape.seq} tokens, teacher {shape.teacher_layers} x "
          f"{shape.width}, student layers {list(shape.keep)}, {args.threads} thread(s)")
    gflops = matmul_gflops(args.threads)
    print(f"   float32 GEMM 2048^3: {gflops:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        cache = _build_cache(shape, Path(tmp))
        r = {name: _run(name, shape, args.repeats, args.threads) for name in VARIANTS}
        r["cached"] = _run("cached", shape, args.repeats, args.threads, cache)
    s_flops, t_flops = model_flops(shape)
    t = {k: v[0] for k, v in r.items()}
    m = {k: v[1] for k, v in r.items()}
    floor = t["teacher_fwd"] + t["student_ce"]
    print("\nagainst the targets:")
    print(f"   naive / ours time     = {t['naive'] / t['ours']:.2f}x   (target >= 2x)")
    print(f"   ours / naive memory   = {m['ours'] / max(m['naive'], 1e-9):.2f}x   (target <= 0.5x)")
    print(f"   ours / (teacher fwd + student CE) = {t['ours'] / floor:.2f}x   (target <= 1.15x)")
    saved, share = (t["online_no_attn"] - t["cached"]) / t["online_no_attn"], t["teacher_fwd"] / t["online_no_attn"]
    print(f"   cached step saves {saved:.0%} of the online step; the teacher forward is {share:.0%} of it (target: saved >= share)")
    print(f"   cached / online time = {t['cached'] / t['online_no_attn']:.2f}x, memory {m['cached']:.0f} vs {m['online_no_attn']:.0f} MB")
    mfu = {}
    for name, flops in (("ours", s_flops + t_flops), ("naive", s_flops + t_flops), ("cached", s_flops)):
        achieved, rate = flops / t[name] / 1e9, r[name][2]
        mfu[name] = achieved / rate
        print(f"   {name:7s} {tokens / t[name]:8.0f} tokens/s, {achieved:6.1f} model GFLOP/s = {achieved / rate:.0%} of the GEMM rate "
              f"measured in the same process ({rate:.1f} GFLOP/s; MFU)")
    write(args, shape, t, m, floor, saved, share, mfu, tokens)


def write(args: argparse.Namespace, shape: Shape, t: dict, m: dict, floor: float, saved: float, share: float, mfu: dict,
          tokens: int) -> None:
    from conditions import conditions
    from record import figure, write_results

    figures = [figure("naive / ours step time", t["naive"] / t["ours"], "x", (">=", 2.0)),
               figure("ours / naive peak memory", m["ours"] / max(m["naive"], 1e-9), "x", ("<=", 0.5)),
               figure("ours / (teacher forward + student CE) step time", t["ours"] / floor, "x", ("<=", 1.15)),
               figure("cached step: share of the online step saved", saved, "", (">=", round(share, 4)),
                      "target: the teacher forward's share of the online step"),
               figure("cached / online step time", t["cached"] / t["online_no_attn"], "x")]
    figures += [figure(f"{name}: step time", sec * 1000, "ms/step") for name, sec in t.items()]
    figures += [figure(f"{name}: peak memory added by the step", mb, "MB") for name, mb in m.items()]
    figures += [figure(f"{name}: tokens per second", tokens / t[name], "tok/s") for name in mfu]
    figures += [figure(f"{name}: model FLOPs utilisation", u, "", target=(">=", 0.5) if name == "ours" else None,
                       note="of the float32 GEMM rate measured in the same process") for name, u in mfu.items()]
    write_results("distill_step", figures, conditions("fp32", args.threads), args.out, quick=args.quick,
                  shape=dataclasses.asdict(shape), repeats=args.repeats)


if __name__ == "__main__":
    main()
