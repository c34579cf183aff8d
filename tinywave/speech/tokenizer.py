"""The speech tokenizer: 16 kHz audio -> phonetic units (+ pitch, style) -> SpiritLM strings.

A tokenizer directory holds ``speech_tokenizer.json`` (format, each stream's kind,
rate, feature and quantizer settings) and ``speech_tokenizer.safetensors`` (centroids,
standardization, quantizer weights as ``<stream>.<name>``); a HuBERT tokenizer also
holds a copy of its model in ``hubert/``. Nothing is pickled.

Streams: ``hubert`` (the phonetic stream, whatever extractor produced it: SpiritLM's
key), optional ``pitch`` and ``style``. Like SpiritLM, audio is cut into 100 s chunks,
chunks shorter than 1,280 samples (80 ms) are skipped, and each chunk goes through
every stream; the codes are concatenated.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from tinywave.audio.features import SAMPLE_RATE, Analysis
from tinywave.files import atomic_dir
from tinywave.plugins import load_plugins
from tinywave.speech.builtin import FrameFeatures
from tinywave.speech.extractor import Features, QuantizedExtractor, Quantizer
from tinywave.speech.format import units_to_string
from tinywave.speech.hubert import HubertFeatures, LinearQuantizer
from tinywave.speech.kmeans import Codebook
from tinywave.speech.pitch import PitchFeatures
from tinywave.speech.style import StyleFeatures

FORMAT = "tinywave-speech-tokenizer-v1"
TOKENIZER_FILE = "speech_tokenizer.json"
ARRAYS_FILE = "speech_tokenizer.safetensors"
CHUNK_SECONDS = 100.0
MIN_CHUNK_SAMPLES = 1280
STREAMS = ("hubert", "pitch", "style")
MAX_CODES = {"hubert": 501, "pitch": 64, "style": 100}  # SpiritLM's [Hu], [Pi], [St] blocks


def _hubert_features(spec: dict[str, Any], folder: Path) -> Features:
    return HubertFeatures.from_spec(spec["features"], folder / spec.get("model_dir", "hubert"))


def _linear_quantizer(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Quantizer:
    return LinearQuantizer.from_spec(spec, arrays)


# Registries (tinywave/plugins.py): stream spec "kind" -> features loader (stream spec, tokenizer folder);
# tinywave/spiritlm/plugin.py adds SpiritLM's released extractors, its quantizer and its tokenizer names.
FEATURES: dict[str, Callable[[dict[str, Any], Path], Features]] = {
    "mfcc_kmeans": lambda spec, folder: FrameFeatures.from_spec(spec["features"]),
    "logmel_kmeans": lambda spec, folder: FrameFeatures.from_spec(spec["features"]),
    "hubert": _hubert_features,
    "f0_kmeans": lambda spec, folder: PitchFeatures.from_spec(spec["features"]),
    "pooled_kmeans": lambda spec, folder: StyleFeatures.from_spec(spec["features"]),
}
# quantizer spec "kind" -> loader (quantizer spec, that stream's arrays)
QUANTIZERS: dict[str, Callable[[dict[str, Any], dict[str, np.ndarray]], Quantizer]] = {
    "kmeans": Codebook.from_spec,
    "linear": _linear_quantizer,
}
# "KIND:ROOT" tokenizer names built from a released checkpoint folder -> builder (kind, root, trust_pickle)
RELEASES: dict[str, Callable[[str, str, bool], "SpeechTokenizer"]] = {}


def chunks(wav: np.ndarray, chunk_seconds: float = CHUNK_SECONDS) -> Iterator[np.ndarray]:
    """Consecutive chunks of ``chunk_seconds``; chunks (and tails) under 80 ms are skipped (SpiritLM)."""
    step = int(round(chunk_seconds * SAMPLE_RATE))
    if step < MIN_CHUNK_SAMPLES:
        raise ValueError(f"chunk_seconds={chunk_seconds} is shorter than the 80 ms minimum chunk; use 100 (SpiritLM)")
    for start in range(0, len(wav), step):
        if len(wav) - start >= MIN_CHUNK_SAMPLES:
            yield wav[start : start + step]


def resolve_dir(folder: str | Path) -> Path:
    """A tokenizer directory, or a model directory holding one in ``speech_tokenizer/``."""
    folder = Path(folder)
    for candidate in (folder, folder / "speech_tokenizer"):
        if (candidate / TOKENIZER_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"{folder} holds no {TOKENIZER_FILE} (nor speech_tokenizer/{TOKENIZER_FILE}); make one with `tinywave units train --out {folder}`")


class SpeechTokenizer:
    """Phonetic units plus optional pitch and style streams; see the module docstring."""

    def __init__(self, units: QuantizedExtractor, pitch: QuantizedExtractor | None = None,
                 style: QuantizedExtractor | None = None, string_rates: dict[str, float] | None = None,
                 meta: dict[str, Any] | None = None):
        self.streams = {k: v for k, v in {"hubert": units, "pitch": pitch, "style": style}.items() if v is not None}
        for name, ex in self.streams.items():
            if ex.n_codes > MAX_CODES[name]:
                raise ValueError(f"the {name} stream has {ex.n_codes} codes but the vocabulary block holds {MAX_CODES[name]}; use fewer codes")
        unknown = set(string_rates or {}) - set(self.streams)
        if unknown:
            raise ValueError(f"string_rates names streams {sorted(unknown)} this tokenizer does not have ({sorted(self.streams)})")
        self.string_rates = dict(string_rates or {})
        self.meta = dict(meta or {})

    @property
    def rates(self) -> dict[str, float]:
        """Codes per second of each stream, as used for string timestamps."""
        return {name: float(self.string_rates.get(name, ex.rate)) for name, ex in self.streams.items()}

    @property
    def n_codes(self) -> dict[str, int]:
        """Codebook size of each stream (the vocabulary needs at least these many ids per block)."""
        return {name: ex.n_codes for name, ex in self.streams.items()}

    @property
    def n_units(self) -> int:
        return self.n_codes["hubert"]

    @property
    def n_pitch(self) -> int | None:
        return self.n_codes.get("pitch")

    @property
    def n_style(self) -> int | None:
        return self.n_codes.get("style")

    def spec(self) -> dict[str, Any]:
        """Everything that determines the codes (the arrays aside)."""
        return {"format": FORMAT, "streams": {n: ex.to_spec() for n, ex in self.streams.items()}, "string_rates": self.string_rates}

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{n}.{k}": np.ascontiguousarray(v) for n, ex in self.streams.items() for k, v in ex.arrays().items()}

    @functools.cached_property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the settings and arrays: changes when the codes can."""
        h = hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode())
        for key, arr in sorted(self.arrays().items()):
            h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()[:16]

    def encode_units(self, wav: np.ndarray, chunk_seconds: float = CHUNK_SECONDS) -> dict[str, list[int]]:
        """Raw (not deduplicated) codes per stream of a 16 kHz mono float waveform."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise ValueError(f"expected a 1-D 16 kHz mono waveform, got shape {wav.shape}; average channels first (tinywave.audio.io.to_mono)")
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.streams}
        for chunk in chunks(wav, chunk_seconds):
            an = Analysis(chunk)
            for name, ex in self.streams.items():
                parts[name].append(ex.codes(an))
        return {name: [int(c) for c in np.concatenate(p)] if p else [] for name, p in parts.items()}

    def encode_string(self, wav: np.ndarray, chunk_seconds: float = CHUNK_SECONDS) -> str:
        """The SpiritLM string (base or expressive) with this tokenizer's rates."""
        units = self.encode_units(wav, chunk_seconds)
        return units_to_string(units["hubert"], units.get("pitch"), units.get("style"), rates=self.rates)

    def save(self, folder: str | Path) -> Path:
        """Write the directory atomically (a reader never sees half of it)."""
        folder = Path(folder)
        with atomic_dir(folder) as tmp:
            spec = self.spec()
            for name, ex in self.streams.items():
                if hasattr(ex.features, "copy_model"):
                    spec["streams"][name]["model_dir"] = ex.features.copy_model(tmp)
            spec["meta"] = self.meta
            spec["fingerprint"] = self.fingerprint  # informative; recomputed on load
            (tmp / TOKENIZER_FILE).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
            save_file(self.arrays(), str(tmp / ARRAYS_FILE))
        return folder

    @classmethod
    def load(cls, folder: str | Path, trust_pickle: bool = False) -> "SpeechTokenizer":
        """A tokenizer directory, or ``spiritlm-base:ROOT`` / ``spiritlm-expressive:ROOT`` (SpiritLM's release).

        ``trust_pickle`` lets a release's pickled ``model.pt`` (the F0 VQ-VAE) be fully unpickled."""
        kind, sep, root = str(folder).partition(":")
        if sep:
            load_plugins()
            if kind in RELEASES:
                return RELEASES[kind](kind, root, trust_pickle)
        folder = resolve_dir(folder)
        path = folder / TOKENIZER_FILE
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); rewrite it with `tinywave units train`") from None
        if spec.get("format") != FORMAT or "hubert" not in spec.get("streams", {}):
            raise ValueError(f"{path} is not a {FORMAT} file with a 'hubert' stream (format {spec.get('format')!r}); rewrite it with `tinywave units train`")
        arrays = load_file(str(folder / ARRAYS_FILE)) if (folder / ARRAYS_FILE).is_file() else {}
        streams = {name: _load_stream(name, s, folder, arrays, path) for name, s in spec["streams"].items()}
        return cls(streams["hubert"], streams.get("pitch"), streams.get("style"), spec.get("string_rates"), spec.get("meta"))

    def __repr__(self) -> str:
        return f"SpeechTokenizer({', '.join(f'{n}={ex!r}' for n, ex in self.streams.items())}, fingerprint={self.fingerprint})"


def _load_stream(name: str, spec: dict[str, Any], folder: Path, arrays: dict[str, np.ndarray], path: Path) -> QuantizedExtractor:
    if name not in STREAMS:
        raise ValueError(f"{path}: unknown stream {name!r}; streams are {STREAMS}")
    kind, qkind = spec.get("kind"), spec.get("quantizer", {}).get("kind")
    load_plugins()
    if kind not in FEATURES or qkind not in QUANTIZERS:
        raise ValueError(f"{path}: stream {name!r} has kind {kind!r} / quantizer {qkind!r}; known: {sorted(FEATURES)} / {sorted(QUANTIZERS)}")
    prefix = f"{name}."
    own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    try:
        return QuantizedExtractor(FEATURES[kind](spec, folder), QUANTIZERS[qkind](spec["quantizer"], own))
    except KeyError as exc:
        raise ValueError(f"{path}: stream {name!r} lacks {exc}; the directory is incomplete, rewrite it with `tinywave units train`") from None
