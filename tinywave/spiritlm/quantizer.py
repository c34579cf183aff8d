"""SpiritLM's unit quantizer ``hubert_25hz/L11_quantizer_500.pt``.

A linear (MLP) head on mHuBERT layer-11 features, 500 units plus a CTC blank that takes
its left neighbour's code (docs/SPIRITLM.md 2.2). The reader is
:class:`tinywave.speech.hubert.LinearQuantizer` (tensors only, strict keys); this module
adds the release's file name and the check that the quantizer was made for the encoder.
"""

from __future__ import annotations

from pathlib import Path

from tinywave.speech.hubert import LinearQuantizer

FILE = "L11_quantizer_500.pt"
OUTPUT_LAYER = 11  # the layer the release's quantizer reads (1-based, fairseq's output_layer)


def load_unit_quantizer(path: str | Path, encoder_dim: int | None = None) -> LinearQuantizer:
    """The linear quantizer; ``encoder_dim`` (the mHuBERT width) must equal its input ``dim``."""
    quant = LinearQuantizer.from_file(path)
    if encoder_dim is not None and quant.dim != encoder_dim:
        raise ValueError(f"{path}: the quantizer reads {quant.dim}-dimensional features but the mHuBERT encoder is "
                         f"{encoder_dim} wide; use the quantizer shipped with that encoder")
    return quant
