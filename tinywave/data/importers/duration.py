"""Audio length from the file header (soundfile.info): no decoding, so an import stays fast."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from tinywave.audio.io import AudioError, wav_shortfall


def audio_seconds(path: Path) -> float:
    """Duration in seconds of a readable, non-empty audio file; AudioError names what is wrong.

    The reasons match tinywave/audio/io.py load_audio: missing, not_audio, truncated,
    unreadable, empty.
    """
    if not path.exists():
        raise AudioError(path, "missing", "file does not exist; restore it or drop the utterance from the source")
    if not path.is_file():
        raise AudioError(path, "not_audio", "is not a file")
    try:
        declared, present = wav_shortfall(path)
    except OSError as exc:
        raise AudioError(path, "unreadable", f"cannot be opened ({exc.strerror}); check its permissions") from None
    if declared:
        raise AudioError(path, "truncated", f"is cut short: its header declares {declared} bytes of samples but only {present} are there; copy or export it again")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        kind = "empty" if path.stat().st_size == 0 else "unreadable"
        raise AudioError(path, kind, f"cannot be read as audio ({exc}); convert it to WAV/FLAC 16 kHz mono") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "empty", "holds no samples; re-export the audio or drop the utterance from the source")
    return info.frames / info.samplerate
