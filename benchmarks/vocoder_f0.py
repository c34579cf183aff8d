"""Does the expressive vocoder follow the pitch tokens? F0 of the resynthesis against the original's.

    .venv/bin/python benchmarks/vocoder_f0.py --work bench_work/f0 --manifest assets_work/corpus/manifest.jsonl \
        [--items 1000] [--steps 1500] [--threads 2]

1. A speech tokenizer with the demo's unit stream (MFCC k-means, 12.5 Hz, 128 units) plus
   the pitch (12.5 Hz, 64 codes) and style (1 Hz) streams: ``tinywave units train
   pitch=true style=true`` on the manifest (``WORK/tokenizer``).
2. A unit vocoder that reads all three streams: ``tinywave vocoder train`` on ``--items``
   utterances for ``--steps`` mel/STFT steps (``WORK/vocoder``; resumable with the rest).
3. On the vocoder's held-out utterances (never trained on): each is tokenized and vocoded
   three ways from its raw unit frames: with its **own** pitch codes, with the pitch codes
   of **another** held-out utterance (the next one in the list, cut or repeated to length:
   right units, wrong melody), and with one **flat** code (the utterance's most frequent).
   F0 (DIO + StoneMask, tinywave/audio/f0.py) of the original and of each resynthesis;
   per utterance the Pearson correlation of log F0 over frames voiced in both, and the
   RMS difference in cents after removing each contour's mean.

If the vocoder follows the pitch tokens, the own-codes correlation is high and clearly
above both controls. Paired over utterances: mean differences with 95% bootstrap
intervals and paired-bootstrap p-values (tinywave/eval/stats.py). Writes
``benchmarks/results/vocoder_f0.json`` and ``.md`` with the conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402

N_BOOT = 10000
CONTROLS = ("other", "flat")


def build(args: argparse.Namespace) -> tuple[Path, Path]:
    """The pitch-aware tokenizer and vocoder under --work (each step skipped when its output exists)."""
    from tinywave.cli import main as cli

    work = Path(args.work)
    tok, voc = work / "tokenizer", work / "vocoder"
    if not (tok / "speech_tokenizer.json").is_file():
        code = cli(["units", "train", "--manifest", args.manifest, "--out", str(tok), "rate=12.5", "n_units=128", "pitch=true",
                    "style=true", "max_seconds=3600", f"workers={args.threads}", "seed=0"])
        if code:
            raise SystemExit(f"units train failed with exit code {code}")
    if not (voc / "eval.json").is_file():
        code = cli(["vocoder", "train", "--manifest", args.manifest, "--tokenizer", str(tok), "--out", str(voc),
                    f"train.steps={args.steps}", "train.seed=0", f"data.max_items={args.items}", f"data.heldout={args.heldout}",
                    f"train.threads={args.threads}", "train.resume=true", "eval.samples=3"])
        if code:
            raise SystemExit(f"vocoder train failed with exit code {code}")
    return tok, voc


def contour_agreement(ref: np.ndarray, syn: np.ndarray) -> tuple[float, float, float]:
    """(Pearson r of log F0, RMS cents after removing each mean, share of frames voiced in both) on frames voiced in both."""
    n = min(len(ref), len(syn))
    ref, syn = ref[:n], syn[:n]
    both = (ref > 0) & (syn > 0)
    if both.sum() < 5:
        return float("nan"), float("nan"), float(both.mean()) if n else 0.0
    a, b = np.log2(ref[both]), np.log2(syn[both])
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    cents = 1200.0 * ((a - a.mean()) - (b - b.mean()))
    return r, float(np.sqrt(np.mean(cents**2))), float(both.mean())


def measure(tok_dir: Path, voc_dir: Path, manifest: str) -> dict[str, dict[str, np.ndarray]]:
    """Per held-out utterance and condition (own, other, flat): correlation, RMS cents, voiced overlap."""
    from tinywave.audio.f0 import extract_f0
    from tinywave.audio.io import load_audio
    from tinywave.data.manifest import read_manifest
    from tinywave.eval.resynthesis import vocoder_speaker
    from tinywave.progress import bar
    from tinywave.speech.tokenizer import SpeechTokenizer
    from tinywave.vocoder.backends import load_vocoder
    from tinywave.vocoder.units import Units

    held = json.loads((voc_dir / "eval.json").read_text(encoding="utf-8"))["heldout"]
    items = {it.id: it for it in read_manifest(manifest)[0]}
    tokenizer, voc = SpeechTokenizer.load(tok_dir), load_vocoder(voc_dir)
    encoded = []
    for uid in bar(held, desc="tokenize", unit="utt"):
        wav, _ = load_audio(items[uid].audio)
        streams = tokenizer.encode_units(wav)
        if "pitch" not in streams:
            raise SystemExit(f"{tok_dir} has no pitch stream; build it with `tinywave units train pitch=true style=true`")
        encoded.append((uid, wav, {k: [int(v) for v in streams[k]] for k in ("hubert", "pitch", "style")}))
    out: dict[str, dict[str, list[float]]] = {c: {"r": [], "cents": [], "voiced_both": []} for c in ("own", *CONTROLS)}
    for i, (uid, wav, s) in enumerate(bar(encoded, desc="vocode + F0", unit="utt")):
        other = encoded[(i + 1) % len(encoded)][2]["pitch"]
        n = len(s["pitch"])
        pitches = {"own": s["pitch"], "other": [other[k % len(other)] for k in range(n)],
                   "flat": [int(np.bincount(s["pitch"]).argmax())] * n}
        ref_f0 = extract_f0(wav[: len(s["hubert"]) * voc.hop])
        speaker = vocoder_speaker(voc, items[uid].speaker)
        for name, pitch in pitches.items():
            syn = voc.vocode(Units(tuple(s["hubert"]), tuple(pitch), tuple(s["style"]), False), speaker)
            r, cents, overlap = contour_agreement(ref_f0, extract_f0(syn))
            for key, value in (("r", r), ("cents", cents), ("voiced_both", overlap)):
                out[name][key].append(value)
    return {c: {k: np.asarray(v, dtype=np.float64) for k, v in d.items()} for c, d in out.items()}


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Mean of a - b over utterances where both are defined, its 95% bootstrap interval, the paired p-value."""
    from tinywave.eval.stats import bootstrap_mean_ci, paired_bootstrap_p

    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    lo, hi = bootstrap_mean_ci(a - b, n_boot=N_BOOT, seed=0)
    return {"difference": float((a - b).mean()), "ci95": [lo, hi], "p": paired_bootstrap_p(a, b, n_boot=N_BOOT, seed=0), "n": int(ok.sum())}


