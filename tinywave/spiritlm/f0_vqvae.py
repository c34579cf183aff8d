"""SpiritLM's pitch quantizer: a VQ-VAE over 200 Hz (F0, voicing) (``vqvae_f0_quantizer/``).

``config.yaml`` (read with PyYAML, no OmegaConf) gives ``encoder_params``,
``decoder_params``, ``vq_params`` and ``features``; ``model.pt`` holds
``{"model": state_dict}`` with the jukebox-style key names of docs/SPIRITLM.md 2.4
(``encoder.level_blocks.{l}.model.{i}.0.*``, ``...1.model.{d}.model.{1,3}.*``,
``vq.level_blocks.{l}.k``, ``decoder.*``), loaded strictly. The reference unpickles
``model.pt`` fully; here it is read tensors-only, and only ``allow_pickle=True`` (or
the one-time conversion ``python -m tinywave.spiritlm.f0_vqvae --trust-pickle DIR``,
which writes ``model.safetensors`` beside it) unpickles anything else.

A pitch code is the nearest level-0 codebook row to the level-0 encoder output: stride
``s`` applied ``down_t`` times to ``n // 80 + 1`` F0 frames (16 = 12.5 Hz in the release).

F0: the reference uses FCPE (the ``torchfcpe`` package, whose import needs torchaudio).
With ``f0_method="auto"`` FCPE is used when ``torchfcpe`` imports, else WORLD's DIO
(pyworld, :mod:`tinywave.audio.f0`) with the same 50-1100 Hz range, linear interpolation
over unvoiced frames and edge hold. Pitch codes from DIO differ from the reference's
wherever the two F0 trackers disagree; the chosen method is part of the tokenizer spec.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from tinywave.audio.f0 import F0_HOP, F0_RATE, F0Settings, extract_f0, frame_count
from tinywave.audio.features import Analysis
from tinywave.safeload import load_torch

log = logging.getLogger(__name__)
CONFIG_FILE, MODEL_FILE, SAFE_FILE = "config.yaml", "model.pt", "model.safetensors"
FEATURES = ("f0_interp,vuv", "f0,vuv", "norm_f0_interp,vuv", "norm_f0,vuv")
BLOCK_KEYS = ("width", "depth", "m_conv", "dilation_growth_rate", "dilation_cycle", "zero_out", "res_scale")
F0_MIN, F0_MAX = 50.0, 1100.0


# --- config ------------------------------------------------------------------------------
@dataclass(frozen=True)
class VQVAEConfig:
    encoder: dict[str, Any]
    vq: dict[str, Any]
    features: str
    decoder: dict[str, Any] | None = None
    speaker_norm: bool = False

    @property
    def normalized(self) -> bool:
        return self.speaker_norm or "norm_" in self.features

    @property
    def level0_stride(self) -> int:
        return int(self.encoder["strides_t"][0]) ** int(self.encoder["downs_t"][0])

    def to_json(self) -> dict[str, Any]:
        return {"encoder_params": self.encoder, "vq_params": self.vq, "features": self.features,
                "decoder_params": self.decoder, "speaker_norm": self.speaker_norm}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = CONFIG_FILE) -> "VQVAEConfig":
        missing = [k for k in ("encoder_params", "vq_params", "features") if k not in data]
        if missing:
            raise ValueError(f"{where}: missing {missing}; expected SpiritLM's VQ-VAE config (encoder_params, decoder_params, vq_params, features)")
        enc, vq = dict(data["encoder_params"]), dict(data["vq_params"])
        enc.pop("reverse_decoder_dilation", None)  # tolerated by the reference encoder
        dec = dict(data["decoder_params"]) if data.get("decoder_params") else None
        if data["features"] not in FEATURES:
            raise ValueError(f"{where}: features={data['features']!r} is not one of {list(FEATURES)}")
        problems = _config_problems(enc, vq, dec)
        if problems:
            raise ValueError(f"{where}: {'; '.join(problems)}")
        return cls(enc, vq, str(data["features"]), dec, bool(data.get("speaker_norm", False)))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "VQVAEConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VQ-VAE config {path} not found; it sits beside model.pt in vqvae_f0_quantizer/")
        return cls.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))


def _config_problems(enc: dict[str, Any], vq: dict[str, Any], dec: dict[str, Any] | None) -> list[str]:
    out = []
    for name, params in (("encoder_params", enc), ("decoder_params", dec or {})):
        for key in ("downs_t", "strides_t"):
            if key in params and not all(isinstance(v, int) and not isinstance(v, bool) for v in params[key]):
                out.append(f"{name}.{key}={params[key]!r} must be a flat list of ints (one per level)")
    if "checkpoint_res" in enc:
        out.append("encoder_params must not hold checkpoint_res (the encoder blocks do not take it)")
    if dec and dec.get("checkpoint_res"):
        out.append("decoder_params.checkpoint_res must be false for inference")
    if enc.get("input_emb_width") != 2:
        out.append(f"encoder_params.input_emb_width={enc.get('input_emb_width')} must be 2 (f0 and voicing)")
    if enc.get("output_emb_width") != vq.get("emb_width"):
        out.append(f"encoder_params.output_emb_width={enc.get('output_emb_width')} must equal vq_params.emb_width={vq.get('emb_width')}")
    levels = {int(enc.get("levels", 0)), int(vq.get("levels", 0))} | ({int(dec.get("levels", 0))} if dec else set())
    if len(levels) != 1 or len(enc.get("downs_t", [])) < max(levels):
        out.append("levels must be equal in encoder_params, decoder_params and vq_params, with one downs_t/strides_t entry per level")
    return out


# --- modules (state-dict names follow the reference) --------------------------------------
class _Seq(nn.Module):
    """A module whose only child is ``model`` (the reference's naming: ``...model.{i}...``)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _ResBlock(_Seq):
    def __init__(self, width: int, state: int, dilation: int, scale: float):
        super().__init__(nn.ReLU(), nn.Conv1d(width, state, 3, 1, dilation, dilation), nn.ReLU(), nn.Conv1d(state, width, 1))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, W, T) -> (N, W, T)
        return x + self.scale * self.model(x)


