"""HiFi-GAN's discriminators: multi-period (MPD) and multi-scale (MSD), with a width dial.

    disc = Discriminators(DiscriminatorConfig(width=0.25))
    outs = disc(wav)                     # wav (B, 1, T)
    outs["mpd"].scores[k]                # (B, n_k) per-patch real/fake scores of sub-discriminator k
    outs["mpd"].features[k]              # its hidden activations (for the feature-matching loss)

Architecture as in the HiFi-GAN paper (Kong et al. 2020, section 2.2), which SpiritLM's
unit vocoder trains with:

- **MPD**: one sub-discriminator per period p (2, 3, 5, 7, 11). The waveform is padded
  (reflect) to a multiple of p and reshaped to (B, 1, T/p, p), so each column holds
  every p-th sample; five (5 x 1) convolutions with stride 3 along time (32, 128, 512,
  1024, 1024 channels, the last with stride 1) and a (3 x 1) output convolution.
  Weight norm everywhere.
- **MSD**: three sub-discriminators on the raw waveform, x2 and x4 average-pooled; 1-D
  grouped convolutions (128, 128, 256, 512, 1024, 1024, 1024 channels, kernel 41 for the
  strided ones) and a kernel-3 output. The first (raw scale) uses spectral norm, the
  others weight norm.

``width`` scales every channel count (1.0: the paper; the CPU recipe trains narrower
ones; tests use tiny ones); group counts shrink to divide the narrower channels.
Leaky-ReLU slope 0.1 after every hidden convolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

LRELU_SLOPE = 0.1
MPD_CHANNELS = (32, 128, 512, 1024, 1024)
MSD_CHANNELS = (128, 128, 256, 512, 1024, 1024, 1024)
# (kernel, stride, groups) of each MSD hidden convolution
MSD_LAYERS = ((15, 1, 1), (41, 2, 4), (41, 2, 16), (41, 4, 16), (41, 4, 16), (41, 1, 16), (5, 1, 1))


@dataclass(frozen=True)
class DiscriminatorConfig:
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    scales: int = 3
    width: float = 1.0  # multiplies every channel count (1.0: HiFi-GAN V1)

    def channels(self, base: tuple[int, ...]) -> list[int]:
        return [max(1, round(c * self.width)) for c in base]

    def check(self) -> None:
        if not self.periods or any(p < 1 for p in self.periods):
            raise ValueError(f"discriminator periods {list(self.periods)} must be positive integers (HiFi-GAN: 2, 3, 5, 7, 11)")
        if self.scales < 1:
            raise ValueError(f"discriminator scales={self.scales} must be >= 1 (HiFi-GAN: 3)")
        if not self.width > 0:
            raise ValueError(f"disc_width={self.width} must be > 0 (1.0: HiFi-GAN's widths)")


class Judgement(NamedTuple):
    """One discriminator's verdicts: ``scores[k]`` (B, n_k), ``features[k]`` a list of activations."""

    scores: list[torch.Tensor]
    features: list[list[torch.Tensor]]


def _wn(module: nn.Module) -> nn.Module:
    return parametrizations.weight_norm(module)


def _sn(module: nn.Module) -> nn.Module:
    return parametrizations.spectral_norm(module)


class PeriodDiscriminator(nn.Module):
    """One MPD sub-discriminator: 2-D convolutions over the (T/p, p) view of the waveform."""

    def __init__(self, period: int, channels: list[int], kernel: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        dims = [1, *channels]
        strides = [stride] * (len(channels) - 1) + [1]
        self.convs = nn.ModuleList(
            _wn(nn.Conv2d(cin, cout, (kernel, 1), (s, 1), padding=((kernel - 1) // 2, 0)))
            for cin, cout, s in zip(dims[:-1], dims[1:], strides)
        )
        self.conv_post = _wn(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def fold(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) -> (B, 1, ceil(T / p), p): reflect-pad to a multiple of p, column j holds samples j, j+p, ..."""
        b, c, t = wav.shape
        pad = (-t) % self.period
        if pad:
            wav = F.pad(wav, (0, pad), mode="reflect" if pad < t else "replicate")
        return wav.view(b, c, (t + pad) // self.period, self.period)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:  # (B, 1, T) -> (B, n), features
        x = self.fold(wav)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        x = self.conv_post(x)
        features.append(x)
        return x.flatten(1), features


class ScaleDiscriminator(nn.Module):
    """One MSD sub-discriminator: grouped 1-D convolutions over the waveform."""

    def __init__(self, channels: list[int], spectral: bool = False):
        super().__init__()
        norm = _sn if spectral else _wn
        dims = [1, *channels]
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(cin, cout, k, s, groups=math.gcd(g, cin, cout), padding=(k - 1) // 2))
            for cin, cout, (k, s, g) in zip(dims[:-1], dims[1:], MSD_LAYERS)
        )
        self.conv_post = norm(nn.Conv1d(channels[-1], 1, 3, 1, padding=1))

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:  # (B, 1, T) -> (B, n), features
        x, features = wav, []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        x = self.conv_post(x)
        features.append(x)
        return x.flatten(1), features


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, cfg.channels(MPD_CHANNELS)) for p in cfg.periods)

    def forward(self, wav: torch.Tensor) -> Judgement:
        outs = [d(wav) for d in self.discriminators]
        return Judgement([s for s, _ in outs], [f for _, f in outs])


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        channels = cfg.channels(MSD_CHANNELS)
        self.discriminators = nn.ModuleList(ScaleDiscriminator(channels, spectral=i == 0) for i in range(cfg.scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: torch.Tensor) -> Judgement:
        scores, features = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                wav = self.pool(wav)  # (B, 1, T) -> (B, 1, ~T / 2)
            s, f = d(wav)
            scores.append(s)
            features.append(f)
        return Judgement(scores, features)


class Discriminators(nn.Module):
    """MPD + MSD; ``forward`` gives each one's :class:`Judgement` by name."""

    def __init__(self, cfg: DiscriminatorConfig | None = None):
        super().__init__()
        self.cfg = cfg or DiscriminatorConfig()
        self.cfg.check()
        self.mpd = MultiPeriodDiscriminator(self.cfg)
        self.msd = MultiScaleDiscriminator(self.cfg)

    def forward(self, wav: torch.Tensor) -> dict[str, Judgement]:  # wav (B, 1, T)
        return {"mpd": self.mpd(wav), "msd": self.msd(wav)}
