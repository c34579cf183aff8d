"""Choose fp32 or bf16 autocast for this CPU by measuring, not by assuming.

On CPUs with AMX or avx512_bf16 a bf16-autocast training step of the demo's models is
~1.5-1.8x faster than fp32; on CPUs without them it is several times slower. ``auto``
times the same matmul chain (the shapes of a 256-wide decoder layer on 4096 tokens) in
both precisions, alternately, a few repetitions each after a warm-up, and keeps bf16 only
when it is clearly faster.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

CHOICES = ("auto", "fp32", "bf16")
MIN_SPEEDUP = 1.15  # bf16 must beat fp32 by this much to be chosen (timing noise on a busy machine)


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32" | "bf16"
    reason: str
    bf16_speedup: float | None = None  # fp32 time / bf16 time, when measured
    cpu_flags: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU flags that speak for fast bf16 (Linux /proc/cpuinfo; empty elsewhere)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return ()
    flags = set()
    for line in info.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return tuple(sorted(f for f in flags if f in {"avx512_bf16", "amx_bf16", "amx_tile"}))


CHAIN_ROUNDS = 4  # rounds of three matmuls per timed run of matmul_chain


def chain_flops(tokens: int = 4096, width: int = 256, ffn: int = 704) -> float:
    """Floating-point operations of one timed run of :func:`matmul_chain` with these shapes."""
    return 2.0 * tokens * width * ffn * 3 * CHAIN_ROUNDS


def matmul_chain(dtype, tokens: int = 4096, width: int = 256, ffn: int = 704):
    """A forward+backward-like matmul chain in ``dtype`` (the shapes of a 256-wide decoder layer);
    calling the result runs it once and returns its seconds."""
    import torch  # lazy: torch is heavy (~1.4 s); the demo recipes import this module at their top without it

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, width, generator=gen).to(dtype)
    w1 = torch.randn(width, ffn, generator=gen).to(dtype)
    w2 = torch.randn(ffn, width, generator=gen).to(dtype)

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(CHAIN_ROUNDS):
            h = x @ w1  # [tokens, ffn]
            y = h @ w2  # [tokens, width]
            _ = y.T @ h  # [width, ffn]: a weight-gradient shape
        return time.perf_counter() - t0

    return run


SLOW_PROBE = 0.5  # a first, small probe below this speed-up settles it: no bf16 (its full timing would take minutes)


def measure_bf16_speedup(reps: int = 7) -> float:
    """fp32 seconds / bf16 seconds of the same matmul chain (> 1: bf16 is faster here).

    The two precisions are timed alternately and each keeps its best repetition, so a load
    that comes and goes (another job on a shared machine) hits both alike rather than one.
    A probe on an eighth of the tokens comes first: where bf16 is emulated (CPUs without
    avx512_bf16/AMX run it at a few percent of fp32's speed) the full timing would take over
    a minute, and the probe's answer is already clear.
    """
    import torch  # lazy: torch is heavy (~1.4 s); the demo recipes import this module at their top without it

    small32, small16 = matmul_chain(torch.float32, tokens=512), matmul_chain(torch.bfloat16, tokens=512)
    small32(), small16()  # warm-up
    probe = small32() / small16()
    if probe < SLOW_PROBE:
        return probe
    fp32, bf16 = matmul_chain(torch.float32), matmul_chain(torch.bfloat16)
    fp32(), bf16()  # warm-up: kernels, caches
    best32 = best16 = float("inf")
    for _ in range(reps):
        best32, best16 = min(best32, fp32()), min(best16, bf16())
    return best32 / best16


def choose_precision(requested: str) -> Precision:
    """``fp32``/``bf16`` as asked; ``auto``: bf16 only when measured clearly faster on this CPU."""
    if requested not in CHOICES:
        raise ValueError(f"precision={requested!r} is not known; choose one of {CHOICES}")
    flags = cpu_bf16_flags()
    if requested != "auto":
        return Precision(requested, f"precision={requested} was asked for", cpu_flags=flags)
    speedup = measure_bf16_speedup()
    if speedup >= MIN_SPEEDUP:
        return Precision("bf16", f"auto: bf16 matmuls measured {speedup:.2f}x faster than fp32 on this CPU", round(speedup, 2), flags)
    return Precision("fp32", f"auto: bf16 matmuls measured {speedup:.2f}x the speed of fp32 on this CPU (not faster), so fp32",
                     round(speedup, 2), flags)
