"""Hugging Face ``datasets`` folders (``Dataset.save_to_disk``) -> manifest items.

The audio column may hold the ``datasets.Audio`` feature (encoded bytes or file paths),
plain ``{"array", "sampling_rate"}`` records, or path strings. Audio given as bytes or
arrays is written as 16 kHz mono 16-bit wavs under ``<manifest folder>/wavs/<split>/``
(tinywave/audio/io.py resample and save_wav format); audio given as a path is used where
it is. ``datasets`` is optional: it is imported only here, when this format is used.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tinywave.audio.io import SAMPLE_RATE, AudioError, resample, to_mono
from tinywave.data.importers.options import ImportOptions
from tinywave.data.importers.transcript import normalize_text
from tinywave.data.manifest import BadItem, ManifestItem
from tinywave.files import atomic_write_bytes

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class MissingPackageError(ValueError):
    """An optional package this format needs is not installed."""


def require_datasets() -> Any:
    try:
        import datasets  # lazy: optional package (pip install datasets, or the dev extra); only --format datasets needs it
    except ImportError:
        raise MissingPackageError("--format datasets needs the Hugging Face `datasets` package: pip install datasets "
                                  "(or pip install -e '.[dev]')") from None
    return datasets


def pick_split(obj: Any, split: str, src: Path, datasets: Any) -> tuple[Any, str]:
    """(Dataset, split name) from what load_from_disk returned; ValueError names the choices."""
    if isinstance(obj, datasets.DatasetDict):
        names = sorted(obj)
        if split:
            if split not in obj:
                raise ValueError(f"--split {split!r} is not in {src}; its splits are {names}")
            return obj[split], split
        if len(names) != 1:
            raise ValueError(f"{src} holds the splits {names}; choose one with --split NAME")
        return obj[names[0]], names[0]
    if split:
        raise ValueError(f"--split {split!r}: {src} holds a single Dataset, not a DatasetDict; drop --split")
    return obj, str(obj.split) if getattr(obj, "split", None) is not None else ""


def check_columns(ds: Any, opts: ImportOptions, src: Path) -> None:
    for key, name in (("--audio-column", opts.audio_column), ("--text-column", opts.text_column)):
        if name not in ds.column_names:
            raise ValueError(f"{key} {name!r} is not a column of {src}; its columns are {ds.column_names}")


def mono_array(value: Any) -> np.ndarray:
    """1-D float32 samples from a 1-D array or a 2-D one with channels on its shorter axis."""
    wav = np.asarray(value, dtype=np.float32)
    if wav.ndim == 2:
        wav = to_mono(wav.T if wav.shape[0] < wav.shape[1] else wav)  # (C, T) -> (T, C)
    if wav.ndim != 1:
        raise ValueError(f"audio array has shape {wav.shape}; expected (samples,) or (channels, samples)")
    return wav


def decode_value(value: Any, where: str) -> tuple[np.ndarray, int] | Path:
    """An audio cell -> (mono samples, rate) for bytes/arrays, or the Path of a file."""
    if isinstance(value, str) and value:
        return Path(value).absolute()
    if not isinstance(value, dict):
        raise AudioError(where, "no_audio", f"audio cell is {type(value).__name__}, expected an Audio record, an array or a path")
    if value.get("bytes"):
        try:
            wav, rate = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(where, "unreadable", f"audio bytes cannot be decoded ({exc}); re-encode them as WAV/FLAC") from None
        return to_mono(wav, where), int(rate)
    if value.get("array") is not None:
        rate = value.get("sampling_rate")
        if not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise AudioError(where, "no_rate", f"audio array has sampling_rate {rate!r}; store the rate with the array")
        try:
            return mono_array(value["array"]), int(rate)
        except ValueError as exc:
            raise AudioError(where, "not_audio", str(exc)) from None
    if value.get("path"):
        return Path(value["path"]).absolute()
    raise AudioError(where, "no_audio", "audio cell has neither bytes, an array nor a path")


def wav_bytes(wav: np.ndarray, rate: int) -> bytes:
    """16-bit PCM WAV bytes of float samples (clipped to [-1, 1]), as save_wav writes them."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def write_wav_once(path: Path, wav: np.ndarray, rate: int, where: str) -> None:
    """Write ``wav`` (mono float, ``rate`` Hz) as a 16 kHz wav unless the same bytes are there (a rerun)."""
    if wav.size == 0:
        raise AudioError(where, "empty", "audio holds no samples; drop the row")
    if not np.isfinite(wav).all():
        raise AudioError(where, "corrupt", "audio contains NaN or infinite samples; drop or fix the row")
    data = wav_bytes(resample(wav, rate, SAMPLE_RATE), SAMPLE_RATE)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def read_hf_dataset(opts: ImportOptions) -> list[ManifestItem | BadItem]:
    """Every row of the chosen split, in row order."""
    datasets = require_datasets()
    if not opts.src.is_dir():
        raise FileNotFoundError(f"{opts.src} is not a folder; --src takes a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk")
    try:
        loaded = datasets.load_from_disk(str(opts.src))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{opts.src} is not a saved dataset ({exc}); write it with save_to_disk (not a hub cache folder)") from None
    ds, split = pick_split(loaded, opts.split, opts.src, datasets)
    check_columns(ds, opts, opts.src)
    if isinstance(ds.features[opts.audio_column], datasets.Audio):
        ds = ds.cast_column(opts.audio_column, datasets.Audio(decode=False))  # bytes/path: we decode with soundfile
    wanted = [c for c in (opts.audio_column, opts.text_column, opts.id_column, opts.speaker_column) if c in ds.column_names]
    ds = ds.select_columns(list(dict.fromkeys(wanted)))
    wav_dir = opts.out_dir / "wavs" / (_UNSAFE.sub("_", split) if split else "data")
    out: list[ManifestItem | BadItem] = []
    names: dict[str, str] = {}  # wav file name -> id, to never overwrite one row's audio with another's
    for i, row in enumerate(ds):
        uid = str(row[opts.id_column]) if opts.id_column in row else (f"{split}-{i:06d}" if split else f"{i:06d}")
        where = f"{opts.src}[{split}][{i}]" if split else f"{opts.src}[{i}]"
        out.append(row_item(row, uid, where, split, wav_dir, names, opts=opts))
    return out


def row_item(row: dict[str, Any], uid: str, where: str, split: str, wav_dir: Path, names: dict[str, str],
             *, opts: ImportOptions) -> ManifestItem | BadItem:
    """One row -> an item (writing its wav when the audio is bytes or an array) or a bad item."""
    try:
        audio = decode_value(row[opts.audio_column], where)
    except AudioError as exc:
        return BadItem(uid, where, exc.reason, exc.detail)
    if not isinstance(audio, Path):
        name = _UNSAFE.sub("_", uid) + ".wav"
        if name in names:
            return BadItem(uid, where, "duplicate_id", f"id {uid!r} maps to {wav_dir / name}, already written for id "
                           f"{names[name]!r}; make the --id-column values unique (the first row is kept)")
        names[name] = uid
        try:
            write_wav_once(wav_dir / name, *audio, where=where)
        except AudioError as exc:
            return BadItem(uid, where, exc.reason, exc.detail)
        audio = wav_dir / name
    speaker = row.get(opts.speaker_column)
    text = row[opts.text_column]
    return ManifestItem(uid, audio, normalize_text(text) if isinstance(text, str) else "", None,
                        None if speaker is None else str(speaker), {"split": split} if split else {})
