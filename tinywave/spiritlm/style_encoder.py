"""SpiritLM's style encoder: a wav2vec2 sequence classifier folder (``style_encoder_w2v2/``).

A standard transformers ``Wav2Vec2ForSequenceClassification`` folder (``config.json`` +
``pytorch_model.bin``), loaded from the local folder with its key report checked (only
the reference subclass's ``_float_tensor`` buffer is absent from the release's file).

Inference (docs/SPIRITLM.md 2.5): per-utterance zero-mean unit-variance waveform
normalization (what the ``facebook/wav2vec2-base`` feature extractor does, computed
here so nothing is downloaded), ``wav2vec2`` without attention mask, ``projector``,
mean over consecutive 50-frame (1 s) windows with the last partial window kept, then
``classifier`` argmax: ``ceil(T50 / 50)`` style codes. The pooled vectors are the
stream's features and the classifier is its quantizer (:class:`ClassifierQuantizer`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinywave.audio.features import SAMPLE_RATE, Analysis
from tinywave.safeload import refuse_pickled_weights
from tinywave.spiritlm.mhubert import file_digest

POOL = 50  # wav2vec2 frames (50 Hz) per style code: 1 s
WEIGHT_FILES = ("config.json", "pytorch_model.bin", "model.safetensors")
IGNORED_MISSING = ("_float_tensor",)


def normalize(wav: np.ndarray) -> np.ndarray:
    """(x - mean) / sqrt(var + 1e-7) over the whole utterance, float32 (the HF feature extractor's do_normalize)."""
    x = np.asarray(wav, dtype=np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def load_style_model(folder: str | Path):
    """``Wav2Vec2ForSequenceClassification`` from a local folder; missing or unexpected weights are errors."""
    from transformers import Wav2Vec2ForSequenceClassification  # lazy: transformers (~3 s); spiritlm.plugin loads this module on every tokenizer/vocoder load

    from tinywave.models.hf import quiet_transformers  # lazy: models.hf imports transformers (see above)

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"style encoder folder {folder} has no config.json; pass SpiritLM's style_encoder_w2v2/ folder")
    with quiet_transformers(), refuse_pickled_weights(folder):
        model, info = Wav2Vec2ForSequenceClassification.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
    missing = [k for k in info.get("missing_keys", []) if k not in IGNORED_MISSING]
    unexpected = [k for k in info.get("unexpected_keys", []) if k not in IGNORED_MISSING]
    mismatched = list(info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        raise ValueError(f"{folder}: the style encoder weights do not fit its config.json — missing {missing[:8]}, "
                         f"unexpected {unexpected[:8]}, mismatched {mismatched[:4]}")
    return model.eval()


class W2V2StyleFeatures:
    """Projected wav2vec2 states mean-pooled per second: (ceil(T50 / 50), P) per waveform."""

    kind = "spiritlm_w2v2_style"

    def __init__(self, folder: str | Path, model: Any = None, digests: dict[str, str] | None = None):
        from transformers import Wav2Vec2Config  # lazy: transformers (~3 s); spiritlm.plugin loads this module on every tokenizer/vocoder load

        self.folder = Path(folder)
        self._model = model
        self._digests = digests  # a saved copy keeps the release files' digests (same fingerprint)
        self.config = model.config if model is not None else Wav2Vec2Config.from_pretrained(str(self.folder), local_files_only=True)
        self.hop = math.prod(self.config.conv_stride)  # 320 samples: 50 Hz

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # other processes load the model themselves

    @property
    def model(self):
        if self._model is None:
            self._model = load_style_model(self.folder)
        return self._model

    @property
    def rate(self) -> float:
        return SAMPLE_RATE / (self.hop * POOL)

    @property
    def dim(self) -> int:
        return int(self.config.classifier_proj_size)

    def n_frames(self, n_samples: int) -> int:
        for k, s in zip(self.config.conv_kernel, self.config.conv_stride):
            n_samples = (n_samples - k) // s + 1 if n_samples >= k else 0
        return n_samples

    def pooled(self, wav: np.ndarray):
        """(ceil(T50 / 50), P) torch: projector outputs averaged over 1 s windows."""
        x = torch.from_numpy(normalize(wav))[None]  # (1, N)
        with torch.inference_mode():
            h = self.model.projector(self.model.wav2vec2(x).last_hidden_state)[0]  # (T50, P)
        return torch.stack([h[i : i + POOL].mean(dim=0) for i in range(0, len(h), POOL)]) if len(h) else h

    def vectors(self, an: Analysis) -> np.ndarray:
        if self.n_frames(len(an.wav)) < 1:  # too short for one wav2vec2 frame
            return np.zeros((0, self.dim), np.float32)
        return self.pooled(an.wav).float().numpy()

    def to_spec(self) -> dict[str, Any]:
        if self._digests is None:
            self._digests = {p.name: file_digest(p) for p in sorted(self.folder.iterdir()) if p.name in WEIGHT_FILES}
        return {"pool": POOL, "normalize": True, "files": self._digests}

    def copy_model(self, folder: Path, name: str = "style_encoder") -> str:
        """The model as a transformers folder with safetensors weights."""
        from tinywave.models.hf import quiet_transformers  # lazy: transformers (~3 s); spiritlm.plugin loads this module on every tokenizer/vocoder load

        with quiet_transformers():
            self.model.save_pretrained(str(folder / name), safe_serialization=True)
        return name

    @classmethod
    def from_spec(cls, spec: dict[str, Any], folder: Path) -> "W2V2StyleFeatures":
        return cls(folder / spec.get("model_dir", "style_encoder"), digests=spec["features"]["files"])


class ClassifierQuantizer:
    """argmax of a linear classifier (K, P): the style code of each pooled vector (argmax = argmax of log_softmax)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight, self.bias = np.asarray(weight, np.float32), np.asarray(bias, np.float32)

    @property
    def n_codes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def assign(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, np.int64)
        logits = torch.nn.functional.linear(torch.from_numpy(np.ascontiguousarray(x, np.float32)),
                                            torch.from_numpy(self.weight), torch.from_numpy(self.bias))  # (T, K)
        return logits.argmax(dim=-1).numpy().astype(np.int64)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "classifier", "n_codes": self.n_codes, "dim": self.dim}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    @classmethod
    def from_model(cls, model: Any) -> "ClassifierQuantizer":
        return cls(model.classifier.weight.detach().numpy(), model.classifier.bias.detach().numpy())

    @classmethod
    def from_spec(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> "ClassifierQuantizer":
        return cls(arrays["weight"], arrays["bias"])
