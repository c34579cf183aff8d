"""Is PocketSphinx a usable intelligibility metric on the embedded corpus? (run by hand; writes JSON + a table)

    nice -n 19 .venv/bin/python benchmarks/asr_wer.py [--stories 20] [--rate 1.3] [--work /tmp/tinywave_asr_wer]
    nice -n 19 .venv/bin/python benchmarks/asr_wer.py --lm domain --tokenizer assets/demo/teacher/speech_tokenizer \
        --fit-stories 60 --out benchmarks/results/asr_wer_griffinlim.json

Synthesizes ``--stories`` training stories of seed 0 with the corpus's own synthesis
(``tinywave corpus synth``, ids from ``--first``, voices en-us+m3 / en-us+f2, the demo's
``--rate``) and transcribes them with PocketSphinx: its general English model, and a
trigram model of ``--lm-stories`` *other* stories' texts (``build_language_model``: the
vocabulary and phrasing of the corpus, never the evaluated sentences). White noise of
the same lengths gives the floor. With ``--tokenizer``, the Griffin-Lim unit vocoder
fitted on ``--fit-stories`` further stories resynthesizes the evaluated ones (raw unit
frames), so the table also shows how far a vocoder moves the WER.

Prints WER / CER per condition and CPU seconds per second of audio, and writes
``benchmarks/results/asr_wer.json`` with the conditions (CPU, threads, load average,
torch, pocketsphinx, espeak-ng, commit, date; ``--out`` elsewhere). The one stated target:
the domain model's WER on the originals is at most 0.15, so that a vocoder's loss of
intelligibility is not drowned in the recognizer's own errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402
import torch  # noqa: E402


def synthesize(out: Path, stories: int, first: int, rate: float) -> Path:
    from tinywave.cli import main as cli

    if not (out / "manifest.jsonl").is_file():
        code = cli(["corpus", "synth", "--out", str(out), f"stories={stories}", f"first={first}", f"rate={rate}", "workers=1"])
        if code:
            raise SystemExit(f"corpus synth failed with exit code {code}")
    return out / "manifest.jsonl"


def timed(asr, wavs: list[np.ndarray]) -> tuple[list[str], float]:
    start = time.process_time()
    texts = asr(wavs)
    return texts, time.process_time() - start


def griffinlim_resynthesis(tokenizer_dir: str, fit_manifest: Path, utts: list) -> list[np.ndarray]:
    """Raw unit frames of each evaluated utterance, spoken by the Griffin-Lim vocoder fitted on other stories."""
    from tinywave.eval.resynthesis import read_spoken
    from tinywave.speech.tokenizer import SpeechTokenizer
    from tinywave.vocoder.griffinlim import GriffinLimVocoder, fit_unit_mels

    tok = SpeechTokenizer.load(tokenizer_dir)
    hop = int(round(16000 / tok.rates["hubert"]))
    fit = read_spoken(fit_manifest)
    speakers = sorted({u.speaker for u in fit})
    items = [(np.asarray(tok.encode_units(u.wav)["hubert"]), u.wav, speakers.index(u.speaker)) for u in fit]
    n_units = max(getattr(tok, "n_units", 0) or 0, max(int(i[0].max()) for i in items) + 1)
    voc = GriffinLimVocoder(*fit_unit_mels(items, n_units, len(speakers), hop), hop, speakers)
    return [voc.vocode(tok.encode_units(u.wav), u.speaker if u.speaker in speakers else 0, deduplicated=False) for u in utts]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=20)
    ap.add_argument("--first", type=int, default=9000, help="first story index of the evaluated ones")
    ap.add_argument("--rate", type=float, default=1.3, help="speaking-rate factor (the demo's target domain: 1.3)")
    ap.add_argument("--lm-stories", type=int, default=1000, help="stories (indices 0..N-1) whose texts build the domain LM")
    ap.add_argument("--tokenizer", default="", help="speech tokenizer directory for the Griffin-Lim resynthesis row")
    ap.add_argument("--fit-stories", type=int, default=60)
    ap.add_argument("--work", default="/tmp/tinywave_asr_wer")
    ap.add_argument("--lm", choices=("both", "general", "domain"), default="both", help="which PocketSphinx language models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="", help="results JSON (default: benchmarks/results/asr_wer.json)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tinywave.corpus.split import training_stories
    from tinywave.eval.asr import PocketSphinxRecognizer, build_language_model
    from tinywave.eval.resynthesis import read_spoken
    from tinywave.eval.wer import error_rates

    work = Path(args.work)
    utts = read_spoken(synthesize(work / "eval", args.stories, args.first, args.rate))
    seconds = sum(len(u.wav) for u in utts) / 16000
    refs = [u.text for u in utts]
    lm_texts = [s.text for s in training_stories(0, args.lm_stories)]
    lm = build_language_model(lm_texts, work / "domain.arpa")
    rng = np.random.default_rng(0)
    audio = {"original": [u.wav for u in utts],
             "white noise": [(0.1 * rng.standard_normal(len(u.wav))).astype(np.float32) for u in utts]}
    if args.tokenizer:
        fit = synthesize(work / "fit", args.fit_stories, args.first + args.stories, args.rate)
        audio["griffin-lim resynthesis"] = griffinlim_resynthesis(args.tokenizer, fit, utts)
    rows = []
    names = {"general": "general English", "domain": "domain trigram"}
    for key in names if args.lm == "both" else (args.lm,):
        lm_name, asr = names[key], PocketSphinxRecognizer(lm=lm if key == "domain" else None)
        for audio_name, wavs in audio.items():
            texts, cpu = timed(asr, wavs)
            r = error_rates(refs, texts)
            rows.append({"lm": lm_name, "audio": audio_name, "wer": round(r.wer, 4), "cer": round(r.cer, 4),
                         "cpu_s_per_audio_s": round(cpu / seconds, 3), "example": texts[0]})
            print(f"{lm_name:<16} {audio_name:<24} WER {r.wer:.3f}  CER {r.cer:.3f}  {cpu / seconds:.3f} CPU s / audio s", flush=True)
    write(args, rows, len(utts), seconds, refs[0])
    return 0


def write(args: argparse.Namespace, rows: list[dict], utterances: int, seconds: float, reference: str) -> None:
    from importlib.metadata import version

    from conditions import conditions
    from record import figure, write_results
    from tinywave.corpus.espeak import engine

    figures = []
    for r in rows:
        target = ("<=", 0.15) if (r["lm"], r["audio"]) == ("domain trigram", "original") else None
        name = f"{r['lm']} LM, {r['audio']}"
        figures += [figure(f"{name}: WER", r["wer"], "", target), figure(f"{name}: CER", r["cer"]),
                    figure(f"{name}: CPU s per audio s", r["cpu_s_per_audio_s"], "x")]
    write_results("asr_wer", figures, conditions("fp32", args.threads, pocketsphinx=version("pocketsphinx"), espeak_ng=engine().version),
                  args.out, rows=rows, utterances=utterances, audio_seconds=round(seconds, 1), reference_example=reference,
                  settings={"stories": args.stories, "first": args.first, "rate": args.rate, "voices": "en-us+m3 / en-us+f2",
                            "lm_stories": args.lm_stories, "lm": args.lm, "tokenizer": args.tokenizer,
                            "fit_stories": args.fit_stories if args.tokenizer else 0})


if __name__ == "__main__":
    raise SystemExit(main())
