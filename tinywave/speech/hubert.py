"""HuBERT units: a transformers ``HubertModel`` from a local directory, one hidden layer,
and a quantizer (k-means centroids or SpiritLM's linear quantizer head).

Layer numbering follows ``output_hidden_states``: ``layer`` indexes
``hidden_states[layer]``, where 0 is the transformer's input (after the positional
convolution) and ``k`` (1-based) is the output of transformer block ``k``. SpiritLM's
``output_layer=11`` is ``layer=11``. Only the first ``layer`` blocks are kept (the rest
never run); a parity test checks this against the full model.

The frame rate is ``16000 / prod(conv_stride)`` (25 Hz for mHuBERT's 640-sample hop,
50 Hz for HuBERT base). Long audio is cut into chunks by the tokenizer (100 s).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tinywave.audio.features import SAMPLE_RATE, Analysis
from tinywave.safeload import load_numpy, load_torch, refuse_pickled_weights
from tinywave.speech.kmeans import Codebook

LINEAR_KEYS = ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")
MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model*.bin.index.json")
DEFAULT_KERNEL = [10, 3, 3, 3, 3, 2, 2]  # HubertConfig defaults (50 Hz)
DEFAULT_STRIDE = [5, 2, 2, 2, 2, 2, 2]


def fill_blanks(codes: np.ndarray, blank: int) -> np.ndarray:
    """Replace each ``blank`` by the nearest preceding non-blank code, cyclically.

    Same result as SpiritLM's repeated ``torch.roll`` by one over the flattened codes
    (position 0 takes the last element); an all-blank sequence is returned unchanged.
    """
    codes = np.asarray(codes)
    keep = codes != blank
    if keep.all() or not keep.any():
        return codes.copy()
    src = np.maximum.accumulate(np.where(keep, np.arange(len(codes)), -1))
    src[src < 0] = np.flatnonzero(keep)[-1]  # leading blanks wrap around to the last non-blank
    return codes[src]


def _conv_output_length(n: int, kernels: list[int], strides: list[int]) -> int:
    for k, s in zip(kernels, strides):
        n = (n - k) // s + 1 if n >= k else 0
    return n


def _model_weight_files(model_dir: Path) -> list[Path]:
    return sorted(p for pattern in MODEL_FILES for p in model_dir.glob(pattern))


class HubertFeatures:
    """Hidden states of one layer of a local ``HubertModel`` (loaded lazily, picklable)."""

    kind = "hubert"

    def __init__(self, model_dir: str | Path, layer: int, normalize: bool = False):
        self.model_dir = Path(model_dir)
        config_path = self.model_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"HuBERT directory {self.model_dir} has no config.json; pass a folder written by HubertModel.save_pretrained")
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        n_layers = int(self.config.get("num_hidden_layers", 12))
        if not 0 <= layer <= n_layers:
            raise ValueError(f"HuBERT layer {layer} is out of range for {self.model_dir} ({n_layers} layers); use 0..{n_layers} (SpiritLM: 11)")
        self.layer = layer
        self.normalize = normalize
        self._model = None
        self._digest: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # workers load the model themselves

    @property
    def rate(self) -> float:
        return SAMPLE_RATE / math.prod(self.config.get("conv_stride", DEFAULT_STRIDE))

    @property
    def dim(self) -> int:
        return int(self.config.get("hidden_size", 768))

    @property
    def model(self):
        if self._model is None:
            import torch  # lazy: keeps tinywave.speech importable without torch (units train's MFCC workers); only HuBERT streams need it
            from transformers import HubertModel  # lazy: transformers is heavy (~3 s); only loading the model needs it

            with refuse_pickled_weights(self.model_dir):
                model = HubertModel.from_pretrained(str(self.model_dir)).eval()
            # blocks past `layer` never run (one is kept for layer 0: hidden_states are captured per block)
            truncated = self.layer < len(model.encoder.layers)
            model.encoder.layers = model.encoder.layers[: max(self.layer, 1)]
            if truncated and model.config.do_stable_layer_norm:
                # pre-norm encoders apply a final LayerNorm after the LAST block; after truncation that
                # would be block `layer`, which the full model does not normalize
                model.encoder.layer_norm = torch.nn.Identity()
            self._model = model
        return self._model

    def n_frames(self, n_samples: int) -> int:
        return _conv_output_length(n_samples, self.config.get("conv_kernel", DEFAULT_KERNEL), self.config.get("conv_stride", DEFAULT_STRIDE))

    def hidden(self, wav: np.ndarray):
        """(1, T, D) torch hidden states of ``layer`` for a 16 kHz waveform."""
        import torch  # lazy: keeps tinywave.speech importable without torch (units train's MFCC workers); only HuBERT streams need it

        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]  # (1, N)
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        with torch.inference_mode():
            out = self.model(x, output_hidden_states=True)
        return out.hidden_states[self.layer]

    def vectors(self, an: Analysis) -> np.ndarray:
        """(T, D) float32 features; T = conv output length (0 for too-short audio)."""
        if self.n_frames(len(an.wav)) < 1:
            return np.zeros((0, self.dim), np.float32)
        return self.hidden(an.wav)[0].float().numpy()

    def digest(self) -> str:
        """sha256 of the config and weight files (part of the tokenizer fingerprint)."""
        if self._digest is None:
            h = hashlib.sha256()
            for path in _model_weight_files(self.model_dir):
                h.update(path.name.encode())
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        h.update(block)
            self._digest = h.hexdigest()
        return self._digest

    def to_spec(self) -> dict[str, Any]:
        return {"layer": self.layer, "normalize": self.normalize, "model_digest": self.digest()}

    def copy_model(self, folder: Path, name: str = "hubert") -> str:
        """Copy the model files into ``folder/name`` (a tokenizer directory is self-contained)."""
        dest = folder / name
        dest.mkdir(parents=True, exist_ok=True)
        for path in _model_weight_files(self.model_dir):
            shutil.copy2(path, dest / path.name)
        return name

    @classmethod
    def from_spec(cls, spec: dict[str, Any], model_dir: Path) -> "HubertFeatures":
        return cls(model_dir, int(spec["layer"]), bool(spec.get("normalize", False)))


class LinearQuantizer:
    """SpiritLM's quantizer head: MLP -> argmax over V + 1 classes; the blank V takes its left neighbour."""

    def __init__(self, vocab_size: int, dim: int, upstream_dim: int, state: dict[str, Any]):
        import torch  # lazy: keeps tinywave.speech importable without torch (units train's MFCC workers); only HuBERT streams need it

        self.vocab_size, self.dim, self.upstream_dim = int(vocab_size), int(dim), int(upstream_dim)
        out = self.vocab_size + 1
        mid = self.upstream_dim - out
        h1, h2 = self.dim - mid // 4, self.dim - mid // 2
        self.net = torch.nn.Sequential(
            torch.nn.Linear(self.dim, h1), torch.nn.LeakyReLU(), torch.nn.Linear(h1, h2), torch.nn.LeakyReLU(), torch.nn.Linear(h2, out)
        ).eval()
        tensors = {k: torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) else v for k, v in state.items()}
        self.net.load_state_dict(tensors, strict=True)

    @property
    def n_codes(self) -> int:
        return self.vocab_size + 1  # codes are 0..V-1, or V when every frame is blank

    def assign(self, x: np.ndarray) -> np.ndarray:
        import torch  # lazy: keeps tinywave.speech importable without torch (units train's MFCC workers); only HuBERT streams need it

        if len(x) == 0:
            return np.zeros(0, np.int64)
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))  # (T, V + 1)
        return fill_blanks(logits.argmax(dim=-1).numpy().astype(np.int64), self.vocab_size)  # argmax = argmax of log_softmax

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "linear", "vocab_size": self.vocab_size, "dim": self.dim, "upstream_dim": self.upstream_dim}

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> "LinearQuantizer":
        return cls(spec["vocab_size"], spec["dim"], spec["upstream_dim"], arrays)

    @classmethod
    def from_file(cls, path: str | Path, allow_pickle: bool = False) -> "LinearQuantizer":
        """Read SpiritLM's ``L11_quantizer_500.pt`` ({model_cfg, model_weight}); tensors only unless ``allow_pickle``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"linear quantizer {path} not found; pass SpiritLM's L11_quantizer_500.pt or k-means centroids (.npy)")
        ckpt = load_torch(path, allow_pickle, what="linear quantizer")
        if not isinstance(ckpt, dict) or not {"model_cfg", "model_weight"} <= set(ckpt):
            raise ValueError(f"{path} must hold a dict with 'model_cfg' and 'model_weight' (SpiritLM's quantizer format)")
        cfg, weights = ckpt["model_cfg"], ckpt["model_weight"]
        if not isinstance(cfg, dict) or not isinstance(weights, dict):
            raise ValueError(f"{path}: model_cfg and model_weight must be dicts, got {type(cfg).__name__} and {type(weights).__name__}")
        missing = [k for k in ("vocab_size", "dim", "upstream_dim") if k not in cfg]
        if missing or set(weights) != set(LINEAR_KEYS):
            raise ValueError(f"{path}: model_cfg lacks {missing} or model_weight keys {sorted(weights)} are not {list(LINEAR_KEYS)}")
        try:
            return cls(cfg["vocab_size"], cfg["dim"], cfg["upstream_dim"], weights)
        except RuntimeError as exc:
            raise ValueError(f"{path}: weights do not fit model_cfg {dict(cfg)}: {exc}") from None


def load_quantizer(path: str | Path, allow_pickle: bool = False):
    """k-means centroids (.npy, (K, D)) or a SpiritLM linear quantizer (.pt) from a file.

    Pickled content (object arrays, non-tensor objects) is refused unless ``allow_pickle``.
    """
    path = Path(path)
    if path.suffix == ".npy":
        centroids = np.asarray(load_numpy(path, allow_pickle, what="centroids file"))
        if centroids.ndim != 2 or centroids.dtype.kind not in "fiu":
            raise ValueError(f"{path} holds an array of shape {centroids.shape} and dtype {centroids.dtype}; k-means centroids must be a (K, D) float array")
        return Codebook(centroids.astype(np.float32))
    if path.suffix == ".pt":
        return LinearQuantizer.from_file(path, allow_pickle)
    raise ValueError(f"quantizer {path}: use k-means centroids (.npy) or SpiritLM's linear quantizer (.pt)")
