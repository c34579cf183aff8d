"""SpiritLM's HiFi-GAN unit vocoders (``hifigan_spiritlm_base/``, ``hifigan_spiritlm_expressive_w2v2/``).

A folder holds ``config.json`` (the generator's settings, SpiritLM's field names),
``generator.pt`` (``{"generator": state_dict}`` with old-style ``weight_g``/``weight_v``
keys, read tensors-only), ``speakers.txt`` and, for the base vocoder, ``styles.txt``
(one name per line; ids are row indices). The generator is
:class:`tinywave.vocoder.hifigan.UnitHiFiGAN`, which has the reference architecture and
key names; the weights load strictly. As a backend of :func:`tinywave.vocoder.backends.load_vocoder`
it is ``spiritlm`` (recognized by ``generator.pt``).

Base: ``dict`` (units) + speaker + global style, duration predictor; the reference
decodes with style 8 ("conv-default"), which is this backend's default style.
Expressive: ``dict`` + ``f0_dict`` + ``style_dict`` + speaker; pitch codes stretch by
``f0_hop_size / code_hop_size`` (2) and style codes by ``style_hop_size / code_hop_size``
(25) hubert frames. The reference's default speaker is 2 (pass ``speaker=2``).
"""

from __future__ import annotations

from pathlib import Path

from tinywave.safeload import load_json, load_torch
from tinywave.vocoder.backends import HifiGanVocoder, read_speakers
from tinywave.vocoder.hifigan import HifiGanConfig, UnitHiFiGAN

GENERATOR_FILE = "generator.pt"
BASE_DIR, EXPRESSIVE_DIR = "hifigan_spiritlm_base", "hifigan_spiritlm_expressive_w2v2"
DEFAULT_STYLE = 8  # the reference's default global style of the base vocoder ("conv-default")
DEFAULT_SPEAKER = 2


def read_generator(path: Path, cfg: HifiGanConfig) -> UnitHiFiGAN:
    """The generator of ``generator.pt`` under ``cfg``; missing, unexpected or misshapen keys are errors."""
    ckpt = load_torch(path, what="HiFi-GAN generator (generator.pt)")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("generator"), dict):
        raise ValueError(f"{path} must hold {{'generator': state_dict}} (SpiritLM's vocoder format)")
    state = ckpt["generator"]
    model = UnitHiFiGAN(cfg).eval()
    own = model.state_dict()  # old-style weight_g / weight_v names
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        raise ValueError(f"{path}: the generator weights do not fit config.json — missing keys {missing[:8]} ({len(missing)}), "
                         f"unexpected keys {unexpected[:8]} ({len(unexpected)}), shape mismatches {shapes[:4]}")
    model.load_state_dict(state, strict=True)
    return model


def load_spiritlm_vocoder(path: str | Path) -> HifiGanVocoder:
    """A SpiritLM vocoder folder as a :class:`HifiGanVocoder` (units -> 16 kHz waveform)."""
    path = Path(path)
    if not (path / GENERATOR_FILE).is_file():
        raise FileNotFoundError(f"{path} holds no {GENERATOR_FILE}; pass a SpiritLM vocoder folder ({BASE_DIR}/ or {EXPRESSIVE_DIR}/)")
    cfg = HifiGanConfig.from_json(load_json(path / "config.json", "vocoder config"), str(path / "config.json"))
    voc = HifiGanVocoder(read_generator(path / GENERATOR_FILE, cfg), read_speakers(path / "speakers.txt"))
    voc.styles = read_speakers(path / "styles.txt")
    voc.default_style = DEFAULT_STYLE if cfg.multistyle and cfg.num_styles > DEFAULT_STYLE else 0
    return voc
