"""Does the adversarial phase make the demo vocoder better? GAN vs regression twin, paired per utterance.

    nice -n 19 .venv/bin/python benchmarks/vocoder_gan_vs_regression.py \
        --gan assets/demo/vocoder --regression bench_work/regression \
        --manifest assets_work/corpus/manifest.jsonl --tokenizer assets/demo/teacher/speech_tokenizer

The two vocoders share everything but the last phase: the shipped demo HiFi-GAN
(``tinywave demo-assets parts=[vocoder]``: 3000 regression steps on the mel/STFT losses, then
1000 steps with the multi-period and multi-scale discriminators) and its twin, the same
``tinywave vocoder train`` command (corpus, 2000 utterances, seed, schedule, 4000 steps) with
``loss.adversarial_start=-1``: mel/STFT losses to the end, so its first 3000 steps are the
GAN run's warm-up. Same held-out utterances (both ``eval.json`` list them; the script
refuses folders whose lists differ).

Per held-out utterance the script vocodes the raw unit frames with both generators (and
with the Griffin-Lim baseline of the GAN folder, as the reference floor) and computes the
mel-cepstral distortion against the original; word errors come from the per-utterance
PocketSphinx transcripts both runs wrote to ``eval.json`` (same recognizer, same trigram
model of the training text). Differences are paired over utterances: mean and 95%
bootstrap interval of the per-utterance MCD difference, pooled WER difference with its
interval (utterances resampled, errors and words summed), and centred paired-bootstrap
p-values (tinywave/eval/stats.py). Writes ``benchmarks/results/vocoder_gan_vs_regression.json``
and ``.md`` with the conditions.
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


def read_eval(folder: Path) -> dict[str, Any]:
    path = folder / "eval.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `tinywave vocoder train ... eval.asr=pocketsphinx` into {folder} first")
    report = json.loads(path.read_text(encoding="utf-8"))
    if "transcripts" not in report.get("intelligibility", {}):
        raise SystemExit(f"{path} has no per-utterance transcripts; rerun its training command with eval.asr=pocketsphinx")
    return report


def word_errors(report: dict[str, Any], system: str) -> dict[str, tuple[int, int]]:
    """utterance id -> (word edits, reference words) of one transcript column of eval.json."""
    from tinywave.eval.wer import error_rates

    out = {}
    for row in report["intelligibility"]["transcripts"]:
        rates = error_rates([row["reference"]], [row[system]])
        out[row["id"]] = (rates.substitutions + rates.deletions + rates.insertions, rates.words)
    return out


def per_utterance_mcd(folders: dict[str, Path], ids: list[str], manifest: str, tokenizer_dir: str) -> dict[str, np.ndarray]:
    """MCD (dB) of each vocoder's resynthesis of the raw unit frames, per held-out utterance: {name: [utterances]}."""
    from tinywave.audio.io import load_audio
    from tinywave.data.manifest import read_manifest
    from tinywave.eval.resynthesis import vocoder_speaker
    from tinywave.progress import bar
    from tinywave.speech.tokenizer import SpeechTokenizer
    from tinywave.vocoder.backends import load_vocoder
    from tinywave.vocoder.spectral import mel_cepstral_distortion
    from tinywave.vocoder.units import Units

    items = {it.id: it for it in read_manifest(manifest)[0]}
    missing = [i for i in ids if i not in items]
    if missing:
        raise SystemExit(f"{manifest} lacks {len(missing)} held-out id(s) such as {missing[0]}; pass the corpus both vocoders trained on")
    tokenizer = SpeechTokenizer.load(tokenizer_dir)
    vocoders = {name: load_vocoder(path) for name, path in folders.items()}
    scores: dict[str, list[float]] = {name: [] for name in vocoders}
    for uid in bar(ids, desc="mcd", unit="utt"):
        wav, _ = load_audio(items[uid].audio)
        hubert = tuple(int(v) for v in tokenizer.encode_units(wav)["hubert"])
        for name, voc in vocoders.items():
            syn = voc.vocode(Units(hubert, None, None, False), vocoder_speaker(voc, items[uid].speaker))
            scores[name].append(mel_cepstral_distortion(wav[: len(hubert) * voc.hop], syn))
    return {name: np.asarray(v) for name, v in scores.items()}


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Mean of a - b per utterance, its 95% bootstrap interval and the paired p-value."""
    from tinywave.eval.stats import bootstrap_mean_ci, paired_bootstrap_p

    diff = a - b
    lo, hi = bootstrap_mean_ci(diff, n_boot=N_BOOT, seed=seed)
    return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "difference": float(diff.mean()), "ci95": [lo, hi],
            "p": paired_bootstrap_p(a, b, n_boot=N_BOOT, seed=seed), "utterances_a_lower": int((diff < 0).sum()), "n": int(diff.size)}


def paired_wer(edits_a: np.ndarray, edits_b: np.ndarray, words: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Pooled WER a - b with utterances resampled (edits and words summed per resample)."""
    from tinywave.eval.stats import centred_p, percentile_interval, resampled_sums

    sums = resampled_sums(np.stack([edits_a - edits_b, words]).astype(np.float64), N_BOOT, seed)  # [n_boot, 2]
    boot = sums[:, 0] / sums[:, 1]
    observed = float((edits_a - edits_b).sum() / words.sum())
    return {"wer_a": float(edits_a.sum() / words.sum()), "wer_b": float(edits_b.sum() / words.sum()), "difference": observed,
            "ci95": list(percentile_interval(boot, 0.95)), "p": centred_p(boot, observed), "n": int(words.size)}


