"""Built-in speech tokenizer throughput: seconds of audio per wall second.

    .venv/bin/python benchmarks/tokenizer_throughput.py [--seconds 600] [--workers 2] [--out results.json]

Synthesizes espeak-ng speech (22.05 kHz, so resampling is included), fits two
tokenizers (units only; units + pitch + style) and runs the real `tokenize` job on the
same corpus with each, side by side, printing real-time factors and the ratios to the
targets (units >= 200x, with pitch and style >= 50x, 2 workers). Then a one-process
breakdown of where the time goes, and F0 extractors compared on the same audio. Writes
the figures and the conditions to ``benchmarks/results/tokenizer_throughput.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

WORDS = ("the a tom anna went found saw gave small red old happy park river garden ball dog cat tree house "
         "morning quickly under over near because then later every little bright green") .split()
VOICES = ("en-us", "en-us+f2", "en-gb", "en-us+m3")
TARGETS = {"units": 200.0, "units+pitch+style": 50.0}


def synthesize(folder: Path, seconds: float, seed: int = 0) -> Path:
    """espeak-ng utterances of ~12 s until ``seconds`` of audio; two synth processes at a time."""
    import soundfile as sf

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines, total, i = [], 0.0, 0
    while total < seconds:
        batch = []
        for j in range(2):
            text = " ".join(rng.choice(WORDS) for _ in range(32))
            wav = folder / f"b{i + j:04d}.wav"
            batch.append((subprocess.Popen(["espeak-ng", "-v", VOICES[(i + j) % 4], "-w", str(wav), text]), wav, text))
        for proc, wav, text in batch:
            proc.wait()
            total += sf.info(str(wav)).duration
            lines.append(json.dumps({"id": wav.stem, "audio": wav.name, "text": text, "speaker": VOICES[len(lines) % 4]}))
        i += 2
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def timed(fn, *args, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def train(manifest: Path, out: Path, expressive: bool, workers: int) -> float:
    from tinywave.cli import main

    args = ["units", "train", "--manifest", str(manifest), "--out", str(out), "n_units=128", f"workers={workers}"]
    args += ["--pitch", "--style", "n_style=16"] if expressive else []  # 16 style codes: a short corpus has few seconds
    dt, rc = timed(main, args)
    assert rc == 0, f"units train failed ({rc})"
    return dt


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def job(manifest: Path, tok: Path, out: Path, workers: int) -> tuple[float, float, float]:
    """(audio seconds, wall seconds, CPU seconds) of the real tokenize job, pool start-up included."""
    from tinywave.data.tokenize_job import tokenize_corpus

    cpu0 = cpu_seconds()
    dt, s = timed(tokenize_corpus, manifest, tok, out, workers=workers, resume=False)
    assert s.bad == 0 and s.tokenized > 0
    return s.audio_seconds, dt, cpu_seconds() - cpu0


def breakdown(manifest: Path, tok_dir: Path, n: int = 12) -> dict[str, float]:
    """Real-time factor of each step in this process (one core)."""
    from tinywave.audio.features import Analysis
    from tinywave.audio.io import load_audio
    from tinywave.files import load_jsonl
    from tinywave.speech.tokenizer import SpeechTokenizer

    tok = SpeechTokenizer.load(tok_dir)
    paths = [manifest.parent / r["audio"] for r in load_jsonl(manifest)[:n]]
    cost = {"read+resample": 0.0, **{name: 0.0 for name in tok.streams}}
    audio = 0.0
    for p in paths:
        dt, (wav, _) = timed(load_audio, p)
        cost["read+resample"] += dt
        audio += len(wav) / 16000
        an = Analysis(wav)
        for name, ex in tok.streams.items():  # in order: units pay for the spectrum, pitch for F0
            cost[name] += timed(ex.codes, an)[0]
    return {k: audio / v for k, v in cost.items()}


def f0_methods(manifest: Path, seconds: float = 10.0) -> dict[str, float]:
    import numpy as np

    from tinywave.audio.f0 import F0Settings, _pyworld, extract_f0
    from tinywave.audio.io import load_audio
    from tinywave.files import load_jsonl

    wav = np.concatenate([load_audio(manifest.parent / r["audio"])[0] for r in load_jsonl(manifest)[:2]])[: int(seconds * 16000)]
    sec = len(wav) / 16000
    out = {f"dio speed={s} + stonemask": sec / timed(extract_f0, wav, F0Settings(speed=s))[0] for s in (1, 2, 4)}
    x = wav.astype(np.float64)[: 3 * 16000]
    out["harvest (3 s)"] = 3.0 / timed(_pyworld().harvest, x, 16000, f0_floor=50.0, f0_ceil=800.0, frame_period=5.0)[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="seconds of espeak speech to synthesize")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", default="", help="work folder (default: a temporary one)")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/tokenizer_throughput.json)")
    args = ap.parse_args()
    from conditions import conditions
    from record import figure, write_results

    figures = []
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.dir or tempfile.mkdtemp(prefix="tw_bench_"))
    dt, manifest = timed(synthesize, root / "corpus", args.seconds)
    print(f"synthesized {args.seconds:.0f}+ s of espeak-ng speech in {dt:.1f} s -> {root}")
    fit = {"units": train(manifest, root / "tok_units", False, args.workers),
           "units+pitch+style": train(manifest, root / "tok_full", True, args.workers)}
    print("fit (units train, k=128):", ", ".join(f"{k} {v:.1f} s" for k, v in fit.items()))
    print(f"\ntokenize job, {args.workers} workers (spawn and tokenizer loading included); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (a shared machine gives each job only part of them):")
    for name, tok in (("units", root / "tok_units"), ("units+pitch+style", root / "tok_full")):
        audio, wall, cpu = job(manifest, tok, root / f"tokens_{name}.jsonl", args.workers)
        rtf, per_cpu = audio / wall, audio / cpu
        figures += [figure(f"tokenize job, {name}, {args.workers} workers", rtf, "x real time", (">=", TARGETS[name])),
                    figure(f"tokenize job, {name}, per CPU second", per_cpu, "x real time")]
        print(f"  {name:18s} {audio:7.1f} s audio in {wall:6.2f} s = {rtf:6.0f}x real time; "
              f"target {TARGETS[name]:.0f}x -> ratio {rtf / TARGETS[name]:.2f} ({'met' if rtf >= TARGETS[name] else 'MISSED'})")
        print(f"  {'':18s} {cpu:6.2f} CPU-s = {per_cpu:6.0f}x real time per CPU-second; "
              f"{args.workers} idle cores -> {args.workers * per_cpu:.0f}x, ratio {args.workers * per_cpu / TARGETS[name]:.2f}")
    print("\none process, real-time factor of each step (x real time):")
    for k, v in breakdown(manifest, root / "tok_full").items():
        print(f"  {k:16s} {v:8.0f}x")
        figures.append(figure(f"one process, step {k}", v, "x real time"))
    print("\nF0 extractors on the same speech (one process, x real time):")
    for k, v in f0_methods(manifest).items():
        print(f"  {k:28s} {v:8.1f}x")
        figures.append(figure(f"F0 extractor {k}", v, "x real time"))
    write_results("tokenizer_throughput", figures, conditions("float32 numpy features (no torch model)", args.workers),
                  args.out, seconds_of_audio=args.seconds, fit_seconds=fit)


if __name__ == "__main__":
    main()
