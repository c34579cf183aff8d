"""Ordered parallel map over worker processes that each build their worker function once.

``factory`` is a picklable zero-argument callable (a class or ``functools.partial``)
returning the per-item function; each spawned worker calls it once (loading a tokenizer
or a model) with BLAS/OpenMP and torch limited to one thread, so ``workers`` processes
use ``workers`` cores. Results come back in input order, so a job's output order does
not depend on scheduling; at most ``4 * workers`` items are in flight. ``workers <= 1``
runs in this process (no spawn cost), also with one BLAS thread, so results are
bit-identical whatever ``workers`` is.

A worker that cannot start re-raises its error in the caller (instead of being respawned
forever); a worker that dies (killed, out of memory) raises ``BrokenProcessPool``.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from threadpoolctl import threadpool_limits

_WORKER: Callable[[Any], Any] | None = None
_INIT_ERROR: BaseException | None = None
_LIMITS: Any = None


def _set_torch_threads() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # torch may be imported lazily by the first item


def _init(factory: Callable[[], Callable[[Any], Any]], log_level: int) -> None:
    global _WORKER, _INIT_ERROR, _LIMITS
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    _LIMITS = threadpool_limits(1)  # kept alive for the worker's lifetime
    try:
        _WORKER = factory()
    except Exception as exc:  # reported by the first task, in the caller
        _INIT_ERROR = exc
    _set_torch_threads()


def _call(item: Any) -> Any:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _WORKER is not None, "worker used before its initializer ran"
    _set_torch_threads()
    return _WORKER(item)


def ordered_map(factory: Callable[[], Callable[[Any], Any]], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """``factory()(item)`` for every item, in order, on ``workers`` spawned processes."""
    if workers <= 1:
        fn = factory()
        with threadpool_limits(1):
            yield from map(fn, items)
        return
    ctx = mp.get_context("spawn")  # fork is unsafe with torch/OpenMP threads already started
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(factory, logging.getLogger().getEffectiveLevel()))
    try:
        source = iter(items)
        pending: collections.deque[Future] = collections.deque(pool.submit(_call, it) for _, it in zip(range(4 * workers), source))
        while pending:
            result = pending.popleft().result()
            for item in source:  # refill one slot
                pending.append(pool.submit(_call, item))
                break
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
