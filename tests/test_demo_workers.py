"""Stage recipes in child processes, several at once (tinywave/demo/workers.py)."""

from __future__ import annotations

import threading
import time

import pytest

from tinywave.demo.workers import call_in_child, run_jobs, threads_per_run


def test_threads_per_run_shares_the_cores():
    assert threads_per_run(2, cores=2) == 1
    assert threads_per_run(2, cores=8) == 4
    assert threads_per_run(3, cores=2) == 1  # never zero threads
    with pytest.raises(ValueError, match="student.parallel_runs=1"):
        threads_per_run(0, cores=2)


def test_jobs_run_at_once_and_a_failure_loses_none_of_the_others():
    running, peak, done = [0], [0], []
    lock = threading.Lock()

    def job(name: str, fail: bool = False):
        def run():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.2)
            with lock:
                running[0] -= 1
            if fail:
                raise ValueError(f"{name} broke")
            done.append(name)
        return run

    jobs = [("a", job("a")), ("b", job("b", fail=True)), ("c", job("c")), ("d", job("d"))]
    with pytest.raises(RuntimeError, match=r"1 of 4 jobs failed[\s\S]*b: b broke"):
        run_jobs(jobs, at_once=2)
    assert sorted(done) == ["a", "c", "d"] and peak[0] == 2


def test_a_failing_child_names_its_log(tmp_path):
    log = tmp_path / "run" / "stdout.log"
    with pytest.raises(RuntimeError, match=r"failed in a child process[\s\S]*stdout.log"):
        call_in_child("no_such_recipe", 1, log, train={})
    assert "no_such_recipe" in log.read_text()  # the child's traceback is kept
