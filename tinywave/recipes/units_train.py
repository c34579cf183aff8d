"""Recipe: fit a speech tokenizer (units, optional pitch and style) on a manifest.

    tinywave units train --manifest corpus/manifest.jsonl --out runs/speech_tokenizer \
        rate=12.5 n_units=128 --pitch --style
    tinywave units train --out runs/hubert_tok kind=hubert hubert.model=mhubert_hf \
        hubert.layer=11 hubert.quantizer=L11_quantizer_500.pt string_rate=24.99

Built-in kinds (``mfcc_kmeans``, ``logmel_kmeans``) and ``kind=hubert`` without a
quantizer file fit k-means on the manifest; pitch (64 codes, 12.5 Hz) and style (100
codes, 1 Hz) are fitted when asked. The result is a tokenizer directory (docs/FORMATS.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tinywave.audio.f0 import F0Settings
from tinywave.config import field
from tinywave.data.manifest import read_manifest

log = logging.getLogger(__name__)


@dataclass
class HubertSection:
    model: str = field("", help="local HubertModel directory (config.json + safetensors)")
    layer: int = field(11, help="hidden_states index: 0 = transformer input, k = output of block k (SpiritLM: 11)")
    quantizer: str = field("", help="k-means centroids .npy [K, D] or SpiritLM linear quantizer .pt; empty: fit k-means on the manifest")
    normalize: bool = field(False, help="layer-normalize each waveform chunk first (checkpoints trained with normalize=True)")


@dataclass
class F0Section:
    floor: float = field(50.0, help="lowest F0 searched (Hz)")
    ceil: float = field(800.0, help="highest F0 searched (Hz)")
    speed: int = field(4, help="DIO decimation 1..12 (1: slowest; 4 keeps contours within a cent of 1)")


@dataclass
class Config:
    manifest: list[str] = field([], help="manifest JSONL file(s) with the audio to fit on")
    out: str = field("", help="output speech tokenizer directory")
    kind: str = field("mfcc_kmeans", help="unit extractor: mfcc_kmeans, logmel_kmeans or hubert")
    rate: float = field(25.0, help="built-in unit rate in Hz (must divide 100: 25, 12.5, ...)")
    n_units: int = field(500, help="number of unit codes (at most 501, the [Hu] block)")
    n_mels: int = field(40, help="mel bands of the built-in features")
    n_mfcc: int = field(20, help="cepstral coefficients (mfcc_kmeans)")
    deltas: bool = field(True, help="append delta features (built-in kinds)")
    pitch: bool = field(False, help="add the pitch stream (12.5 Hz)")
    n_pitch: int = field(64, help="pitch codes (at most 64)")
    style: bool = field(False, help="add the style stream (1 Hz)")
    n_style: int = field(100, help="style codes (at most 100)")
    f0: F0Section = field(default_factory=F0Section, help="F0 extraction (pitch and style)")
    hubert: HubertSection = field(default_factory=HubertSection, help="kind=hubert settings")
    string_rate: float = field(0.0, help="unit rate written into strings (0: the extractor's own; 24.99 for SpiritLM's mHuBERT)")
    max_seconds: float = field(3600.0, help="seconds of audio used for fitting (seeded random subset; 0: all)")
    max_frames: int = field(100_000, help="vectors per k-means fit (random subset)")
    seed: int = field(0, help="seed for the audio subset and k-means")
    workers: int = field(2, help="feature extraction processes")
    trust_pickle: bool = field(False, help="allow a quantizer file that needs arbitrary unpickling (can run code: only for files you trust)")


def unit_features(cfg: Config):
    # lazy: tinywave.speech imports scipy (~0.2 s); `tinywave units train --help` imports this module without it
    from tinywave.speech.builtin import FrameFeatures
    from tinywave.speech.hubert import HubertFeatures

    makers = {
        "mfcc_kmeans": lambda: FrameFeatures("mfcc_kmeans", cfg.rate, cfg.n_mels, cfg.n_mfcc, cfg.deltas),
        "logmel_kmeans": lambda: FrameFeatures("logmel_kmeans", cfg.rate, cfg.n_mels, cfg.n_mfcc, cfg.deltas),
        "hubert": lambda: HubertFeatures(_need(cfg.hubert.model, "hubert.model"), cfg.hubert.layer, cfg.hubert.normalize),
    }
    if cfg.kind not in makers:
        raise ValueError(f"kind={cfg.kind!r} is not known; choose one of {sorted(makers)}")
    return makers[cfg.kind]()


def _need(value: str, key: str) -> str:
    if not value:
        raise ValueError(f"{key} is required for kind=hubert: a local HubertModel directory")
    return value


def run(cfg: Config) -> int:
    # lazy: tinywave.speech (and data.units_job, built on it) imports scipy (~0.2 s), as in unit_features
    from tinywave.speech.extractor import QuantizedExtractor
    from tinywave.speech.hubert import load_quantizer
    from tinywave.speech.pitch import PitchFeatures
    from tinywave.speech.style import StyleFeatures
    from tinywave.speech.tokenizer import MAX_CODES, SpeechTokenizer
    from tinywave.data.units_job import collect_vectors, fit_codebooks, select_items

    if not cfg.out:
        raise ValueError("--out is required: the speech tokenizer directory to write")
    n_codes = {"hubert": cfg.n_units, "pitch": cfg.n_pitch, "style": cfg.n_style}
    for name, n in n_codes.items():
        if not 1 <= n <= MAX_CODES[name]:
            raise ValueError(f"{'n_units' if name == 'hubert' else 'n_' + name}={n} must be in 1..{MAX_CODES[name]} (the [{name}] vocabulary block)")
    # 1. features of each stream (settings only) and a given quantizer, if any
    f0 = F0Settings(cfg.f0.floor, cfg.f0.ceil, cfg.f0.speed)
    features = {"hubert": unit_features(cfg)}
    if cfg.pitch:
        features["pitch"] = PitchFeatures(f0=f0)
    if cfg.style:
        features["style"] = StyleFeatures(n_mels=cfg.n_mels, f0=f0)
    given = load_quantizer(cfg.hubert.quantizer, cfg.trust_pickle) if cfg.kind == "hubert" and cfg.hubert.quantizer else None
    to_fit = {name: f for name, f in features.items() if not (name == "hubert" and given is not None)}
    # 2. vectors from a seeded subset of the manifest(s), then one codebook per stream
    books, meta = {}, {"seed": cfg.seed, "manifests": [str(Path(m).resolve()) for m in cfg.manifest]}
    if to_fit:
        if not cfg.manifest:
            raise ValueError("--manifest is required to fit codebooks (pass kind=hubert with hubert.quantizer to skip fitting)")
        items = [it for m in cfg.manifest for it in read_manifest(m)[0]]
        chosen, seconds = select_items(items, cfg.max_seconds, cfg.seed)
        log.info("fitting %s on %d utterances (%.0f s of audio)", sorted(to_fit), len(chosen), seconds)
        vectors, bad = collect_vectors(chosen, to_fit, cfg.workers)
        if bad:
            log.warning("%d of %d utterances could not be used (first: %s: %s)", len(bad), len(chosen), bad[0].where, bad[0].detail)
        books = fit_codebooks(vectors, n_codes, cfg.seed, cfg.max_frames)
        meta |= {"utterances": len(chosen) - len(bad), "seconds": round(seconds, 2)}
    # 3. the tokenizer directory
    quantizers = {**books, **({"hubert": given} if given is not None else {})}
    streams = {name: QuantizedExtractor(f, quantizers[name]) for name, f in features.items()}
    string_rates = {"hubert": cfg.string_rate} if cfg.string_rate else None
    tok = SpeechTokenizer(streams["hubert"], streams.get("pitch"), streams.get("style"), string_rates, meta)
    tok.save(cfg.out)
    log.info("speech tokenizer -> %s: rates %s, codes %s, fingerprint %s", cfg.out, tok.rates, tok.n_codes, tok.fingerprint)
    return 0