def markdown(result: dict[str, Any]) -> str:
    mcd, wer = result["mcd_db"], result["wer"]
    rows = ["| held-out utterances | GAN | regression | GAN - regression (95% CI) | paired p |", "|---|---|---|---|---|"]
    m = mcd["gan_vs_regression"]
    rows.append(f"| MCD (dB), {m['n']} utts | {m['mean_a']:.3f} | {m['mean_b']:.3f} | {m['difference']:+.3f} "
                f"({m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}) | {m['p']:.4f} |")
    w = wer["gan_vs_regression"]
    rows.append(f"| PocketSphinx WER, {w['n']} utts | {w['wer_a']:.3f} | {w['wer_b']:.3f} | {w['difference']:+.3f} "
                f"({w['ci95'][0]:+.3f}, {w['ci95'][1]:+.3f}) | {w['p']:.4f} |")
    return "\n".join([
        "# Demo vocoder: adversarial phase vs regression twin", "",
        "Same command, seed, data and 4000 steps; the GAN trains steps 3000-4000 with discriminators, the twin "
        "without. Paired over the same held-out utterances (raw unit frames; bootstrap over utterances, "
        f"{N_BOOT} resamples).", "", *rows, "",
        f"Reference points: original audio WER {wer['original']:.3f}; Griffin-Lim MCD {mcd['griffinlim_mean']:.3f} dB, "
        f"WER {wer['griffinlim']:.3f}.", "", side_by_side(result), "",
        f"Verdict: {result['verdict']}", "",
        f"Conditions: {json.dumps(result['conditions'])}", ""])


def side_by_side(result: dict[str, Any]) -> str:
    """One row per vocoder: MCD, its ratio to Griffin-Lim's, WER, its ratio to the original's, real-time factor."""
    mcd, wer, rtf = result["mcd_db"], result["wer"], result["real_time_factor"]
    gl = mcd["griffinlim_mean"]
    rows = {"adversarial (GAN)": (mcd["gan_vs_regression"]["mean_a"], wer["gan_vs_regression"]["wer_a"], rtf["gan"]),
            "regression twin": (mcd["gan_vs_regression"]["mean_b"], wer["gan_vs_regression"]["wer_b"], rtf["regression"]),
            "Griffin-Lim": (gl, wer["griffinlim"], rtf["griffinlim"])}
    lines = ["| vocoder | MCD dB | MCD / Griffin-Lim | WER | WER / original | real-time factor, 1 thread |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {m:.3f} | {m / gl:.3f} | {w:.3f} | {w / wer['original']:.2f} | {r:.4f} |" for name, (m, w, r) in rows.items()]
    lines.append(f"| original audio | - | - | {wer['original']:.3f} | 1.00 | - |")
    return "\n".join(lines)


