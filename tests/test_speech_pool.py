"""The ordered worker pool: order, start-up errors and dying workers never hang a job."""

import functools
import os
from concurrent.futures.process import BrokenProcessPool

import pytest

from tinywave.speech.pool import ordered_map


class Scale:
    """A worker function built once per process."""

    def __init__(self, factor: int, fail_on_start: bool = False):
        if fail_on_start:
            raise ValueError("cannot load the tokenizer: settings are broken")
        self.factor = factor

    def __call__(self, item: int) -> tuple[int, int]:
        if item < 0:
            os._exit(3)  # a worker killed mid-job (out of memory, segfault)
        return item * self.factor, os.getpid()


def test_in_process_and_workers_give_the_same_ordered_results():
    items = list(range(23))
    local = [r for r, _ in ordered_map(functools.partial(Scale, 3), items, workers=1)]
    results = list(ordered_map(functools.partial(Scale, 3), items, workers=2))
    assert [r for r, _ in results] == local == [3 * i for i in items]
    assert os.getpid() not in {pid for _, pid in results}


@pytest.mark.timeout(120)
def test_a_worker_that_cannot_start_raises_its_error():
    with pytest.raises(ValueError, match="settings are broken"):
        list(ordered_map(functools.partial(Scale, 1, True), range(5), workers=2))


@pytest.mark.timeout(120)
def test_a_dying_worker_breaks_the_pool_instead_of_hanging():
    with pytest.raises(BrokenProcessPool):
        list(ordered_map(functools.partial(Scale, 1), [1, 2, -1, 4, 5, 6], workers=2))
