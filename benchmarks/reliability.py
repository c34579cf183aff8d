"""What the reliability guarantees cost: side-by-side timings in one run.

    .venv/bin/python benchmarks/reliability.py [--mb 20] [--repeats 5] [--lines 2000]

1. Checkpoint save: the real ``save_checkpoint`` (temporary folder, fsync of every file,
   rename, fsync of the parent) against plain ``torch.save``/``save_file`` into a folder.
2. Checkpoint load: ``safeload.load_torch`` (weights-only unpickler) against
   ``torch.load(weights_only=False)`` (full unpickling) of the same optimizer file.
3. Refusing a poisoned file: time to refuse it (weights-only attempt + opcode scan).
4. Output lines: ``JsonlAppender`` with an fsync per write (what tokenize does per record)
   against the same appender without fsync.

Figures are medians of ``--repeats`` runs; on a shared machine expect noise of +-20%. Writes
the figures and the conditions to ``benchmarks/results/reliability.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from tinywave.training.checkpoint import save_checkpoint  # noqa: E402
from tinywave.files import JsonlAppender  # noqa: E402
from tinywave.safeload import UnsafeFileError, load_torch  # noqa: E402

LINE_BUDGET_US = 10 / 200 * 1e6  # one tokenized ~10 s utterance at 200x real time


class Payload:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, but not allowed by the weights-only unpickler


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_save(root: Path, mb: float, repeats: int) -> tuple[float, float]:
    n = int(mb * 1e6 / 4 / 2)  # half in the weights, half in the optimizer moments
    weights = {"w": torch.randn(n)}
    param = torch.nn.Parameter(weights["w"].clone())
    opt = torch.optim.AdamW([param])
    param.grad = torch.randn(n) * 0.0  # moments the size of the weights
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    step = iter(range(1, 10_000))

    def atomic():
        save_checkpoint(root / "atomic", next(step), lambda d: save_file(weights, str(d / "model.safetensors")),
                        opt, sched, {"step": 0}, config={}, keep=1)

    def plain():
        d = root / "plain"
        d.mkdir(exist_ok=True)
        save_file(weights, str(d / "model.safetensors"))
        torch.save(opt.state_dict(), d / "optimizer.pt")
        torch.save(sched.state_dict(), d / "scheduler.pt")

    return median_seconds(atomic, repeats), median_seconds(plain, repeats)


def bench_load(root: Path, repeats: int) -> tuple[float, float, float]:
    path = root / "atomic"
    opt_file = sorted(path.glob("checkpoints/step_*"))[-1] / "optimizer.pt"
    safe = median_seconds(lambda: load_torch(opt_file), repeats)
    full = median_seconds(lambda: torch.load(opt_file, weights_only=False), repeats)
    poisoned = root / "poisoned.pt"
    torch.save({"w": torch.zeros(1000), "x": Payload()}, poisoned)

    def refuse():
        try:
            load_torch(poisoned)
        except UnsafeFileError:
            return
        raise AssertionError("the poisoned file loaded")

    return safe, full, median_seconds(refuse, repeats)


def bench_lines(root: Path, lines: int, repeats: int) -> tuple[float, float]:
    record = {"id": "utt", "speech": "[Hu12][Hu7]" * 40, "frames": {"hubert": 80}}

    def write(fsync: bool):
        path = root / f"lines_{fsync}.jsonl"
        path.unlink(missing_ok=True)
        with JsonlAppender(path, fsync=fsync) as out:
            for i in range(lines):
                out.write({**record, "id": f"utt{i}"})

    return median_seconds(lambda: write(True), repeats) / lines, median_seconds(lambda: write(False), repeats) / lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=20.0, help="checkpoint size (weights + optimizer), MB")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/reliability.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="tw-bench-rel-") as tmp:
        root = Path(tmp)
        atomic, plain = bench_save(root, args.mb, args.repeats)
        print(f"checkpoint save ({args.mb:.0f} MB): atomic+fsync {atomic * 1e3:.1f} ms, plain {plain * 1e3:.1f} ms, "
              f"ratio {atomic / plain:.2f}x")
        safe, full, refuse = bench_load(root, args.repeats)
        print(f"optimizer load: weights-only {safe * 1e3:.1f} ms, full unpickling {full * 1e3:.1f} ms, ratio {safe / full:.2f}x; "
              f"refusing a poisoned file {refuse * 1e3:.1f} ms")
        synced, unsynced = bench_lines(root, args.lines, args.repeats)
        print(f"output line: fsync per write {synced * 1e6:.0f} us, no fsync {unsynced * 1e6:.0f} us, ratio {synced / unsynced:.1f}x "
              f"(per tokenized utterance of ~10 s audio at 200x real time the budget is {LINE_BUDGET_US:.0f} us)")
    from conditions import conditions
    from record import figure, write_results

    figures = [figure(f"checkpoint save ({args.mb:.0f} MB), atomic + fsync", atomic * 1e3, "ms"),
               figure(f"checkpoint save ({args.mb:.0f} MB), plain", plain * 1e3, "ms"),
               figure("checkpoint save, atomic / plain", atomic / plain, "x"),
               figure("optimizer load, weights-only", safe * 1e3, "ms"), figure("optimizer load, full unpickling", full * 1e3, "ms"),
               figure("optimizer load, weights-only / full", safe / full, "x"), figure("refusing a poisoned file", refuse * 1e3, "ms"),
               figure("output line with fsync", synced * 1e6, "us", ("<=", LINE_BUDGET_US),
                      "budget: one tokenized ~10 s utterance at 200x real time"),
               figure("output line without fsync", unsynced * 1e6, "us"), figure("output line, fsync / none", synced / unsynced, "x")]
    write_results("reliability", figures, conditions("n/a (file I/O)", 1), args.out, mb=args.mb, repeats=args.repeats, lines=args.lines)


if __name__ == "__main__":
    main()
