"""Conformance check: TinyWave's SpiritLM tokenizers on the real release vs SpiritLM's test vectors.

    .venv/bin/python benchmarks/spiritlm_conformance.py --root /data/spiritlm/checkpoints
    SPIRITLM_CHECKPOINTS_DIR=/data/spiritlm/checkpoints .venv/bin/python benchmarks/spiritlm_conformance.py
    .venv/bin/python benchmarks/spiritlm_conformance.py --tiny      # the pipeline on a tiny random release

Tokenizes LibriSpeech ``7143-88743-0029.flac`` (146,160 samples; from LibriSpeech dev-clean,
given with --audio or $SPIRITLM_CONFORMANCE_AUDIO) with ``spiritlm-base:ROOT`` and ``spiritlm-expressive:ROOT`` and prints, per
stream, how many frames equal the vectors of ``tests/fixtures/spiritlm_tokenizer.json``,
whether the base/expressive strings are identical, and the tokenizing speed (x real
time). With the real files, ``hubert`` must be 228/228 and the base string identical;
``pitch`` agrees only as far as our F0 tracker agrees with FCPE (exact only when
torchfcpe is importable); ``style`` must be 10/10. Exit status 0 when the base stream
is conformant. ``--tiny`` uses a random fixture release (no agreement expected): it
shows the command runs end to end. Writes the figures and the conditions to
``benchmarks/results/spiritlm_conformance.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TINYWAVE_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from tinywave.audio.io import load_audio  # noqa: E402
from tinywave.speech.tokenizer import SpeechTokenizer  # noqa: E402
from tinywave.spiritlm.conformance import AUDIO_SHA256, compare, load_vectors  # noqa: E402

AUDIO_NAME = "7143-88743-0029.flac"  # LibriSpeech dev-clean, speaker 7143, chapter 88743
DEFAULT_VECTORS = ROOT / "tests" / "fixtures" / "spiritlm_tokenizer.json"


def _audio(parser: argparse.ArgumentParser, path: str, tiny: bool):
    """The conformance utterance; with --tiny and no --audio, 146,160 samples of seeded noise (no agreement expected)."""
    if not path and tiny:
        import numpy as np

        print("audio: none given, --tiny uses 146,160 samples of seeded noise")
        return np.random.default_rng(0).normal(0.0, 0.1, 146_160).astype("float32")  # [samples] at 16 kHz
    if not path:
        parser.error(f"give --audio PATH of LibriSpeech dev-clean {AUDIO_NAME} (LibriSpeech/dev-clean/7143/88743/), "
                     "or set SPIRITLM_CONFORMANCE_AUDIO; the test vectors were computed on that file")
    audio = Path(path)
    if not audio.is_file():
        parser.error(f"--audio {audio}: no such file; point it at LibriSpeech dev-clean {AUDIO_NAME}")
    digest = hashlib.sha256(audio.read_bytes()).hexdigest()
    print(f"audio {audio} sha256 {'ok' if digest == AUDIO_SHA256 else 'DIFFERS: ' + digest}")
    return load_audio(audio)[0]  # [samples] at 16 kHz


def main() -> int:
    parser = argparse.ArgumentParser(description="SpiritLM tokenizer conformance (docs/SPIRITLM.md)")
    parser.add_argument("--root", default="", help="SpiritLM checkpoints folder (default: $SPIRITLM_CHECKPOINTS_DIR)")
    parser.add_argument("--audio", default=os.environ.get("SPIRITLM_CONFORMANCE_AUDIO", ""),
                        help=f"path of LibriSpeech {AUDIO_NAME} (default: $SPIRITLM_CONFORMANCE_AUDIO)")
    parser.add_argument("--vectors", default=str(DEFAULT_VECTORS), help="the test vectors JSON")
    parser.add_argument("--kinds", default="spiritlm-base,spiritlm-expressive", help="tokenizers to check")
    parser.add_argument("--tiny", action="store_true", help="use a tiny random release instead (pipeline check only)")
    parser.add_argument("--out", default="", help="results JSON (default: benchmarks/results/spiritlm_conformance.json)")
    args = parser.parse_args()
    from conditions import conditions
    from record import figure, write_results

    wav = _audio(parser, args.audio, args.tiny)
    vectors = load_vectors(args.vectors)
    root = args.root or os.environ.get("SPIRITLM_CHECKPOINTS_DIR", "")
    if args.tiny:
        from tinywave.spiritlm.fixtures import make_release

        root = str(make_release(tempfile.mkdtemp(prefix="spiritlm_tiny_"), vocoders=False))
    base_ok, figures = True, []
    must_match = {"spiritlm-base": ("hubert",), "spiritlm-expressive": ("hubert", "style")}  # pitch: as far as F0 agrees
    for kind in args.kinds.split(","):
        t0 = time.perf_counter()
        tok = SpeechTokenizer.load(f"{kind}:{root}")
        t1 = time.perf_counter()
        report = compare(tok, wav, vectors)
        t2 = time.perf_counter()
        speed = 2 * len(wav) / 16000 / (t2 - t1)  # compare() tokenizes twice (units, then the string)
        print(f"\n{kind} (fingerprint {tok.fingerprint}): load {t1 - t0:.1f} s, tokenize {speed:.1f}x real time")
        print("\n".join("  " + line for line in report.lines()))
        for st in report.streams:
            target = ("==", 1.0) if st.stream in must_match.get(kind, ()) and not args.tiny else None
            figures.append(figure(f"{kind}: {st.stream} frames equal to the vectors", st.equal / max(st.expected, 1), "",
                                  target, f"{st.equal}/{st.expected}" + ("; tiny random release" if args.tiny else "")))
        string_target = ("==", True) if kind == "spiritlm-base" and not args.tiny else None
        figures += [figure(f"{kind}: {report.string_kind} string identical", report.string_equal, "", string_target),
                    figure(f"{kind}: tokenizing speed", speed, "x real time")]
        if kind == "spiritlm-base":
            base_ok = report.exact
    write_results("spiritlm_conformance", figures, conditions("fp32", None), args.out, tiny=args.tiny,
                  kinds=args.kinds.split(","), audio=args.audio or "seeded noise")
    return 0 if base_ok else 1


if __name__ == "__main__":
    sys.exit(main())