def summarize(scores: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    from tinywave.eval.stats import bootstrap_mean_ci

    table = {}
    for cond, d in scores.items():
        row = {}
        for key, values in d.items():
            v = values[np.isfinite(values)]
            lo, hi = bootstrap_mean_ci(v, n_boot=N_BOOT, seed=0) if v.size else (float("nan"), float("nan"))
            row[key] = {"mean": float(v.mean()) if v.size else float("nan"), "ci95": [lo, hi], "n": int(v.size)}
        table[cond] = row
    comparisons = {f"own_vs_{c}": {"r": paired(scores["own"]["r"], scores[c]["r"]),
                                   "cents": paired(scores["own"]["cents"], scores[c]["cents"])} for c in CONTROLS}
    return {"table": table, "paired": comparisons}


def markdown(result: dict[str, Any]) -> str:
    t, p = result["table"], result["paired"]
    rows = ["| pitch codes | log-F0 correlation (95% CI) | RMS difference, cents (95% CI) | frames voiced in both |", "|---|---|---|---|"]
    for cond in ("own", *CONTROLS):
        r, c, v = t[cond]["r"], t[cond]["cents"], t[cond]["voiced_both"]
        rows.append(f"| {cond} | {r['mean']:.3f} ({r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}) | {c['mean']:.0f} "
                    f"({c['ci95'][0]:.0f}, {c['ci95'][1]:.0f}) | {v['mean']:.2f} |")
    lines = ["# Expressive vocoder: does the resynthesis follow the pitch tokens?", "",
             f"{result['utterances']} held-out utterances, vocoder trained {result['steps']} steps on {result['items']} utterances "
             "with hubert + pitch + style streams; F0 by DIO + StoneMask on the original and on each resynthesis.", "",
             *rows, ""]
    for c in CONTROLS:
        d = p[f"own_vs_{c}"]["r"]
        lines.append(f"- own - {c}: correlation {d['difference']:+.3f} (95% CI {d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}), "
                     f"paired p = {d['p']:.4f}, {d['n']} utterances")
    lines += ["", f"Conditions: {json.dumps(result['conditions'])}", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="bench_work/f0")
    ap.add_argument("--manifest", default="assets_work/corpus/manifest.jsonl")
    ap.add_argument("--items", type=int, default=1000, help="corpus utterances the vocoder uses (held-out ones included)")
    ap.add_argument("--heldout", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "vocoder_f0.json"))
    args = ap.parse_args()

    import torch

    from conditions import conditions
    from record import figure, write_report

    torch.set_num_threads(args.threads)
    tok, voc = build(args)
    scores = measure(tok, voc, args.manifest)
    result = {**summarize(scores), "utterances": int(len(scores["own"]["r"])), "steps": args.steps, "items": args.items,
              "per_utterance": {c: {k: [round(float(x), 4) for x in v] for k, v in d.items()} for c, d in scores.items()}}
    own, other = result["table"]["own"]["r"], result["paired"]["own_vs_other"]["r"]
    figures = [figure("log-F0 correlation, own pitch codes", round(own["mean"], 4), "", note=f"95% CI {own['ci95']}"),
               figure("log-F0 correlation, own - another utterance's pitch codes", round(other["difference"], 4), "",
                      note=f"95% CI {other['ci95']}, paired p={other['p']:.4f}")]
    write_report("vocoder_f0", figures, conditions("fp32", threads=args.threads), args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
