"""The unit HiFi-GAN generator, with SpiritLM's architecture and state-dict key names.

Units (phonetic ``dict``, optional pitch ``f0_dict`` and style ``style_dict`` codes) are
embedded, optionally stretched by a duration predictor (for deduplicated units),
concatenated with a speaker (``spkr``) and a global-style (``style``) embedding, and
turned into a 16 kHz waveform by a HiFi-GAN V1 generator (``conv_pre``, ``ups.{i}``,
``resblocks.{n}``, ``conv_post``). See docs/SPIRITLM.md section 2.6.

Optional iSTFT head (iSTFTNet's idea; config fields ``gen_istft_n_fft`` /
``gen_istft_hop_size``): the upsampling stops at the STFT frame rate and ``conv_post``
predicts a log magnitude and a phase per frequency bin, turned into the waveform by an
inverse STFT. All convolutions then run at <= 100-200 Hz instead of 16 kHz, which is what
makes a useful vocoder trainable in minutes on a CPU. SpiritLM's released vocoders do
not use it; their configs load unchanged.

Weight norm uses ``torch.nn.utils.parametrizations``; state-dict hooks rename its keys to
the old-style ``weight_g`` / ``weight_v`` names, so ``state_dict()`` has SpiritLM's keys
and a SpiritLM ``generator.pt`` state dict loads with ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

LRELU_SLOPE = 0.1  # inside resblocks and before each upsampling
_PARAM_KEYS = {".parametrizations.weight.original0": ".weight_g", ".parametrizations.weight.original1": ".weight_v"}

# config.json keys this implementation reads; the continuous-f0 paths are not supported
_UNSUPPORTED = {"f0": "a continuous f0 input", "embedder_params": "a speaker-embedder input", "f0_quant_num_bin": "quantized continuous f0"}


@dataclasses.dataclass(frozen=True)
class HifiGanConfig:
    """The fields of a SpiritLM vocoder ``config.json`` (same names, same meaning)."""

    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    num_embeddings: int
    embedding_dim: int
    model_in_dim: int
    code_hop_size: int
    num_f0_tokens: int | None = None
    f0_hop_size: int | None = None
    num_style_tokens: int | None = None
    style_hop_size: int | None = None
    multispkr: bool = False
    num_speakers: int = 200
    multistyle: bool = False
    num_styles: int = 100
    dur_predictor_params: dict[str, Any] | None = None
    sampling_rate: int = 16000
    gen_istft_n_fft: int | None = None  # iSTFT head: FFT size (window = n_fft, Hann)
    gen_istft_hop_size: int | None = None  # iSTFT head: samples per STFT frame

    @property
    def istft(self) -> bool:
        return self.gen_istft_hop_size is not None

    @property
    def frame_hop(self) -> int:
        """Samples per output frame of the last upsampling stage (1 without the iSTFT head)."""
        return self.gen_istft_hop_size or 1

    @property
    def n_tables(self) -> int:
        """Number of embeddings concatenated on the channel axis."""
        return 1 + (self.num_f0_tokens is not None) + (self.num_style_tokens is not None) + self.multispkr + self.multistyle

    @property
    def hubert_to_f0(self) -> float:
        """Unit frames per pitch code (SpiritLM: 2; 1 for pitch at the unit rate)."""
        return (self.f0_hop_size or self.code_hop_size) / self.code_hop_size

    @property
    def hubert_to_style(self) -> float:
        """Unit frames per style code (SpiritLM: 25; 12.5 for 1 Hz style over 12.5 Hz units)."""
        return (self.style_hop_size or self.code_hop_size) / self.code_hop_size

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "config.json") -> "HifiGanConfig":
        for key, what in _UNSUPPORTED.items():
            if data.get(key):
                raise ValueError(f"{where}: '{key}' asks for {what}, which this unit vocoder does not support; use a unit-only vocoder config")
        if str(data.get("resblock", "1")) != "1":
            raise ValueError(f"{where}: resblock={data['resblock']!r}; only HiFi-GAN V1 resblocks ('1') are supported")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names and v is not None}
        if "dur_prediction_weight" in data and not data["dur_prediction_weight"]:
            kw.pop("dur_predictor_params", None)  # speech-resynthesis builds the predictor only with a loss weight
        missing = [n for n in ("upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel", "resblock_kernel_sizes",
                               "resblock_dilation_sizes", "num_embeddings", "embedding_dim", "code_hop_size") if n not in kw]
        if missing:
            raise ValueError(f"{where}: missing vocoder config fields {missing}")
        for k in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            kw[k] = tuple(int(v) for v in kw[k])
        kw["resblock_dilation_sizes"] = tuple(tuple(int(d) for d in ds) for ds in kw["resblock_dilation_sizes"])
        kw["multispkr"], kw["multistyle"] = bool(kw.get("multispkr")), bool(kw.get("multistyle"))
        kw.setdefault("model_in_dim", 80)
        cfg = cls(**kw)
        cfg.check(where)
        return cfg

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items() if v is not None}

    def check(self, where: str = "config.json") -> None:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError(f"{where}: upsample_rates and upsample_kernel_sizes must have the same length")
        if (self.gen_istft_n_fft is None) != (self.gen_istft_hop_size is None):
            raise ValueError(f"{where}: set both gen_istft_n_fft and gen_istft_hop_size (iSTFT head) or neither")
        if self.istft and (self.gen_istft_n_fft < self.frame_hop or self.gen_istft_n_fft % 2):
            raise ValueError(f"{where}: gen_istft_n_fft={self.gen_istft_n_fft} must be even and >= gen_istft_hop_size={self.frame_hop}")
        if math.prod(self.upsample_rates) * self.frame_hop != self.code_hop_size:
            raise ValueError(f"{where}: upsample_rates {list(self.upsample_rates)} x iSTFT hop {self.frame_hop} must equal "
                             f"code_hop_size={self.code_hop_size}")
        if any(len(d) != 3 for d in self.resblock_dilation_sizes):
            raise ValueError(f"{where}: every resblock_dilation_sizes entry needs exactly 3 dilations (HiFi-GAN V1 resblocks)")
        if self.model_in_dim != self.embedding_dim * self.n_tables:
            raise ValueError(f"{where}: model_in_dim={self.model_in_dim} must equal embedding_dim x active tables = "
                             f"{self.embedding_dim} x {self.n_tables}")
        dur = self.dur_predictor_params
        if dur is not None:
            if dur.get("encoder_embed_dim") != self.embedding_dim or dur.get("var_pred_kernel_size") != 3:
                raise ValueError(f"{where}: dur_predictor_params needs encoder_embed_dim == embedding_dim and var_pred_kernel_size == 3")


def upsample_plan(hop: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Upsampling factors (largest first, each <= 8) whose product is ``hop``, and their kernels (none for 1)."""
    rates, left = [], hop
    while left > 1:
        factor = next((f for f in (8, 5, 4, 3, 2) if left % f == 0), None)
        if factor is None:
            raise ValueError(f"unit hop of {hop} samples has a prime factor above 8; use a unit rate whose hop is 2^a 3^b 5^c (e.g. 25 or 12.5 Hz)")
        rates.append(factor)
        left //= factor
    return tuple(rates), tuple(2 * u + u % 2 for u in rates)


