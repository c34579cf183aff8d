"""The conditions every benchmark result is written with: machine, threads, precision, versions, commit, date.

    from conditions import conditions          # scripts in benchmarks/ put their folder on sys.path
    out = {"figures": ..., "conditions": conditions(precision="bf16")}

Figures measured on different CPUs (AMX / avx512_bf16 or not), thread counts or loads are not
comparable; a result file without these fields cannot be traced to a run.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # the ones that decide bf16 vs fp32 speed


def cpu_model() -> tuple[str, list[str]]:
    """(model name, the FLAGS this CPU has) from /proc/cpuinfo (platform names elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return name, [f for f in FLAGS if f in flags]


def git_commit() -> str:
    """Short HEAD commit, with ``+dirty`` when tracked files differ from it."""
    run = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()  # noqa: E731
    commit = run("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")


def conditions(precision: str, threads: int | None = None, **extra: Any) -> dict[str, Any]:
    import torch

    name, flags = cpu_model()
    return {"cpu": name, "cpu_flags": flags, "cores": os.cpu_count(), "threads": threads or torch.get_num_threads(),
            "precision": precision, "torch": torch.__version__, "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **extra}
