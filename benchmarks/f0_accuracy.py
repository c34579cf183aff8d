"""Benchmark: how accurate is the F0 extractor (DIO + StoneMask, tinywave.audio.f0)?

    .venv/bin/python benchmarks/f0_accuracy.py              # 40 synthetic + 24 espeak-ng utterances
    .venv/bin/python benchmarks/f0_accuracy.py --quick --out /tmp/f0.json

1. Against the truth, on synthetic speech-like signals whose F0 and voicing are known:
   harmonic voiced stretches (70-350 Hz start, gliding up to 6 semitones, 5 Hz vibrato,
   -6 dB/octave harmonics to 5 kHz) alternate with unvoiced ones (white noise as loud as
   the voicing, or near-silence), over a -35 dB noise floor. Frames within 10 ms of a
   voicing boundary are not scored. Reported per setting: voicing accuracy, missed and
   false voicing, and on frames voiced in both the truth and the estimate, the F0 error in
   cents (median, 90th percentile) and the gross error rate (off by more than 20%).
2. Against ``speed=1``, the undecimated DIO (what the module docstring compares with): the
   share of voicing decisions kept and the F0 difference of frames voiced in both, on the
   synthetic set and on espeak-ng speech.

Settings: ``speed=1``, ``speed=4`` (the default) and ``speed=4`` without StoneMask.
Writes ``benchmarks/results/f0_accuracy.json`` with its conditions (CPU, threads, torch,
numpy and pyworld versions, commit, date) and ``summary``: the figures that
tinywave/audio/f0.py quotes, as it quotes them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conditions import conditions  # noqa: E402
from tinywave.audio.f0 import F0_HOP, F0Settings, extract_f0  # noqa: E402

RATE = 16000
SETTINGS = {"speed=1": F0Settings(speed=1), "speed=4": F0Settings(speed=4), "speed=4, no StoneMask": F0Settings(speed=4, refine=False)}
BOUNDARY = 160  # samples (10 ms): frames this close to a voicing change are not scored
SENTENCES = ["the cat sat on the mat", "tom went to the park in the morning", "a red ball rolled under the old tree",
             "my friend opened the door quickly", "the little dog ran home because it was cold", "anna found a green apple"]
VOICES = ("en-us", "en-us+f2", "en-gb", "en-us+m3")
RESULTS = Path(__file__).resolve().parent / "results" / "f0_accuracy.json"


# ---------------------------------------------------------------- synthetic signals with known F0


def voiced_stretch(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(waveform (n,), F0 per sample (n,)): a gliding harmonic tone with vibrato and 10 ms fades."""
    start = np.exp(rng.uniform(np.log(70), np.log(350)))
    glide = 2 ** (rng.uniform(-6, 6) / 12 * np.linspace(0, 1, n))
    vibrato = 2 ** (20 / 1200 * np.sin(2 * np.pi * 5 * np.arange(n) / RATE + rng.uniform(0, 2 * np.pi)))
    f0 = start * glide * vibrato
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    wav = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k * (k * f0 < 5000) for k in range(1, int(5000 / f0.min()) + 1))
    fade = np.minimum(1, np.minimum(np.arange(n), np.arange(n)[::-1]) / BOUNDARY)
    return wav * fade, f0


