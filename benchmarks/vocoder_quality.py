"""Unit vocoders at the same training budget, side by side (run by hand, prints a table).

    .venv/bin/python benchmarks/vocoder_quality.py --manifest runs/demo/corpus/manifest.jsonl \
        --tokenizer runs/demo/speech_tokenizer --work /tmp/vq --minutes 6 [--items 400] [--threads 2]

Trains `tinywave vocoder train` twice on the same utterances, split and wall-time budget:
SpiritLM's plain generator upsampling to 16 kHz (channels 64, resblock kernels 3/7/11),
and our default with the iSTFT head (channels 512, kernel 3, frames of 160 samples).
Each run also fits the Griffin-Lim unit-mel baseline. Prints per vocoder: steps reached,
held-out mel-cepstral distortion (dB, lower is better), the share of units the speech
tokenizer finds again in the resynthesis, and synthesis speed (x real time, 1 thread);
ratios are against Griffin-Lim. Runs resume from --work; nothing is asserted. Writes the
figures and the conditions to ``benchmarks/results/vocoder_quality.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

VARIANTS = {
    "plain-16k": ["istft_hop=0", "channels=64", "kernels=[3,7,11]", "lr=2e-3"],
    "istft-head": [],  # the recipe's defaults
}


def synthesis_speed(path: Path, seconds: float = 10.0) -> float:
    """Seconds of audio per wall second for one 10-s utterance of random units, 1 thread."""
    from tinywave.vocoder.backends import load_vocoder

    voc = load_vocoder(path)
    units = {"hubert": np.random.default_rng(0).integers(0, voc.limits["hubert"], int(seconds * voc.unit_rate)).tolist()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        voc.vocode(units)
        start = time.perf_counter()
        for _ in range(3):
            voc.vocode(units)
        return 3 * seconds / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--work", default="/tmp/tinywave_vocoder_quality")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/vocoder_quality.json)")
    args = ap.parse_args()
    from tinywave.cli import main as cli

    work = Path(args.work)
    rows = {}
    for name, overrides in VARIANTS.items():
        out = work / name
        cached = work / "units.jsonl"
        if cached.is_file() and not (out / "units.jsonl").is_file():  # the speech tokenizer runs once for both
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(cached, out / "units.jsonl")
        if not (out / "eval.json").is_file():
            code = cli(["vocoder", "train", "--manifest", args.manifest, "--tokenizer", args.tokenizer, "--out", str(out),
                        f"minutes={args.minutes}", "steps=100000", f"max_items={args.items}", f"threads={args.threads}",
                        *overrides])
            if code:
                raise SystemExit(f"vocoder train ({name}) failed with exit code {code}")
        if not cached.is_file():
            shutil.copy(out / "units.jsonl", cached)
        rows[name] = json.loads((out / "eval.json").read_text())
        rows[name]["speed"] = synthesis_speed(out)
    base = next(iter(rows.values()))
    gl_mcd, gl_acc = base["mcd_db"]["griffinlim"], base["unit_accuracy"]["griffinlim"]
    gl_speed = synthesis_speed(work / next(iter(rows)) / "griffinlim")
    print(f"\n{args.minutes:g} min of training each, {len(base['heldout'])} held-out utterances, {args.threads} threads")
    print(f"{'vocoder':<12} {'steps':>6} {'MCD dB':>7} {'/GL':>6} {'unit acc':>9} {'/GL':>6} {'x real time':>12}")
    for name, r in rows.items():
        mcd, acc = r["mcd_db"]["hifigan"], r["unit_accuracy"]["hifigan"]
        print(f"{name:<12} {r['steps']:>6} {mcd:>7.2f} {mcd / gl_mcd:>6.2f} {acc:>9.3f} {acc / gl_acc:>6.2f} {r['speed']:>12.0f}")
    print(f"{'griffin-lim':<12} {'-':>6} {gl_mcd:>7.2f} {1:>6.2f} {gl_acc:>9.3f} {1:>6.2f} {gl_speed:>12.0f}")
    write(args, rows, gl_mcd, gl_acc, gl_speed, len(base["heldout"]))


def write(args: argparse.Namespace, rows: dict, gl_mcd: float, gl_acc: float, gl_speed: float, heldout: int) -> None:
    from conditions import conditions
    from record import figure, write_results

    figures = []
    for name, r in rows.items():
        mcd, acc = r["mcd_db"]["hifigan"], r["unit_accuracy"]["hifigan"]
        figures += [figure(f"{name}: steps in {args.minutes:g} min", r["steps"], "steps"),
                    figure(f"{name}: held-out MCD", mcd, "dB"), figure(f"{name}: MCD / Griffin-Lim's", mcd / gl_mcd, "x"),
                    figure(f"{name}: re-encoded unit accuracy", acc, ""), figure(f"{name}: synthesis speed, 1 thread", r["speed"], "x real time")]
    figures += [figure("griffin-lim: held-out MCD", gl_mcd, "dB"), figure("griffin-lim: re-encoded unit accuracy", gl_acc, ""),
                figure("griffin-lim: synthesis speed, 1 thread", gl_speed, "x real time")]
    write_results("vocoder_quality", figures, conditions("fp32", args.threads), args.out, minutes=args.minutes, items=args.items,
                  heldout_utterances=heldout, manifest=args.manifest, tokenizer=args.tokenizer)


if __name__ == "__main__":
    main()
