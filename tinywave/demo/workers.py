"""Stage recipes in child processes, several at once: the demo's student runs on a 2-core CPU.

A 2-layer x 256 student step does not scale to two threads: on a 2-core AMD EPYC (fp32),
two runs of one thread each train more steps per second than one two-thread run at a time
(benchmarks/parallel_runs.py, its figure in benchmarks/results/parallel_runs.json). So the demo trains
``student.parallel_runs`` runs at once, each in its own process with ``cores // runs``
threads, and writes each child's output to a log file beside its run.

    python -m tinywave.demo.workers distill '{"teacher": {...}, ...}'   # what a child runs
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tinywave.demo.stages import call

log = logging.getLogger(__name__)


def threads_per_run(runs: int, cores: int | None = None) -> int:
    """Torch threads for each of ``runs`` concurrent runs on ``cores`` cores (os.cpu_count() by default)."""
    if runs < 1:
        raise ValueError(f"parallel runs must be at least 1, got {runs}; set student.parallel_runs=1 to train one run at a time")
    return max(1, (cores or os.cpu_count() or 1) // runs)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch's intra-op threads set to ``threads`` (> 0) inside the block and restored after it; 0 leaves them."""
    import torch  # lazy: torch takes ~1.4 s to import; the demo recipe imports this module at its top

    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def call_in_child(module: str, threads: int, log_path: Path, **sections: Any) -> None:
    """`call(module, **sections)` in a new Python process with ``threads`` torch threads; its output goes to ``log_path``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TINYWAVE_PROGRESS": "0"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as out:
        code = subprocess.run([sys.executable, "-m", __name__, module, json.dumps(sections)], env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False).returncode
    if code:
        raise RuntimeError(f"stage `tinywave {module}` failed in a child process (exit code {code}); its output is in {log_path}")


def run_jobs(jobs: Sequence[tuple[str, Callable[[], Any]]], at_once: int) -> None:
    """Run named jobs, ``at_once`` at a time (1: in order, here). Every job runs even if another fails;
    then the failures are raised together, naming each job."""
    if at_once <= 1:
        for _, job in jobs:
            job()
        return
    failed: list[str] = []
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        futures = [(name, pool.submit(job)) for name, job in jobs]
        for name, future in futures:
            try:
                future.result()
            except Exception as err:  # noqa: BLE001 -- collected and re-raised below with every failure named
                log.error("%s failed: %s", name, err)
                failed.append(f"{name}: {err}")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} jobs failed (the others finished and are kept; rerun to retry):\n"
                           + "\n".join(failed))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tinywave.demo.workers MODULE JSON_SECTIONS", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("TINYWAVE_LOG", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    call(args[0], **json.loads(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
