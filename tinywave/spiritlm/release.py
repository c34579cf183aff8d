"""The release layout: the checkpoint root, its file names, and speech tokenizers built from it.

The root is the folder holding ``speech_tokenizer/`` and ``spiritlm_model/`` (SpiritLM's
``checkpoints/``). Like the reference, an empty root means ``$SPIRITLM_CHECKPOINTS_DIR``.

``speech_tokenizer("spiritlm-base", ROOT)`` is a :class:`~tinywave.speech.tokenizer.SpeechTokenizer`
with SpiritLM's streams and string rates (docs/SPIRITLM.md 3):

- ``hubert``: mHuBERT layer 11 (25 Hz frames) + the linear quantizer (500 units); strings use 24.99 Hz;
- ``pitch`` (expressive): F0 VQ-VAE level-0 codes, 12.5 Hz, 64 codes;
- ``style`` (expressive): wav2vec2 classifier over 1 s windows, 1 Hz, 100 codes.

``tinywave tokenize --tokenizer spiritlm-base:ROOT`` (or ``spiritlm-expressive:ROOT``)
resolves here through ``SpeechTokenizer.load``. Such a tokenizer can also be saved as an
ordinary tokenizer directory (``tok.save(DIR)``: safe files only) and loaded back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinywave.speech.extractor import QuantizedExtractor
from tinywave.speech.format import SPIRITLM_RATES
from tinywave.speech.kmeans import Codebook
from tinywave.speech.tokenizer import SpeechTokenizer
from tinywave.spiritlm.f0_vqvae import F0VQVAEFeatures, load_f0_vqvae
from tinywave.spiritlm.mhubert import MHubertFeatures
from tinywave.spiritlm.quantizer import OUTPUT_LAYER, load_unit_quantizer
from tinywave.spiritlm.style_encoder import ClassifierQuantizer, W2V2StyleFeatures, load_style_model

ENV = "SPIRITLM_CHECKPOINTS_DIR"
# component -> (path under the root, files it must hold; empty: the path is a file)
COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mhubert": ("speech_tokenizer/hubert_25hz/mhubert_base_25hz.pt", ()),
    "unit_quantizer": ("speech_tokenizer/hubert_25hz/L11_quantizer_500.pt", ()),
    "f0_vqvae": ("speech_tokenizer/vqvae_f0_quantizer", ("config.yaml", "model.pt")),
    "style_encoder": ("speech_tokenizer/style_encoder_w2v2", ("config.json", "pytorch_model.bin")),
    "vocoder_base": ("speech_tokenizer/hifigan_spiritlm_base", ("config.json", "generator.pt", "speakers.txt", "styles.txt")),
    "vocoder_expressive": ("speech_tokenizer/hifigan_spiritlm_expressive_w2v2", ("config.json", "generator.pt", "speakers.txt")),
    "lm_base": ("spiritlm_model/spirit-lm-base-7b", ("config.json", "tokenizer.model", "tokenizer_config.json")),
    "lm_expressive": ("spiritlm_model/spirit-lm-expressive-7b", ("config.json", "tokenizer.model", "tokenizer_config.json")),
}
TOKENIZER_KINDS: dict[str, tuple[str, ...]] = {
    "spiritlm-base": ("mhubert", "unit_quantizer"),
    "spiritlm-expressive": ("mhubert", "unit_quantizer", "f0_vqvae", "style_encoder"),
}
VOCODER_OF = {"spiritlm-base": "vocoder_base", "spiritlm-expressive": "vocoder_expressive"}
LM_OF = {"spiritlm-base": "lm_base", "spiritlm-expressive": "lm_expressive"}


def resolve_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$SPIRITLM_CHECKPOINTS_DIR``; a path to its ``speech_tokenizer/`` is accepted too."""
    value = str(root or os.environ.get(ENV, ""))
    if not value:
        raise ValueError(f"no SpiritLM checkpoint folder given: pass the folder holding speech_tokenizer/ and spiritlm_model/ "
                         f"(e.g. --tokenizer spiritlm-base:/data/spiritlm/checkpoints) or set {ENV}")
    path = Path(value).expanduser()
    if path.name == "speech_tokenizer" and not (path / "speech_tokenizer").is_dir():
        path = path.parent
    if not path.is_dir():
        raise FileNotFoundError(f"SpiritLM checkpoint folder {path} does not exist; pass the folder holding speech_tokenizer/ (or set {ENV})")
    return path


