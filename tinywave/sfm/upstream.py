"""An s3prl-compatible upstream over any HuBERT-family model directory.

    up = Upstream("runs/sfm/student")              # HubertModel / WavLMModel / Wav2Vec2Model dir
    out = up([torch.randn(16000), torch.randn(24000)])   # unpadded 1-D 16 kHz float tensors
    out["hidden_states"]      # L + 1 tensors, each (B, T_max, D); index 0 = front-end output
    up.get_downsample_rates("hidden_states")   # 320: samples per frame (product of CNN strides)

The interface s3prl's runner expects of an ``UpstreamExpert`` (see docs/SFM.md for the
registration): ``__init__(ckpt, **kwargs)``, ``get_downsample_rates(key)`` and
``forward(wavs) -> {"hidden_states": [...]}``, all tensors padded to the longest item;
item b has ``frame_lengths[b]`` real frames (also returned, as ``"frame_lengths"``).
"""

from __future__ import annotations

import torch
from torch import nn

from tinywave.sfm.models import downsample_rate, frame_lengths, hidden_states, load_encoder

SAMPLE_RATE = 16000


class Upstream(nn.Module):
    def __init__(self, ckpt: str, model_config: str | None = None, **kwargs):
        super().__init__()
        self.model = load_encoder(ckpt)
        self.model.eval()

    def get_downsample_rates(self, key: str = "hidden_states") -> int:
        """Input samples per output frame for every output ``key`` (all share one rate)."""
        return downsample_rate(self.model.config)

    def forward(self, wavs: list[torch.Tensor]) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        if not isinstance(wavs, (list, tuple)) or not wavs:
            raise ValueError("Upstream expects a non-empty list of 1-D waveform tensors (16 kHz)")
        bad = [i for i, w in enumerate(wavs) if w.dim() != 1]
        if bad:
            raise ValueError(f"waveforms {bad} are not 1-D; pass unpadded mono 16 kHz tensors, one per utterance")
        device = next(self.model.parameters()).device
        lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
        padded = torch.zeros(len(wavs), int(lengths.max()), device=device)  # (B, N)
        for b, w in enumerate(wavs):
            padded[b, : len(w)] = w.to(device=device, dtype=padded.dtype)
        states = hidden_states(self.model, padded, lengths.to(device))  # L + 1 x (B, T, D)
        return {"hidden_states": states, "last_hidden_state": states[-1],
                "frame_lengths": frame_lengths(self.model.config, lengths)}
