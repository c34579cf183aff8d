"""Dynamic int8 linear layers for CPU decoding.

:class:`Int8Linear` stores a linear layer's weight as int8 with one float scale per output
channel (symmetric: ``scale = max |w_row| / 127``, ``q = round(w / scale)``), a quarter of
its fp32 bytes. Each call quantizes the activations the same way, one scale per row
(token), multiplies int8 by int8 into int32 with ``torch._int_mm`` and rescales:
``y = (x_q @ q^T) * s_x * s_w + b``. Where that kernel is missing (or off CPU) the same
product runs in floating point on the dequantized operands; :meth:`Int8Linear.reference`
is that path, and the kernel is tested against it.

It replaces ``torch.ao.quantization.quantize_dynamic`` (deprecated), which did the same
with one activation scale per tensor. Measured side by side on this project's CPU (1
thread, a width x 4*width layer; ``benchmarks``-style ratios, noisy on a shared machine):
the int8 product takes 0.3-0.75x the fp32 time at width 1024 and 0.45x for 64 rows at
width 256, but 1.4x for one row at width 256, where quantizing the activation costs more
than the smaller matmul saves. torch's weight-only kernel ``torch._weight_int8pack_mm``
was 5-76x slower than fp32 here, so it is not used.

``int8_backend=torchao`` uses torchao's ``Int8DynamicActivationInt8WeightConfig`` instead (the
maintained successor of ``quantize_dynamic``; ``pip install 'tinywave[torchao]'``, which pins a
release that installs beside this project's torch). It quantizes the same layers the same way
(per-channel int8 weights, per-token int8 activations). Measured side by side on an AVX2-only
EPYC without VNNI (1 thread, a width x 4*width x width MLP): both backends agree with fp32
to a relative error of 1.2%, and both are slower than fp32 there (torchao 3.8-45x, this
module 5.3-49x the fp32 time, neither consistently faster than the other), so the default
stays the dependency-free one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_INT_MM = getattr(torch, "_int_mm", None)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: (q int8 like ``x``, scale (rows, 1) float32) with ``x ~ q * scale``."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / 127.0  # (rows, 1)
    return torch.round(x / scale).clamp(-127, 127).to(torch.int8), scale


class Int8Linear(nn.Module):
    """``y = (x_q @ q^T) * s_x * s_w + b`` with ``q`` int8 (out, in), ``s_w`` (out,), ``x_q, s_x`` per row."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        assert qweight.dtype == torch.int8 and qweight.ndim == 2 and scale.shape == qweight.shape[:1]
        self.in_features, self.out_features = qweight.shape[1], qweight.shape[0]
        self.register_buffer("qweight", qweight.contiguous())  # (out, in) int8
        self.register_buffer("scale", scale.float().contiguous())  # (out,)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        q, scale = quantize_rows(linear.weight.detach().float())  # (out, in), (out, 1)
        return cls(q, scale[:, 0], linear.bias)

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scale[:, None]  # (out, in)

    def _finish(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same quantized product in floating point (dequantized activations and weights)."""
        xq, sx = quantize_rows(x.reshape(-1, self.in_features).float())  # (N, in), (N, 1)
        return self._finish(F.linear(xq.float() * sx, self.dequantized()), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _INT_MM is None or x.device.type != "cpu":
            return self.reference(x)
        xq, sx = quantize_rows(x.reshape(-1, self.in_features).float())  # (N, in) int8, (N, 1)
        acc = _INT_MM(xq, self.qweight.t())  # (N, out) int32
        return self._finish(acc.float() * sx * self.scale, x)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8 weights and activations"


def quantize_linears(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` in place by an :class:`Int8Linear`; returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear.from_linear(child))
    return model


def _torchao_linears(model: nn.Module) -> nn.Module:
    """torchao's dynamic int8 (activations per token, weights per channel) on every ``nn.Linear``, in place."""
    try:  # lazy: optional extra (pip install 'tinywave[torchao]')
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        raise ValueError("int8_backend=torchao needs the torchao package: pip install 'tinywave[torchao]' "
                         "(or int8_backend=tinywave, which needs nothing more)") from None
    quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda m, _: isinstance(m, nn.Linear))
    return model


# int8_backend -> in-place quantization of a model's linear layers
INT8_BACKENDS = {"tinywave": quantize_linears, "torchao": _torchao_linears}


def int8_backend(name: str):
    """The quantizer named ``name`` (``INT8_BACKENDS``), or a ValueError naming the choices."""
    if name not in INT8_BACKENDS:
        raise ValueError(f"int8_backend={name!r} is not known; choose one of {sorted(INT8_BACKENDS)}")
    return INT8_BACKENDS[name]


def module_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())