def verdict(mcd: dict[str, Any], wer: dict[str, Any]) -> str:
    def word(d: dict[str, Any], unit: str) -> str:
        if d["p"] >= 0.05:
            return f"no difference beyond noise ({d['difference']:+.3f} {unit}, p={d['p']:.3f})"
        return f"{'GAN lower' if d['difference'] < 0 else 'GAN higher'} by {abs(d['difference']):.3f} {unit} (p={d['p']:.4f})"

    return f"MCD: {word(mcd, 'dB')}; WER: {word(wer, 'absolute')}."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gan", default="assets/demo/vocoder")
    ap.add_argument("--regression", default="bench_work/regression")
    ap.add_argument("--manifest", default="assets_work/corpus/manifest.jsonl")
    ap.add_argument("--tokenizer", default="assets/demo/teacher/speech_tokenizer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "vocoder_gan_vs_regression.json"))
    args = ap.parse_args()

    import torch

    from conditions import conditions
    from record import figure, write_report
    from tinywave.demo.vocoder_asset import real_time_factor

    torch.set_num_threads(args.threads)
    gan_dir, reg_dir = Path(args.gan), Path(args.regression)
    gan, reg = read_eval(gan_dir), read_eval(reg_dir)
    if gan["heldout"] != reg["heldout"]:
        raise SystemExit(f"{gan_dir}/eval.json and {reg_dir}/eval.json hold out different utterances; train both with the same "
                         "manifest, train.seed, data.max_items and data.heldout")
    ids = gan["heldout"]
    # 1. MCD per utterance, both generators and the Griffin-Lim floor on the same units
    mcd = per_utterance_mcd({"gan": gan_dir, "regression": reg_dir, "griffinlim": gan_dir / "griffinlim"}, ids, args.manifest,
                            args.tokenizer)
    # 2. word errors per utterance from the runs' own transcripts
    err_gan, err_reg = word_errors(gan, "hifigan"), word_errors(reg, "hifigan")
    err_orig, err_gl = word_errors(gan, "original"), word_errors(gan, "griffinlim")
    common = [i for i in ids if i in err_gan and i in err_reg]
    e_gan, e_reg = np.array([err_gan[i][0] for i in common]), np.array([err_reg[i][0] for i in common])
    words = np.array([err_gan[i][1] for i in common])
    result = {
        "gan": str(gan_dir), "regression": str(reg_dir), "steps": {"gan": gan["steps"], "regression": reg["steps"]},
        "mcd_db": {"per_utterance": {k: [round(float(x), 4) for x in v] for k, v in mcd.items()},
                   "gan_vs_regression": paired(mcd["gan"], mcd["regression"]), "griffinlim_mean": float(mcd["griffinlim"].mean()),
                   "gan_vs_griffinlim": paired(mcd["gan"], mcd["griffinlim"])},
        "wer": {"gan_vs_regression": paired_wer(e_gan, e_reg, words),
                "original": sum(err_orig[i][0] for i in common) / words.sum(),
                "griffinlim": sum(err_gl[i][0] for i in common) / words.sum()},
        "real_time_factor": {name: real_time_factor(path) for name, path in
                             (("gan", gan_dir), ("regression", reg_dir), ("griffinlim", gan_dir / "griffinlim"))},
        "heldout": ids,
        "conditions": conditions("fp32 compute; GAN: the shipped fp16 weights, regression twin: fp32 weights", threads=args.threads),
    }
    result["verdict"] = verdict(result["mcd_db"]["gan_vs_regression"], result["wer"]["gan_vs_regression"])
    m, w = result["mcd_db"]["gan_vs_regression"], result["wer"]["gan_vs_regression"]
    figures = [figure("MCD GAN - regression (dB, paired)", round(m["difference"], 4), "dB", note=f"95% CI {m['ci95']}, p={m['p']:.4f}"),
               figure("WER GAN - regression (paired)", round(w["difference"], 4), "", note=f"95% CI {w['ci95']}, p={w['p']:.4f}"),
               figure("WER GAN / original", round(w["wer_a"] / result["wer"]["original"], 3), "x", target=("<=", 1.3),
                      note="issue target: resynthesis WER at most 1.3x the original's")]
    write_report("vocoder_gan_vs_regression", figures, result.pop("conditions"), args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