def synthetic_utterance(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(waveform, true F0 per frame (0: unvoiced), True where scored, kind per frame: 0 voiced, 1 noise, 2 near-silence)."""
    n = int(seconds * RATE)
    wav, f0, kind = np.zeros(n), np.zeros(n), np.full(n, 2)
    pos, voiced = int(rng.uniform(0.05, 0.2) * RATE), True
    while pos < n:
        length = min(int(rng.uniform(0.2, 0.6) * RATE if voiced else rng.uniform(0.05, 0.25) * RATE), n - pos)
        if voiced:
            seg, seg_f0 = voiced_stretch(length, rng)
            wav[pos : pos + length], f0[pos : pos + length], kind[pos : pos + length] = 0.3 * seg, seg_f0, 0
        elif rng.random() < 0.5:  # a fricative-like stretch as loud as the voicing
            wav[pos : pos + length], kind[pos : pos + length] = 0.15 * rng.standard_normal(length), 1
        pos, voiced = pos + length, not voiced
    wav += 10 ** (-35 / 20) * 0.2 * rng.standard_normal(n)
    change = np.flatnonzero(np.diff(kind)) + 0.5
    centers = np.minimum(np.arange(n // F0_HOP + 1) * F0_HOP, n - 1)
    near = np.abs(centers[:, None] - change[None, :]).min(axis=1) < BOUNDARY if len(change) else np.zeros(len(centers), bool)
    return wav.astype(np.float32), f0[centers], ~near, kind[centers]


def against_truth(est: np.ndarray, true: np.ndarray, scored: np.ndarray, kind: np.ndarray) -> dict[str, float]:
    est, true, kind = est[scored], true[scored], kind[scored]
    ev, tv = est > 0, true > 0
    both = ev & tv
    cents = np.abs(1200 * np.log2(est[both] / true[both]))
    return {"frames": int(scored.sum()), "voicing_accuracy": float(np.mean(ev == tv)),
            "missed_voiced": float(np.mean(~ev[tv])), "false_voiced": float(np.mean(ev[~tv])),
            "false_voiced_in_noise": float(np.mean(ev[kind == 1])), "false_voiced_in_near_silence": float(np.mean(ev[kind == 2])),
            "cents_median": float(np.median(cents)), "cents_p90": float(np.percentile(cents, 90)),
            "gross_error_rate": float(np.mean(np.abs(est[both] / true[both] - 1) > 0.2))}


def against_reference(est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    both = (est > 0) & (ref > 0)
    cents = np.abs(1200 * np.log2(est[both] / ref[both]))
    return {"frames": int(len(est)), "voicing_agreement": float(np.mean((est > 0) == (ref > 0))),
            "cents_median": float(np.median(cents)), "cents_p90": float(np.percentile(cents, 90))}


# ---------------------------------------------------------------- runs


def extract_all(wavs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every setting's F0 of every waveform, concatenated."""
    return {name: np.concatenate([extract_f0(w, s) for w in wavs]) for name, s in SETTINGS.items()}


def synthetic_set(n: int, seconds: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    utts = [synthetic_utterance(seconds, rng) for _ in range(n)]
    est = extract_all([u[0] for u in utts])
    true, scored, kind = (np.concatenate([u[i] for u in utts]) for i in (1, 2, 3))
    return {"utterances": n, "seconds": n * seconds, "seed": seed,
            "vs_truth": {name: against_truth(f, true, scored, kind) for name, f in est.items()},
            "vs_speed1": {name: against_reference(f, est["speed=1"]) for name, f in est.items() if name != "speed=1"}}


def espeak_set(n: int) -> dict:
    from tinywave.audio.io import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        wavs = []
        for i in range(n):
            path = Path(tmp) / f"{i}.wav"
            subprocess.run(["espeak-ng", "-v", VOICES[i % len(VOICES)], "-w", str(path), SENTENCES[i % len(SENTENCES)]],
                           check=True, capture_output=True)
            wavs.append(load_audio(path)[0])  # espeak-ng's 22.05 kHz resampled to 16 kHz
    est = extract_all(wavs)
    return {"utterances": n, "seconds": round(sum(len(w) for w in wavs) / RATE, 2), "voices": list(VOICES),
            "vs_speed1": {name: against_reference(f, est["speed=1"]) for name, f in est.items() if name != "speed=1"}}


def summary(syn: dict, esp: dict) -> dict[str, str]:
    """The figures tinywave/audio/f0.py quotes, formatted as it quotes them."""
    truth, kept = syn["vs_truth"]["speed=4"], esp["vs_speed1"]

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    return {
        "synthetic_seconds": f"{syn['seconds']:.0f} s", "espeak_seconds": f"{esp['seconds']:.0f} s",
        "voicing_accuracy": pct(truth["voicing_accuracy"]), "speed1_voicing_accuracy": pct(syn["vs_truth"]["speed=1"]["voicing_accuracy"]),
        "missed_voiced": pct(truth["missed_voiced"]), "false_voiced_in_noise": pct(truth["false_voiced_in_noise"]),
        "false_voiced_in_near_silence": pct(truth["false_voiced_in_near_silence"]),
        "cents_median": f"{truth['cents_median']:.1f} cents", "cents_p90": f"{truth['cents_p90']:.1f} cents",
        "gross_error_rate": pct(truth["gross_error_rate"]),
        "kept_voicing_espeak": pct(kept["speed=4"]["voicing_agreement"]),
        "kept_voicing_synthetic": pct(syn["vs_speed1"]["speed=4"]["voicing_agreement"]),
        "kept_cents_p90_espeak": f"{kept['speed=4']['cents_p90']:.2f} cents",
        "no_stonemask_cents_p90_espeak": f"{kept['speed=4, no StoneMask']['cents_p90']:.0f} cents",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic utterances")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each synthetic utterance")
    parser.add_argument("--espeak", type=int, default=24, help="espeak-ng utterances")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 synthetic and 2 espeak-ng utterances (a smoke run)")
    parser.add_argument("--out", default=str(RESULTS), help="JSON file to write")
    args = parser.parse_args()
    if args.quick:
        args.synthetic, args.espeak = 2, 2
    syn, esp = synthetic_set(args.synthetic, args.seconds, args.seed), espeak_set(args.espeak)
    import pyworld

    cond = conditions("float64 (numpy)", threads=1, threads_note="pyworld's DIO and StoneMask run on one thread; torch is not used",
                      numpy=np.__version__, pyworld=getattr(pyworld, "__version__", "unknown"))
    report = {"conditions": cond, "synthetic": syn, "espeak": esp, "summary": summary(syn, esp)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for name, r in syn["vs_truth"].items():
        print(f"{name:<22} vs truth: voicing {100 * r['voicing_accuracy']:.1f}% (missed {100 * r['missed_voiced']:.1f}%, "
              f"false {100 * r['false_voiced_in_noise']:.1f}% in noise / {100 * r['false_voiced_in_near_silence']:.1f}% in "
              f"near-silence), F0 error median {r['cents_median']:.1f} / p90 {r['cents_p90']:.1f} cents, "
              f"gross errors {100 * r['gross_error_rate']:.2f}%")
    for label, part in (("synthetic", syn), ("espeak-ng", esp)):
        for name, r in part["vs_speed1"].items():
            print(f"{name:<22} vs speed=1 on {label}: voicing kept {100 * r['voicing_agreement']:.1f}%, "
                  f"F0 difference median {r['cents_median']:.2f} / p90 {r['cents_p90']:.2f} cents")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
