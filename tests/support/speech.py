"""Speech tokenizers that need no training: random codebooks of the right shapes, and a deterministic stand-in."""

from __future__ import annotations

import numpy as np
import torch

from tinywave.speech.builtin import FrameFeatures
from tinywave.speech.extractor import QuantizedExtractor
from tinywave.speech.format import units_to_string
from tinywave.speech.kmeans import Codebook
from tinywave.speech.pitch import PitchFeatures
from tinywave.speech.style import StyleFeatures
from tinywave.speech.tokenizer import SpeechTokenizer


def random_tokenizer(rate: float = 25.0, seed: int = 0, pitch: bool = True, style: bool = True) -> SpeechTokenizer:
    """A built-in tokenizer with random centroids of the right shapes (for counts and plumbing);
    ``pitch=False, style=False``: units only."""
    rng = np.random.default_rng(seed)
    units = QuantizedExtractor(FrameFeatures("mfcc_kmeans", rate), Codebook(rng.normal(size=(16, 40)).astype(np.float32)))
    p = QuantizedExtractor(PitchFeatures(), Codebook(rng.normal(size=(8, 32)).astype(np.float32))) if pitch else None
    s = QuantizedExtractor(StyleFeatures(), Codebook(rng.normal(size=(4, 83)).astype(np.float32), np.zeros(83, np.float32), np.ones(83, np.float32))) if style else None
    return SpeechTokenizer(units, p, s)


class StandInSpeechTokenizer:
    """Deterministic units: arg-max of a fixed random projection of pooled log-mel frames.

    The same API as ``tinywave.speech.tokenizer.SpeechTokenizer`` (``rates``, ``fingerprint``,
    ``encode_units``, ``encode_string``) with no fitting: audio tokenization is not what the
    generation unit tests test; the vocoder end-to-end test uses the real one.
    """

    def __init__(self, n_units: int = 32, rate: float = 25.0, seed: int = 0):
        self.n_units = n_units
        self.rates = {"hubert": rate}
        self.hop = int(round(16000 / rate))
        self.fingerprint = f"stand-in-{n_units}-{rate}-{seed}"
        self.proj = np.random.default_rng(seed).standard_normal((n_units, 40)).astype(np.float32)

    def encode_units(self, wav: np.ndarray) -> dict[str, list[int]]:
        from tinywave.vocoder.spectral import MelSpec

        with torch.no_grad():
            logmel = MelSpec(n_mels=40)(torch.as_tensor(np.asarray(wav, dtype=np.float32))[None])[0].numpy().T  # (F, 40)
        per = self.hop // 160
        n = len(wav) // self.hop
        frames = logmel[: n * per].reshape(n, per, -1).mean(1)
        frames = frames - frames.mean(1, keepdims=True)
        return {"hubert": (frames @ self.proj.T).argmax(1).tolist()}

    def encode_string(self, wav: np.ndarray) -> str:
        return units_to_string(self.encode_units(wav)["hubert"], rates=self.rates)
