"""Vocoder backends behind one interface: units -> 16 kHz waveform.

    voc = load_vocoder("runs/vocoder")          # backend picked from the files it holds
    wav = voc.vocode("[Hu12][Hu7]...", speaker=0)   # speech string (deduplicated units)
    wav = voc.vocode({"hubert": [12, 12, 7]})        # raw frames from encode_units

Backends are registered in ``BACKENDS`` (name -> loader) and recognized by a marker file
(``MARKERS``): ``hifigan`` (our unit HiFi-GAN: ``config.json`` + ``generator.safetensors``),
``griffinlim`` (the per-unit mean-mel baseline) and ``spiritlm`` (SpiritLM's released
``generator.pt`` folders, :mod:`tinywave.spiritlm.vocoder`). Another checkpoint format
plugs in by adding a loader and a marker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch.nn.utils import parametrize

from tinywave.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from tinywave.plugins import load_plugins
from tinywave.vocoder.hifigan import HifiGanConfig, UnitHiFiGAN
from tinywave.vocoder.units import Units, as_units, check_range

SAMPLE_RATE = 16000


class UnitVocoder:
    """Shared front end: unit parsing, speaker lookup, range checks. Subclasses implement ``_synthesize``."""

    hop: int = 640
    speakers: list[str]
    limits: dict[str, int | None]
    f0_ratio: float = 2  # unit frames per pitch / style code
    style_ratio: float = 25

    @property
    def unit_rate(self) -> float:
        return SAMPLE_RATE / self.hop

    def speaker_index(self, speaker: int | str) -> int:
        if isinstance(speaker, str) and not speaker.lstrip("-").isdigit():
            if speaker not in self.speakers:
                raise ValueError(f"speaker {speaker!r} is not one of this vocoder's speakers {self.speakers}")
            return self.speakers.index(speaker)
        idx = int(speaker)
        n = max(len(self.speakers), 1)
        if not 0 <= idx < n:
            raise ValueError(f"speaker index {idx} is out of range; this vocoder has {n} speaker(s) {self.speakers}")
        return idx

    def vocode_aligned(self, units: Units | str | dict[str, Any], speaker: int | str = 0,
                       deduplicated: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(waveform (T,) float32, samples per hubert unit (N,)); the samples sum to T."""
        u = as_units(units, deduplicated)
        check_range(u, self.limits)
        spk = self.speaker_index(speaker)
        if len(u) == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        return self._synthesize(u, spk)

    def vocode(self, units: Units | str | dict[str, Any], speaker: int | str = 0, deduplicated: bool | None = None) -> np.ndarray:
        """16 kHz mono float32 waveform for a speech string or a dict of unit streams."""
        return self.vocode_aligned(units, speaker, deduplicated)[0]

    def _synthesize(self, units: Units, speaker: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _stream_tensor(values: Sequence[int] | None) -> torch.Tensor | None:
    return None if values is None else torch.tensor([list(values)], dtype=torch.long)


class HifiGanVocoder(UnitVocoder):
    """The unit HiFi-GAN (weight norm folded away, eval mode) as a backend.

    It works on its own copy of ``model`` (a fresh module loaded with its weights), so the
    model passed in, e.g. one still training, is left untouched. ``default_style`` is the
    global style row used by a multi-style generator (SpiritLM's base vocoder: 8).
    """

    default_style: int = 0  # global style id for vocoders with ``multistyle`` (SpiritLM base: 8)

    def __init__(self, model: UnitHiFiGAN, speakers: Sequence[str] = ()):
        own = UnitHiFiGAN(model.cfg)
        if not parametrize.is_parametrized(model.conv_pre, "weight"):
            own.remove_weight_norm()  # the source is already folded: load plain weights
        own.load_state_dict(model.state_dict(), strict=True)
        self.model = own.eval().remove_weight_norm()
        self.cfg = model.cfg
        self.hop = self.cfg.code_hop_size
        self.f0_ratio, self.style_ratio = self.cfg.hubert_to_f0, self.cfg.hubert_to_style
        self.speakers = list(speakers) or [str(i) for i in range(self.cfg.num_speakers if self.cfg.multispkr else 1)]
        self.limits = {"hubert": self.cfg.num_embeddings, "pitch": self.cfg.num_f0_tokens, "style": self.cfg.num_style_tokens}

    @classmethod
    def load(cls, path: str | Path) -> "HifiGanVocoder":
        path = Path(path)
        cfg = HifiGanConfig.from_json(json.loads((path / "config.json").read_text(encoding="utf-8")), str(path / "config.json"))
        model = UnitHiFiGAN(cfg)
        model.load_state_dict(load_file(str(path / "generator.safetensors")), strict=True)
        return cls(model, read_speakers(path / "speakers.txt"))

    @torch.inference_mode()
    def _synthesize(self, units: Units, speaker: int) -> tuple[np.ndarray, np.ndarray]:
        code = _stream_tensor(units.hubert)  # (1, N)
        spk = torch.tensor([speaker]) if self.cfg.multispkr else None
        style = torch.tensor([self.default_style]) if self.cfg.multistyle else None
        if units.deduplicated:
            durations = self.model.predict_durations(code)  # (N,) frames per unit
        else:
            durations = None
        wav = self.model(code, _stream_tensor(units.pitch), _stream_tensor(units.style), spk, style, durations)  # (1, 1, T)
        frames = durations.numpy() if durations is not None else np.ones(len(units), dtype=np.int64)
        return wav.view(-1).numpy().astype(np.float32), frames * self.hop


def read_speakers(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def save_hifigan(path: str | Path, model: UnitHiFiGAN, speakers: Sequence[str], extra: dict[str, Any] | None = None) -> None:
    """Write ``config.json`` (SpiritLM field names) + ``generator.safetensors`` + ``speakers.txt`` atomically."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path / "generator.safetensors", save(state))
    atomic_write_json(path / "config.json", {**model.cfg.to_json(), **(extra or {})})
    atomic_write_text(path / "speakers.txt", "".join(f"{s}\n" for s in speakers))


def _load_griffinlim(path: Path) -> UnitVocoder:
    from tinywave.vocoder.griffinlim import GriffinLimVocoder  # lazy: griffinlim imports this module at its top (a cycle)

    return GriffinLimVocoder.load(path)


# Registries (tinywave/plugins.py): tinywave/spiritlm/plugin.py adds "spiritlm" (marker generator.pt).
BACKENDS: dict[str, Callable[[Path], UnitVocoder]] = {"hifigan": HifiGanVocoder.load, "griffinlim": _load_griffinlim}
MARKERS: dict[str, str] = {"generator.safetensors": "hifigan", "unit_mels.npy": "griffinlim"}


def detect_backend(path: Path) -> str:
    load_plugins()
    for marker, kind in MARKERS.items():
        if (path / marker).is_file():
            return kind
    raise FileNotFoundError(f"{path} holds no vocoder (expected one of {sorted(MARKERS)}); "
                            f"train one with `tinywave vocoder train --out {path}`")


def load_vocoder(path: str | Path, kind: str = "auto") -> UnitVocoder:
    """Load a vocoder directory with the named backend (``auto``: by its marker file)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"vocoder directory {path} not found; pass --vocoder DIR or put one at <model>/vocoder/")
    kind = detect_backend(path) if kind == "auto" else kind
    load_plugins()
    if kind not in BACKENDS:
        raise ValueError(f"vocoder backend {kind!r} is not known; choose one of {sorted(BACKENDS)} or auto")
    return BACKENDS[kind](path)
