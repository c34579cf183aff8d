"""The machine a demo ran on, for its report: CPU model, cores and a measured fp32 matmul rate.

A wall time compares across machines only with their speed beside it: the same demo took
32.1 minutes on one 2-core AMD EPYC and 33.5 on another that ran the demo's own student steps
1.18x slower (README, "What the demo measures"). ``fp32_gflops`` is the rate of the matmul
chain of tinywave/demo/precision.py (the shapes of a 256-wide decoder layer on 4096 tokens)
in float32 at the process's torch thread count, best of a few repetitions after a warm-up.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from tinywave.demo.precision import chain_flops, matmul_chain


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform reports, else "unknown"."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def fp32_gflops(reps: int = 5) -> float:
    """GFLOP/s of the float32 matmul chain, best of ``reps`` timed runs after one warm-up."""
    import torch  # lazy: torch is heavy (~1.4 s); the demo recipe imports this module at its top without it

    run = matmul_chain(torch.float32)
    run()  # warm-up: kernels, caches
    best = min(run() for _ in range(max(1, reps)))
    return chain_flops() / best / 1e9


def describe_machine() -> dict[str, Any]:
    """{"cpu", "cores", "torch_threads", "fp32_gflops"} of this process's machine, measured now."""
    import torch  # lazy: as above

    return {"cpu": cpu_model(), "cores": os.cpu_count() or 1, "torch_threads": torch.get_num_threads(),
            "fp32_gflops": round(fp32_gflops(), 1)}