def _resnet(p: dict[str, Any], reverse: bool = False) -> _Seq:
    width, depth = int(p["width"]), int(p["depth"])
    cycle, growth = p.get("dilation_cycle"), int(p.get("dilation_growth_rate", 1))
    scale = 1.0 / math.sqrt(depth) if p.get("res_scale") else 1.0
    blocks = [_ResBlock(width, int(float(p.get("m_conv", 1.0)) * width), growth ** (d if cycle is None else d % cycle), scale) for d in range(depth)]
    return _Seq(*(blocks[::-1] if reverse else blocks))


def encoder_level(p: dict[str, Any], n_in: int, down: int, stride: int) -> _Seq:
    """``down`` x (Conv1d stride s, kernel 2s, padding s//2 + resnet), then Conv1d(width -> emb, 3)."""
    width, blocks = int(p["width"]), []
    for i in range(down):
        blocks.append(nn.Sequential(nn.Conv1d(n_in if i == 0 else width, width, 2 * stride, stride, stride // 2), _resnet(p)))
    if down > 0:
        blocks.append(nn.Conv1d(width, int(p["output_emb_width"]), 3, 1, 1))
    return _Seq(*blocks)


def decoder_level(p: dict[str, Any], down: int, stride: int) -> _Seq:
    """Conv1d(emb -> width, 3), then ``down`` x (resnet + ConvTranspose1d; the last one back to emb)."""
    width, emb, blocks = int(p["width"]), int(p["output_emb_width"]), []
    if down > 0:
        blocks.append(nn.Conv1d(emb, width, 3, 1, 1))
        for i in range(down):
            up = nn.ConvTranspose1d(width, emb if i == down - 1 else width, 2 * stride, stride, stride // 2)
            blocks.append(nn.Sequential(_resnet(p, bool(p.get("reverse_decoder_dilation"))), up))
    return _Seq(*blocks)


class _Levels(nn.Module):
    """``level_blocks.{l}`` (encoder, decoder) as in the reference."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.level_blocks = nn.ModuleList(blocks)


class _Codebooks(nn.Module):
    def __init__(self, levels: int, bins: int, width: int):
        super().__init__()
        self.level_blocks = nn.ModuleList(nn.Module() for _ in range(levels))
        for block in self.level_blocks:
            block.register_buffer("k", torch.zeros(bins, width))  # (bins, emb)


class F0VQVAE(nn.Module):
    """Encoder levels, one codebook per level and (optionally) the decoder, with the reference's keys."""

    def __init__(self, cfg: VQVAEConfig, with_decoder: bool = True):
        super().__init__()
        enc = cfg.encoder
        ins = [int(enc["input_emb_width"])] + [int(enc["output_emb_width"])] * (int(enc["levels"]) - 1)
        self.encoder = _Levels([encoder_level(enc, n_in, int(d), int(s)) for n_in, d, s in zip(ins, enc["downs_t"], enc["strides_t"])])
        self.vq = _Codebooks(int(cfg.vq["levels"]), int(cfg.vq["l_bins"]), int(cfg.vq["emb_width"]))
        if with_decoder and cfg.decoder is not None:
            dec = {**cfg.decoder, "output_emb_width": cfg.decoder.get("output_emb_width", enc["output_emb_width"])}
            self.decoder = _Levels([decoder_level(dec, int(d), int(s)) for d, s in zip(dec["downs_t"], dec["strides_t"])])
            self.decoder.out = nn.Conv1d(int(dec["output_emb_width"]), int(dec["input_emb_width"]), 3, 1, 1)
        self.cfg = cfg

    def encode_level0(self, x: torch.Tensor) -> torch.Tensor:  # (1, 2, T200) -> (1, emb, T200 // stride)
        return self.encoder.level_blocks[0](x)

    @property
    def codebook(self) -> torch.Tensor:  # (bins, emb), level 0
        return self.vq.level_blocks[0].k


def load_state(folder: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """``model.safetensors`` if present (a converted copy), else ``model.pt``'s ``"model"`` dict."""
    if (folder / SAFE_FILE).is_file():
        return load_file(str(folder / SAFE_FILE))
    ckpt = load_torch(folder / MODEL_FILE, allow_pickle, what="VQ-VAE checkpoint (model.pt)")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise ValueError(f"{folder / MODEL_FILE} must hold {{'model': state_dict}} (SpiritLM's VQ-VAE format)")
    return ckpt["model"]


def load_f0_vqvae(folder: str | Path, allow_pickle: bool = False, with_decoder: bool = True) -> F0VQVAE:
    """The VQ-VAE of a ``vqvae_f0_quantizer/`` folder, loaded strictly (missing/unexpected keys are errors)."""
    folder = Path(folder)
    model = F0VQVAE(VQVAEConfig.from_yaml(folder / CONFIG_FILE), with_decoder).eval()
    state = load_state(folder, allow_pickle)
    if not with_decoder:
        state = {k: v for k, v in state.items() if not k.startswith("decoder.")}
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{folder}: the VQ-VAE weights do not fit config.yaml — missing keys {missing[:8]} ({len(missing)}), "
                         f"unexpected keys {unexpected[:8]} ({len(unexpected)}), shape mismatches {shapes[:4]}")
    model.load_state_dict(state, strict=True)
    return model


def convert_to_safetensors(folder: str | Path, allow_pickle: bool = False) -> Path:
    """Write ``model.safetensors`` (the strict-checked state dict) beside ``model.pt``; later loads need no pickle."""
    folder = Path(folder)
    model = load_f0_vqvae(folder, allow_pickle)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / SAFE_FILE))
    return folder / SAFE_FILE


# --- F0 ----------------------------------------------------------------------------------
def _fcpe_available() -> bool:
    try:
        # lazy: optional package (needs torchaudio); WORLD's DIO is used without it
        import torchfcpe  # noqa: F401
    except Exception:
        return False
    return True


def interpolate_hz(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Linear interpolation of F0 (Hz) over unvoiced frames, first/last voiced value held at the edges."""
    if voiced.sum() == 0:
        return np.zeros_like(f0, dtype=np.float32)
    idx = np.flatnonzero(voiced)
    return np.interp(np.arange(len(f0)), idx, f0[idx]).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _fcpe_model():
    from torchfcpe import spawn_bundled_infer_model  # lazy: optional package (needs torchaudio); WORLD's DIO is used without it

    return spawn_bundled_infer_model(device="cpu")


def _f0_fcpe(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SpiritLM's FCPE call (docs/SPIRITLM.md 2.3); needs the torchfcpe package."""
    model = _fcpe_model()
    x = torch.from_numpy(np.ascontiguousarray(wav, np.float32))[None, :, None]  # (1, n, 1)
    f0, uv = model.infer(x, sr=16000, decoder_mode="local_argmax", threshold=0.05, f0_min=F0_MIN, f0_max=F0_MAX,
                         interp_uv=True, output_interp_target_length=frame_count(len(wav)), retur_uv=True)
    return f0.view(-1).numpy().astype(np.float32), (1 - uv).view(-1).numpy().astype(np.float32)


def _f0_pyworld(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f0 = extract_f0(wav, F0Settings(floor=F0_MIN, ceil=F0_MAX))
    voiced = f0 > 0
    return interpolate_hz(f0, voiced), voiced.astype(np.float32)


F0_METHODS = {"fcpe": _f0_fcpe, "pyworld": _f0_pyworld}


def resolve_f0_method(method: str = "auto") -> str:
    if method == "auto":
        return "fcpe" if _fcpe_available() else "pyworld"
    if method not in F0_METHODS:
        raise ValueError(f"F0 method {method!r} is not known; choose auto, fcpe or pyworld")
    return method


def vqvae_input(f0: np.ndarray, vuv: np.ndarray, normalized: bool) -> torch.Tensor:
    """(1, 2, T) float input; with ``norm_`` features the utterance's voiced mean is subtracted from nonzero F0."""
    f0 = f0.astype(np.float32).copy()
    if normalized and (vuv != 0).any():
        f0[f0 != 0] -= f0[vuv != 0].mean()
    return torch.from_numpy(np.stack([f0, vuv.astype(np.float32)]))[None]


class F0VQVAEFeatures:
    """Level-0 encoder outputs of the VQ-VAE, one vector per pitch code (12.5 Hz in the release)."""

    kind = "spiritlm_f0_vqvae"

    def __init__(self, model: F0VQVAE, f0_method: str = "auto"):
        self.model = model.eval()
        self.f0_method = resolve_f0_method(f0_method)
        if self.f0_method != "fcpe":
            log.info("pitch F0 from pyworld DIO (torchfcpe is not importable): pitch codes differ from SpiritLM's where the trackers disagree")

    @property
    def rate(self) -> float:
        return F0_RATE / self.model.cfg.level0_stride

    @property
    def dim(self) -> int:
        return int(self.model.cfg.vq["emb_width"])

    def f0(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F0 Hz interpolated, voicing 0/1), both (n // 80 + 1,)."""
        return F0_METHODS[self.f0_method](wav)

    def vectors(self, an: Analysis) -> np.ndarray:
        """(T200 // stride, emb) level-0 encoder outputs."""
        f0, vuv = self.f0(an.wav)
        n = len(f0) // self.model.cfg.level0_stride
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            z = self.model.encode_level0(vqvae_input(f0, vuv, self.model.cfg.normalized))  # (1, emb, T')
        return z[0].T.float().numpy()[:n]

    def encoder_state(self) -> dict[str, torch.Tensor]:
        return {k: v.contiguous() for k, v in self.model.state_dict().items() if not k.startswith("decoder.")}

    def to_spec(self) -> dict[str, Any]:
        h = hashlib.sha256()
        for key, value in sorted(self.encoder_state().items()):
            h.update(key.encode())
            h.update(value.numpy().tobytes())
        return {"config": self.model.cfg.to_json(), "f0_method": self.f0_method, "hop": F0_HOP, "digest": h.hexdigest()}

    def copy_model(self, folder: Path, name: str = "f0_vqvae") -> str:
        (folder / name).mkdir(parents=True, exist_ok=True)
        save_file(self.encoder_state(), str(folder / name / SAFE_FILE))
        return name

    @classmethod
    def from_spec(cls, spec: dict[str, Any], folder: Path) -> "F0VQVAEFeatures":
        feats = spec["features"]
        model = F0VQVAE(VQVAEConfig.from_dict(feats["config"], str(folder)), with_decoder=False)
        model.load_state_dict(load_file(str(folder / spec.get("model_dir", "f0_vqvae") / SAFE_FILE)), strict=True)
        return cls(model, feats["f0_method"])


def main(argv: list[str] | None = None) -> int:
    """``python -m tinywave.spiritlm.f0_vqvae --trust-pickle DIR``: convert model.pt to model.safetensors once."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", help="the vqvae_f0_quantizer/ folder (config.yaml + model.pt)")
    parser.add_argument("--trust-pickle", action="store_true", help="allow unpickling model.pt (runs code from the file)")
    args = parser.parse_args(argv)
    print(f"wrote {convert_to_safetensors(args.folder, args.trust_pickle)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