def small_config(num_embeddings: int, code_hop_size: int, *, channels: int = 128, embedding_dim: int = 64,
                 num_speakers: int = 0, num_f0_tokens: int | None = None, num_style_tokens: int | None = None,
                 kernels: tuple[int, ...] = (3, 7, 11), dur_hidden: int = 64, istft_hop: int = 0,
                 istft_n_fft: int = 0, f0_hop_size: int = 0, style_hop_size: int = 0) -> HifiGanConfig:
    """A scaled-down configuration for CPU training (SpiritLM's architecture; ``istft_hop`` > 0 adds the iSTFT head).

    ``f0_hop_size`` / ``style_hop_size``: samples per pitch / style code (the speech tokenizer's
    rates); 0 keeps SpiritLM's 2 and 25 unit frames per code.
    """
    if istft_hop and code_hop_size % istft_hop:
        raise ValueError(f"istft_hop={istft_hop} must divide the unit hop of {code_hop_size} samples; pass a divisor "
                         f"(160 suits 12.5, 25 and 50 Hz units) or istft_hop=0 for the plain generator")
    rates, ks = upsample_plan(code_hop_size // istft_hop if istft_hop else code_hop_size)
    cfg = HifiGanConfig(
        upsample_rates=rates, upsample_kernel_sizes=ks, upsample_initial_channel=channels,
        resblock_kernel_sizes=tuple(kernels), resblock_dilation_sizes=tuple((1, 3, 5) for _ in kernels),
        num_embeddings=num_embeddings, embedding_dim=embedding_dim, model_in_dim=0, code_hop_size=code_hop_size,
        num_f0_tokens=num_f0_tokens, f0_hop_size=(f0_hop_size or 2 * code_hop_size) if num_f0_tokens else None,
        num_style_tokens=num_style_tokens, style_hop_size=(style_hop_size or 25 * code_hop_size) if num_style_tokens else None,
        multispkr=num_speakers > 0, num_speakers=max(num_speakers, 1),
        dur_predictor_params={"encoder_embed_dim": embedding_dim, "var_pred_hidden_dim": dur_hidden,
                              "var_pred_kernel_size": 3, "var_pred_dropout": 0.5},
        gen_istft_n_fft=(istft_n_fft or 4 * istft_hop) if istft_hop else None, gen_istft_hop_size=istft_hop or None,
    )
    return dataclasses.replace(cfg, model_in_dim=embedding_dim * cfg.n_tables)


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


def _wn(module: nn.Module) -> nn.Module:
    return parametrizations.weight_norm(module, name="weight", dim=0)


class ResBlock1(nn.Module):
    """HiFi-GAN V1 residual block: 3 x (lrelu, dilated conv, lrelu, conv) + residual."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(_wn(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d))) for d in dilations)
        self.convs2 = nn.ModuleList(_wn(nn.Conv1d(channels, channels, kernel, padding=_padding(kernel))) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, T)
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x


class DurationPredictor(nn.Module):
    """Predicts log(1 + run length) per deduplicated unit from its embedding."""

    def __init__(self, encoder_embed_dim: int, var_pred_hidden_dim: int, var_pred_kernel_size: int, var_pred_dropout: float):
        super().__init__()
        k = var_pred_kernel_size
        self.conv1 = nn.Sequential(nn.Conv1d(encoder_embed_dim, var_pred_hidden_dim, k, padding=(k - 1) // 2), nn.ReLU())
        self.ln1 = nn.LayerNorm(var_pred_hidden_dim)
        self.dropout = var_pred_dropout
        self.conv2 = nn.Sequential(nn.Conv1d(var_pred_hidden_dim, var_pred_hidden_dim, k, padding=1), nn.ReLU())
        self.ln2 = nn.LayerNorm(var_pred_hidden_dim)
        self.proj = nn.Linear(var_pred_hidden_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, E) -> (B, N)
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)
        x = F.dropout(self.ln1(x), p=self.dropout, training=self.training)
        x = self.conv2(x.transpose(1, 2)).transpose(1, 2)
        x = F.dropout(self.ln2(x), p=self.dropout, training=self.training)
        return self.proj(x).squeeze(-1)


def _rename_keys(state: dict[str, torch.Tensor], mapping: dict[str, str]) -> None:
    """Rename key suffixes in place, keeping the order."""
    items = list(state.items())
    state.clear()
    for key, value in items:
        for old, new in mapping.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
        state[key] = value


class UnitHiFiGAN(nn.Module):
    """SpiritLM's unit HiFi-GAN (``CodeGenerator``): units -> 16 kHz waveform."""

    def __init__(self, cfg: HifiGanConfig):
        super().__init__()
        cfg.check("vocoder config")
        self.cfg = cfg
        e = cfg.embedding_dim
        self.dict = nn.Embedding(cfg.num_embeddings, e)
        self.f0_dict = nn.Embedding(cfg.num_f0_tokens, e) if cfg.num_f0_tokens is not None else None
        self.style_dict = nn.Embedding(cfg.num_style_tokens, e) if cfg.num_style_tokens is not None else None
        self.spkr = nn.Embedding(cfg.num_speakers, e) if cfg.multispkr else None
        self.style = nn.Embedding(cfg.num_styles, e) if cfg.multistyle else None
        self.dur_predictor = DurationPredictor(**cfg.dur_predictor_params) if cfg.dur_predictor_params else None
        c = cfg.upsample_initial_channel
        self.conv_pre = _wn(nn.Conv1d(cfg.model_in_dim, c, 7, padding=3))
        self.ups = nn.ModuleList(
            _wn(nn.ConvTranspose1d(c // 2**i, c // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        self.resblocks = nn.ModuleList(
            ResBlock1(c // 2 ** (i + 1), k, d)
            for i in range(len(cfg.upsample_rates))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
        )
        out = cfg.gen_istft_n_fft + 2 if cfg.istft else 1  # iSTFT head: log magnitude + phase per bin
        self.conv_post = _wn(nn.Conv1d(c // 2 ** len(cfg.upsample_rates), out, 7, padding=3))
        if cfg.istft:
            self.register_buffer("istft_window", torch.hann_window(cfg.gen_istft_n_fft), persistent=False)
        self.register_state_dict_post_hook(lambda m, sd, prefix, meta: _rename_keys(sd, _PARAM_KEYS))
        self.register_load_state_dict_pre_hook(self._load_hook)

    @staticmethod
    def _load_hook(module, state, prefix, meta, strict, missing, unexpected, errors) -> None:
        if parametrize.is_parametrized(module.conv_pre, "weight"):  # weight norm still on: old names -> parametrization
            _rename_keys(state, {v: k for k, v in _PARAM_KEYS.items()})

    # --- conditioning -------------------------------------------------------------
    def embed(self, code: torch.Tensor, f0_code: torch.Tensor | None = None, style_code: torch.Tensor | None = None,
              speaker: torch.Tensor | None = None, style: torch.Tensor | None = None,
              durations: torch.Tensor | None = None) -> torch.Tensor:
        """Conditioning (B, model_in_dim, T) from codes (B, N); ``durations`` (N,) stretches deduplicated units."""
        x = self.dict(code).transpose(1, 2)  # (B, E, N)
        n = x.shape[-1]
        if durations is not None:
            x = torch.repeat_interleave(x, durations, dim=2)
        parts = [x]
        for table, codes, ratio in ((self.f0_dict, f0_code, self.cfg.hubert_to_f0), (self.style_dict, style_code, self.cfg.hubert_to_style)):
            if table is None:
                continue
            if codes is None:
                raise ValueError("this vocoder needs pitch/style codes too; pass the expressive streams (pitch, style)")
            emb = table(codes).transpose(1, 2)  # (B, E, K)
            emb = torch.repeat_interleave(emb, durations, dim=2) if durations is not None else _stretch(emb, ratio, n)
            parts.append(emb)
        t = x.shape[-1]
        for table, ids, what in ((self.spkr, speaker, "speaker"), (self.style, style, "style")):
            if table is None:
                continue
            if ids is None:
                raise ValueError(f"this vocoder needs a {what} id")
            parts.append(table(ids.view(-1)).unsqueeze(-1).expand(-1, -1, t))  # (B, E, T)
        return torch.cat(parts, dim=1)

    def predict_durations(self, code: torch.Tensor) -> torch.Tensor:
        """Frames per deduplicated unit, (N,) long, >= 1, for one utterance (1, N)."""
        if self.dur_predictor is None:
            raise ValueError("this vocoder has no duration predictor; pass raw (not deduplicated) units")
        log_dur = self.dur_predictor(self.dict(code))  # (1, N)
        return torch.clamp(torch.round(torch.exp(log_dur) - 1).long(), min=1).view(-1)

    # --- waveform -----------------------------------------------------------------
    def generator(self, x: torch.Tensor) -> torch.Tensor:  # (B, model_in_dim, T) -> (B, 1, T * hop)
        x = self.conv_pre(x)
        nk = len(self.cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = sum(self.resblocks[i * nk + j](x) for j in range(nk)) / nk
        x = F.leaky_relu(x)  # default slope 0.01, as in the reference
        if self.cfg.istft:
            return self._istft(self.conv_post(x))
        return torch.tanh(self.conv_post(x))

    def _istft(self, x: torch.Tensor) -> torch.Tensor:  # (B, n_fft + 2, M) -> (B, 1, M * hop)
        n_fft, hop = self.cfg.gen_istft_n_fft, self.cfg.frame_hop
        x = F.pad(x, (0, 1), mode="replicate")  # M + 1 centred frames -> exactly M * hop samples
        bins = n_fft // 2 + 1
        magnitude = torch.exp(x[:, :bins].clamp(max=8.0))  # (B, F, M + 1)
        phase = math.pi * torch.sin(x[:, bins:])
        spec = torch.polar(magnitude, phase)
        return torch.istft(spec, n_fft, hop, n_fft, self.istft_window, center=True).unsqueeze(1)

    def forward(self, code: torch.Tensor, f0_code: torch.Tensor | None = None, style_code: torch.Tensor | None = None,
                speaker: torch.Tensor | None = None, style: torch.Tensor | None = None,
                durations: torch.Tensor | None = None) -> torch.Tensor:  # (B, N) -> (B, 1, samples)
        return self.generator(self.embed(code, f0_code, style_code, speaker, style, durations))

    def remove_weight_norm(self) -> "UnitHiFiGAN":
        """Fold weight norm into plain weights for inference (state-dict keys become ``weight``)."""
        for m in self.modules():
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        return self

    def receptive_units(self) -> int:
        """Units each output sample depends on, each side (a safe upper bound, for chunked vocoding)."""
        cfg = self.cfg
        side, rate = 3.0, 1  # conv_pre: kernel 7 at the unit rate
        res = max(sum((k - 1) * d // 2 + (k - 1) // 2 for d in dils) for k, dils in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes))
        for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
            side += math.ceil(k / u) / rate  # transposed conv, in frames of the previous rate
            rate *= u
            side += res / rate  # the stage's resblocks
        side += 3 / rate  # conv_post
        if cfg.istft:  # overlap-add reaches n_fft / 2 samples, i.e. ceil(n_fft / 2 / hop) frames, each side
            side += math.ceil(cfg.gen_istft_n_fft / 2 / cfg.frame_hop) / rate
        return int(math.ceil(side))


def code_index(n: int, ratio: float, k: int) -> torch.Tensor:
    """(n,) index of the code under each of ``n`` unit frames, ``ratio`` frames per code (may be fractional), clamped to k - 1."""
    return torch.clamp(torch.floor(torch.arange(n, dtype=torch.float64) / ratio).long(), max=max(k - 1, 0))


def _stretch(emb: torch.Tensor, ratio: float, n: int) -> torch.Tensor:
    """(B, E, K) codes -> (B, E, n): code ``floor(t / ratio)`` under frame t (the last one past the end)."""
    k = emb.shape[-1]
    if abs(k * ratio - n) / ratio > 2:  # a stream may count one more code (frames n // hop + 1) and a partial last one
        raise ValueError(f"{k} codes at {ratio:g} units each do not match {n} units; the streams are not aligned")
    return emb[..., code_index(n, ratio, k)]
