"""Side-by-side timing for benchmarks/: variants alternate within each round, so a change of machine load hits all alike.

    from timing import alternating_medians       # scripts in benchmarks/ put their folder on sys.path
    med, times = alternating_medians(lambda v: step_seconds(x, v), ["plain", "windowed"], rounds=9)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence


def alternating_medians(step: Callable[[str], float], variants: Sequence[str], rounds: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(median seconds per variant, every timing) of ``rounds`` rounds of ``step(variant)`` for each variant in turn,
    after one untimed warm-up call of each."""
    for v in variants:
        step(v)
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            times[v].append(step(v))
    return {v: statistics.median(t) for v, t in times.items()}, times
