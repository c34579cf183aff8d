"""Unit vocoders at the same training budget, side by side (run by hand, prints a table).

    .venv/bin/python benchmarks/vocoder_quality.py --manifest runs/demo/corpus/manifest.jsonl \
        --tokenizer runs/demo/speech_tokenizer --work /tmp/vq --minutes 6 [--items 400] [--threads 2] \
        [--variants plain-16k,istft-head,istft-gan] [--adversarial-start 600] [--asr pocketsphinx]

Trains `tinywave vocoder train` on the same utterances, split and wall-time budget:
SpiritLM's plain generator upsampling to 16 kHz (channels 64, resblock kernels 3/7/11),
our default with the iSTFT head (channels 512, kernel 3, frames of 160 samples, mel/STFT
losses only), and the same generator trained as a HiFi-GAN (discriminators from step
``--adversarial-start``). Each run also fits the Griffin-Lim unit-mel baseline. Prints per
vocoder: steps reached, held-out mel-cepstral distortion (dB, lower is better), the share
of units the speech tokenizer finds again in the resynthesis, the recognizer's word error
rate on the resynthesis of the held-out utterances (``--asr``; PocketSphinx with a
trigram model of the training transcripts; the original audio's WER is the floor), and
synthesis speed (x real time, 1 thread); MCD and unit-accuracy ratios are against Griffin-Lim,
WER ratios against the original audio (/orig). Runs resume from --work; nothing is asserted. Writes the
figures and the conditions to ``benchmarks/results/vocoder_quality.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


VARIANTS = {
    "plain-16k": ["model.istft_hop=0", "model.channels=64", "model.kernels=[3,7,11]", "optim.lr=2e-3"],
    "istft-head": [],  # the recipe's defaults: mel/STFT losses only
    "istft-gan": ["loss.adversarial_start={adversarial_start}"],  # + MPD/MSD discriminators after a warm-up
}


def synthesis_speed(path: Path, seconds: float = 10.0) -> float:
    """Seconds of audio per wall second for one 10-s utterance of random units, 1 thread (tinywave/demo/vocoder_asset.py)."""
    from tinywave.demo.vocoder_asset import real_time_factor

    return 1.0 / real_time_factor(path, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--work", default="/tmp/tinywave_vocoder_quality")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    ap.add_argument("--adversarial-start", type=int, default=600, help="istft-gan: step at which the discriminators join")
    ap.add_argument("--asr", default="pocketsphinx", help="recognizer for the held-out WER ('' : none)")
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/vocoder_quality.json)")
    args = ap.parse_args()
    from tinywave.cli import main as cli

    work = Path(args.work)
    rows = {}
    for name in args.variants.split(","):
        overrides = [o.format(adversarial_start=args.adversarial_start) for o in VARIANTS[name]]
        overrides += [f"eval.asr={args.asr}"] if args.asr else []
        out = work / name
        cached = work / "units.jsonl"
        if cached.is_file() and not (out / "units.jsonl").is_file():  # the speech tokenizer runs once for both
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(cached, out / "units.jsonl")
        if not (out / "eval.json").is_file():
            code = cli(["vocoder", "train", "--manifest", args.manifest, "--tokenizer", args.tokenizer, "--out", str(out),
                        f"train.max_minutes={args.minutes}", "train.steps=100000", f"data.max_items={args.items}",
                        f"train.threads={args.threads}", "train.resume=true",
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
    print(f"{'vocoder':<12} {'steps':>6} {'MCD dB':>7} {'/GL':>6} {'unit acc':>9} {'/GL':>6} {'WER':>6} {'/orig':>6} {'x real time':>12}")
    for name, r in rows.items():
        mcd, acc = r["mcd_db"]["hifigan"], r["unit_accuracy"]["hifigan"]
        print(f"{name:<12} {r['steps']:>6} {mcd:>7.2f} {mcd / gl_mcd:>6.2f} {acc:>9.3f} {acc / gl_acc:>6.2f} {wer(r, 'hifigan'):>6} "
              f"{wer_ratio(r, 'hifigan'):>6} {r['speed']:>12.0f}")
    print(f"{'griffin-lim':<12} {'-':>6} {gl_mcd:>7.2f} {1:>6.2f} {gl_acc:>9.3f} {1:>6.2f} {wer(base, 'griffinlim'):>6} "
          f"{wer_ratio(base, 'griffinlim'):>6} {gl_speed:>12.0f}")
    print(f"{'original':<12} {'-':>6} {'-':>7} {'-':>6} {'-':>9} {'-':>6} {wer(base, 'original'):>6} {'1.00':>6} {'-':>12}")
    write(args, rows, gl_mcd, gl_acc, gl_speed, len(base["heldout"]))


def wer(report: dict, vocoder: str) -> str:
    """The held-out WER of a vocoder's resynthesis from raw unit frames ("original": of the real audio), or '-'."""
    heard = report.get("intelligibility") or {}
    if not heard:
        return "-"
    return f"{(heard['original'] if vocoder == 'original' else heard['vocoders'][vocoder])['wer']:.3f}"


def wer_ratio(report: dict, vocoder: str) -> str:
    """The resynthesis WER over the original audio's (the issue's target: at most 1.3), or '-'."""
    heard = report.get("intelligibility") or {}
    if not heard or not heard["original"]["wer"]:
        return "-"
    return f"{heard['vocoders'][vocoder]['wer'] / heard['original']['wer']:.2f}"


def write(args: argparse.Namespace, rows: dict, gl_mcd: float, gl_acc: float, gl_speed: float, heldout: int) -> None:
    from conditions import conditions
    from record import figure, write_results

    figures = []
    for name, r in rows.items():
        mcd, acc = r["mcd_db"]["hifigan"], r["unit_accuracy"]["hifigan"]
        figures += [figure(f"{name}: steps in {args.minutes:g} min", r["steps"], "steps"),
                    figure(f"{name}: held-out MCD", mcd, "dB"), figure(f"{name}: MCD / Griffin-Lim's", mcd / gl_mcd, "x"),
                    figure(f"{name}: re-encoded unit accuracy", acc, ""), figure(f"{name}: synthesis speed, 1 thread", r["speed"], "x real time")]
        heard = r.get("intelligibility") or {}
        figures += [figure(f"{name}: held-out WER of the {v} resynthesis ({heard['asr']})", heard["vocoders"][v]["wer"], "")
                    for v in ("hifigan", "hifigan+durations") if heard]
        if heard and name == next(iter(rows)):
            figures += [figure(f"original audio: held-out WER ({heard['asr']})", heard["original"]["wer"], ""),
                        figure(f"griffin-lim: held-out WER ({heard['asr']})", heard["vocoders"]["griffinlim"]["wer"], "")]
    figures += [figure("griffin-lim: held-out MCD", gl_mcd, "dB"), figure("griffin-lim: re-encoded unit accuracy", gl_acc, ""),
                figure("griffin-lim: synthesis speed, 1 thread", gl_speed, "x real time")]
    write_results("vocoder_quality", figures, conditions("fp32", args.threads), args.out, minutes=args.minutes, items=args.items,
                  heldout_utterances=heldout, manifest=args.manifest, tokenizer=args.tokenizer, variants=args.variants.split(","),
                  adversarial_start=args.adversarial_start, asr=args.asr)


if __name__ == "__main__":
    main()
