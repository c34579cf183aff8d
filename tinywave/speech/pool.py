"""Ordered parallel map over worker processes that each build their worker function once.

``factory`` is a picklable zero-argument callable (a class or ``functools.partial``)
returning the per-item function; each spawned worker calls it once (loading a tokenizer
or a model) with BLAS/OpenMP and torch limited to one thread, so ``workers`` processes
use ``workers`` cores. Results come back in input order, so a job's output order does
not depend on scheduling. ``workers <= 1`` runs in this process (no spawn cost), also
with one BLAS thread, so results are bit-identical whatever ``workers`` is.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_WORKER: Callable[[Any], Any] | None = None
_LIMITS: Any = None


def _init(factory: Callable[[], Callable[[Any], Any]], log_level: int) -> None:
    global _WORKER, _LIMITS
    from threadpoolctl import threadpool_limits

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    _LIMITS = threadpool_limits(1)  # kept alive for the worker's lifetime
    _WORKER = factory()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _call(item: Any) -> Any:
    assert _WORKER is not None, "worker used before its initializer ran"
    if "torch" in sys.modules and sys.modules["torch"].get_num_threads() != 1:
        sys.modules["torch"].set_num_threads(1)  # torch imported lazily by the first item
    return _WORKER(item)


def ordered_map(factory: Callable[[], Callable[[Any], Any]], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``factory()(item)`` for every item, in order, on ``workers`` spawned processes."""
    if workers <= 1:
        from threadpoolctl import threadpool_limits

        fn = factory()
        with threadpool_limits(1):  # same arithmetic as in a worker: results do not depend on `workers`
            yield from map(fn, items)
        return
    ctx = mp.get_context("spawn")  # fork is unsafe with torch/OpenMP threads already started
    with ctx.Pool(workers, initializer=_init, initargs=(factory, logging.getLogger().getEffectiveLevel())) as pool:
        yield from pool.imap(_call, items, chunksize=1)
