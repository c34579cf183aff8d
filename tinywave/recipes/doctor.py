"""Recipe: check the environment and print what to fix.

    tinywave doctor [--out DIR]

Each check prints ok / warn / FAIL with the fix; the exit code is 1 when any check fails.
"""

from __future__ import annotations

import ctypes.util
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinywave.config import field

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Config:
    out: str = field(".", help="output folder whose disk space and write permission are checked")
    min_free_gb: float = field(5.0, help="warn below this much free disk space (GB)")


def check_python() -> tuple[str, str]:
    v = sys.version_info
    if v < (3, 11):
        return FAIL, f"Python {v.major}.{v.minor}: tinywave needs Python >= 3.11"
    return OK, f"Python {v.major}.{v.minor}.{v.micro}"


def check_torch() -> tuple[str, str]:
    try:
        import torch  # lazy: this checks that torch is installed; doctor must run (and say so) without it
    except ImportError:
        return FAIL, "torch is not installed: pip install torch==2.13.0 (the CPU build), or run `make test` once"
    threads = torch.get_num_threads()
    cores = os.cpu_count() or 1
    cuda = torch.cuda.is_available()
    msg = f"torch {torch.__version__}, {threads} threads on {cores} cores, CUDA {'available' if cuda else 'not available'}"
    if threads > cores:
        return WARN, msg + f"; set OMP_NUM_THREADS={cores}"
    return OK, msg


def check_packages() -> tuple[str, str]:
    missing = []
    for name in ("transformers", "tokenizers", "safetensors", "peft", "sklearn", "soundfile", "soxr", "pyworld", "yaml", "matplotlib"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        return FAIL, f"missing packages {missing}: run `pip install -e .` in the project (or `make test`)"
    import transformers  # lazy: transformers is heavy (~3 s); doctor reports its version once the imports above succeeded

    return OK, f"transformers {transformers.__version__} and the other dependencies import"


def check_espeak() -> tuple[str, str]:
    lib = ctypes.util.find_library("espeak-ng")
    if lib is None:
        return FAIL, "libespeak-ng is missing (needed to synthesize the embedded corpus): apt-get install espeak-ng"
    try:
        ctypes.CDLL(lib)
    except OSError as exc:
        return FAIL, f"{lib} does not load ({exc}): reinstall espeak-ng"
    if shutil.which("espeak-ng") is None:
        return WARN, f"{lib} loads but the espeak-ng command is not on PATH: apt-get install espeak-ng"
    return OK, f"{lib} loads, espeak-ng command on PATH"


def check_threads() -> tuple[str, str]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp and (not omp.isdigit() or int(omp) < 1):
        return FAIL, f"OMP_NUM_THREADS={omp!r} is not a positive integer: unset it or set OMP_NUM_THREADS={cores}"
    if omp and int(omp) > cores:
        return WARN, f"OMP_NUM_THREADS={omp} is more than the {cores} usable cores: set OMP_NUM_THREADS={cores}"
    return OK, f"{cores} usable cores, OMP_NUM_THREADS={omp or 'unset (torch picks)'}"


def check_reproducible() -> tuple[str, str]:
    """Bit-identical resumes on CPU need MKL's strict reproducibility mode (docs/RELIABILITY.md)."""
    try:
        import torch  # lazy: torch may be missing (the torch line says so); doctor must run without it
    except ImportError:
        return WARN, "torch is not installed (see the torch line): reproducibility not checked"
    if not torch.backends.mkl.is_available():
        return OK, "torch does not use MKL: CPU runs are reproducible with one thread"
    cbwr = os.environ.get("MKL_CBWR", "")
    if "STRICT" in cbwr.upper():
        return OK, f"MKL_CBWR={cbwr}: a resumed CPU run is bit-identical to an uninterrupted one"
    return OK, ("MKL_CBWR is not strict: a resumed CPU run matches an uninterrupted one to ~1e-7 only; "
                "for bit-identical resumes export MKL_CBWR=AUTO,STRICT (and OMP_NUM_THREADS=1)")


def check_disk(out: Path, min_free_gb: float) -> tuple[str, str]:
    target = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    free = shutil.disk_usage(target if target.is_dir() else target.parent).free / 1e9
    if free < min_free_gb:
        return WARN, f"{free:.1f} GB free at {target}: the demo needs ~2 GB, a real run much more; free space or choose another --out"
    return OK, f"{free:.1f} GB free at {target}"


def check_writable(out: Path) -> tuple[str, str]:
    target = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not target.is_dir():
        return FAIL, f"{target} is a file, not a folder: choose another --out"
    try:
        with tempfile.NamedTemporaryFile(dir=target):
            pass
    except OSError as exc:
        return FAIL, f"cannot write in {target} ({exc.strerror}): choose a writable --out or fix its permissions"
    return OK, f"{target} is writable"


def run(cfg: Config) -> int:
    out = Path(cfg.out)
    checks: dict[str, Callable[[], tuple[str, str]]] = {
        "python": check_python,
        "torch": check_torch,
        "threads": check_threads,
        "resume": check_reproducible,
        "packages": check_packages,
        "espeak-ng": check_espeak,
        "disk": lambda: check_disk(out, cfg.min_free_gb),
        "write": lambda: check_writable(out),
    }
    worst = OK
    for name, check in checks.items():
        status, message = check()
        print(f"[{status:>4}] {name:<9} {message}")
        worst = FAIL if FAIL in (worst, status) else (WARN if WARN in (worst, status) else OK)
    print({OK: "all good", WARN: "usable, see the warnings above", FAIL: "fix the FAIL lines above"}[worst])
    return 1 if worst == FAIL else 0
