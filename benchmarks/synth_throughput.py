"""Synthesis throughput of the embedded corpus: seconds of audio per wall-clock second.

    .venv/bin/python benchmarks/synth_throughput.py [--stories 60] [--workers 2] [--out results.json]

Measured side by side in one run, on the same stories:
  1. the full corpus pipeline (`run_jobs`: forked espeak children, 22.05 -> 16 kHz,
     timings, wav files, journal) with --workers processes  (target >= 300x with 2),
  2. the same pipeline with one process,
  3. espeak-ng alone in one process (no fork, no resampling, no files): the ceiling.
Prints each figure and the ratios, and the CPU seconds spent (this process and all
its children): on a shared machine the wall-clock figures scale with the CPU share
you actually get, while audio per CPU second does not. Writes the figures and the
conditions to ``benchmarks/results/synth_throughput.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
os.environ.setdefault("TINYWAVE_PROGRESS", "0")
TARGET = 300.0  # seconds of audio per wall second with 2 workers

from tinywave.corpus import espeak  # noqa: E402
from tinywave.corpus.synth import run_jobs  # noqa: E402
from tinywave.corpus.training import CHUNK, plan_corpus  # noqa: E402
from tinywave.corpus.voices import DEFAULT_TRAINING_VOICES  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and of every finished child (pool workers, espeak children)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pipeline(plan: list, workers: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="tw-synth-bench-") as tmp:
        cpu, start = cpu_seconds(), time.perf_counter()
        stats = run_jobs([p.job for p in plan], tmp, "bench", workers, CHUNK, desc=f"{workers} worker(s)")
        return stats.audio_seconds, time.perf_counter() - start, cpu_seconds() - cpu


def espeak_alone(plan: list) -> tuple[float, float, float]:
    """Raw in-process synthesis of every sentence (state carries over: speed only)."""
    eng = espeak.engine()
    ctypes.CDLL(None).srand(0)
    samples, cpu, start = 0, cpu_seconds(), time.perf_counter()
    for p in plan:
        d = p.delivery
        for sentence in p.job.params["sentences"]:
            samples += len(eng.synth(espeak.Segment(sentence), d.voice, d.pitch, d.rate, d.pitch_range)["samples"])
    return samples / eng.rate, time.perf_counter() - start, cpu_seconds() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stories", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/synth_throughput.json)")
    args = ap.parse_args()
    plan = plan_corpus(args.seed, args.stories, DEFAULT_TRAINING_VOICES)
    print(f"{args.stories} stories, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the run")
    rows = {
        f"pipeline, {args.workers} workers": pipeline(plan, args.workers),
        "pipeline, 1 worker": pipeline(plan, 1),
        "espeak alone, 1 process": espeak_alone(plan),
    }
    speed = {}
    for name, (audio, wall, cpu) in rows.items():
        speed[name] = audio / wall
        print(f"{name:28s} {audio:7.0f} s audio in {wall:6.1f} s wall = {speed[name]:5.0f} s audio / s;"
              f" {cpu:6.1f} CPU s = {audio / cpu:5.0f} s audio / CPU s")
    names = list(rows)
    print(f"parallel speed-up ({names[0]} / {names[1]}): {speed[names[0]] / speed[names[1]]:.2f}x")
    print(f"pipeline overhead ({names[2]} / {names[1]}): {speed[names[2]] / speed[names[1]]:.2f}x")
    print(f"target >= {TARGET:.0f} s audio / s with 2 workers: {'met' if speed[names[0]] >= TARGET else 'NOT met'} "
          f"(load average now {os.getloadavg()[0]:.1f})")
    write(args, rows, speed)


def write(args: argparse.Namespace, rows: dict[str, tuple[float, float, float]], speed: dict[str, float]) -> None:
    from conditions import conditions
    from record import figure, write_results

    names = list(rows)
    figures = []
    for name, (audio, wall, cpu) in rows.items():
        target = (">=", TARGET) if name == names[0] and args.workers == 2 else None
        figures += [figure(f"{name}: audio per wall second", speed[name], "x real time", target),
                    figure(f"{name}: audio per CPU second", audio / cpu, "x real time")]
    figures += [figure(f"parallel speed-up ({names[0]} / {names[1]})", speed[names[0]] / speed[names[1]], "x"),
                figure(f"pipeline overhead ({names[2]} / {names[1]})", speed[names[2]] / speed[names[1]], "x")]
    write_results("synth_throughput", figures, conditions("n/a (espeak-ng synthesis, no torch model)", args.workers),
                  args.out, stories=args.stories, seed=args.seed,
                  rows={k: {"audio_seconds": a, "wall_seconds": w, "cpu_seconds": c} for k, (a, w, c) in rows.items()})


if __name__ == "__main__":
    main()
