"""Reading audio: any format soundfile reads, any rate, to 16 kHz mono float32."""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tinywave.files import atomic_write_bytes

SAMPLE_RATE = 16000
log = logging.getLogger(__name__)


class AudioError(ValueError):
    """An audio file cannot be used; ``reason`` is a short machine-readable kind."""

    def __init__(self, path: str | Path, reason: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path = str(path)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AudioInfo:
    source_rate: int
    channels: int
    seconds: float


def resample(wav: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (soxr, high quality) of a 1-D float signal."""
    if rate == target:
        return wav.astype(np.float32, copy=False)
    # lazy: audio.io loads with the CLI; a missing soxr must reach `tinywave doctor`'s message, not break every command
    import soxr

    return soxr.resample(wav.astype(np.float32, copy=False), rate, target, quality="HQ").astype(np.float32)


def to_mono(wav: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """Average channels of a (T, C) array, with a warning (reference behaviour)."""
    if wav.ndim == 1:
        return wav
    if wav.shape[1] > 1:
        log.warning("%s has %d channels; averaging them to mono", path, wav.shape[1])
    return wav.mean(axis=1)


def wav_shortfall(path: str | Path) -> tuple[int, int]:
    """(declared, present) bytes of a WAV's sample data when the file is cut short, else (0, 0).

    libsndfile reads a truncated WAV without complaint (it just returns fewer samples), so
    a half-copied file would pass as a shorter recording; the data chunk's size says otherwise.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return 0, 0
        order = "<" if head[:4] == b"RIFF" else ">"
        while len(chunk := f.read(8)) == 8:
            size = struct.unpack(order + "I", chunk[4:])[0]
            if chunk[:4] == b"data":
                present = path.stat().st_size - f.tell()
                unset = size in (0, 0xFFFFFFFF)  # streaming writers leave the size unset
                return (0, 0) if unset or size <= present else (size, present)
            f.seek(size + (size & 1), 1)
    return 0, 0


def load_audio(path: str | Path, min_seconds: float = 0.08, target_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, AudioInfo]:
    """(16 kHz mono float32 waveform, info); raises AudioError naming what is wrong.

    ``min_seconds`` defaults to 80 ms: SpiritLM skips chunks shorter than 1,280 samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "missing", "file does not exist; check the manifest's audio path (relative paths resolve against the manifest's folder)")
    if path.is_dir():
        raise AudioError(path, "not_audio", "is a directory, not an audio file")
    declared, present = wav_shortfall(path)
    if declared:
        raise AudioError(path, "truncated", f"is cut short: its header declares {declared} bytes of samples but only {present} are there; copy or export it again")
    try:
        wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        kind = "empty" if path.stat().st_size == 0 else "unreadable"
        raise AudioError(path, kind, f"cannot be read as audio ({exc}); convert it to WAV/FLAC 16 kHz mono") from None
    channels = wav.shape[1]
    if wav.shape[0] == 0:
        raise AudioError(path, "empty", "holds no samples; re-export the audio or drop it from the manifest")
    mono = to_mono(wav, path)
    seconds = len(mono) / rate
    if seconds < min_seconds:
        raise AudioError(path, "too_short", f"is {seconds * 1000:.0f} ms long, shorter than the {min_seconds * 1000:.0f} ms minimum")
    if not np.isfinite(mono).all():
        raise AudioError(path, "corrupt", "contains NaN or infinite samples")
    return resample(mono, rate, target_rate), AudioInfo(rate, channels, seconds)


def save_wav(path: str | Path, wav: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV atomically (temporary name, then rename)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    atomic_write_bytes(path, buf.getvalue())