def missing_files(root: Path, names: tuple[str, ...] | list[str]) -> list[str]:
    """Release-relative paths of the named components' files that are absent."""
    out = []
    for name in names:
        rel, files = COMPONENTS[name]
        out += [f"{rel}/{f}" for f in files if not (root / rel / f).is_file()] if files else ([] if (root / rel).is_file() else [rel])
    return out


def component(root: str | Path | None, name: str) -> Path:
    """The path of one component, after checking its files are there."""
    base = resolve_root(root)
    absent = missing_files(base, [name])
    if absent:
        raise FileNotFoundError(f"{base} lacks {', '.join(absent)}; download the SpiritLM release into it "
                                f"(layout: docs/SPIRITLM.md)")
    return base / COMPONENTS[name][0]


def _unit_stream(root: Path) -> QuantizedExtractor:
    feats = MHubertFeatures(component(root, "mhubert"), OUTPUT_LAYER)
    return QuantizedExtractor(feats, load_unit_quantizer(component(root, "unit_quantizer"), feats.dim))


def _pitch_stream(root: Path, trust_pickle: bool, f0_method: str) -> QuantizedExtractor:
    model = load_f0_vqvae(component(root, "f0_vqvae"), trust_pickle, with_decoder=True)
    return QuantizedExtractor(F0VQVAEFeatures(model, f0_method), Codebook(model.codebook.numpy().copy()))


def _style_stream(root: Path) -> QuantizedExtractor:
    folder = component(root, "style_encoder")
    model = load_style_model(folder)
    return QuantizedExtractor(W2V2StyleFeatures(folder, model), ClassifierQuantizer.from_model(model))


def speech_tokenizer(kind: str, root: str | Path | None = None, trust_pickle: bool = False, f0_method: str = "auto"):
    """SpiritLM's base or expressive speech tokenizer from a release root (see the module docstring)."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"speech tokenizer kind {kind!r} is not known; choose one of {sorted(TOKENIZER_KINDS)}")
    base = resolve_root(root)
    absent = missing_files(base, TOKENIZER_KINDS[kind])
    if absent:
        raise FileNotFoundError(f"{kind} needs {', '.join(absent)} under {base}; download the SpiritLM release (docs/SPIRITLM.md)")
    units = _unit_stream(base)
    pitch = style = None
    if kind == "spiritlm-expressive":
        pitch, style = _pitch_stream(base, trust_pickle, f0_method), _style_stream(base)
    rates = {k: v for k, v in SPIRITLM_RATES.items() if k == "hubert" or kind == "spiritlm-expressive"}
    return SpeechTokenizer(units, pitch, style, string_rates=rates, meta={"source": f"{kind}:{base}"})


def _mhubert(spec: dict[str, Any], folder: Path):
    return MHubertFeatures.from_spec(spec, folder)


def _f0_vqvae(spec: dict[str, Any], folder: Path):
    return F0VQVAEFeatures.from_spec(spec, folder)


def _w2v2_style(spec: dict[str, Any], folder: Path):
    return W2V2StyleFeatures.from_spec(spec, folder)


# features kind -> loader (stream spec, saved tokenizer folder): a saved SpiritLM tokenizer loads back
FEATURE_LOADERS: dict[str, Callable[[dict[str, Any], Path], Any]] = {
    "spiritlm_mhubert": _mhubert, "spiritlm_f0_vqvae": _f0_vqvae, "spiritlm_w2v2_style": _w2v2_style,
}


def load_features(spec: dict[str, Any], folder: Path):
    return FEATURE_LOADERS[spec["kind"]](spec, folder)


def load_classifier(spec: dict[str, Any], arrays: dict[str, Any]):
    return ClassifierQuantizer.from_spec(spec, arrays)
