"""Weight-only int8 linear layers for CPU decoding.

:class:`Int8Linear` stores a linear layer's weight as int8 with one float scale per output
channel (symmetric: ``scale = max |w_row| / 127``, ``q = round(w / scale)``), 4x smaller than
fp32, and keeps activations in floating point. Its forward runs torch's int8-weight CPU
matmul kernel (``torch._weight_int8pack_mm``) when the build has it; elsewhere (GPU, or a
torch without the kernel) it multiplies by the dequantized weight, which is also the
reference the fast path is tested against. Nothing outside torch is needed.

It replaces ``torch.ao.quantization.quantize_dynamic`` (deprecated), which also quantized
the activations of every call; here only the weights are rounded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_PACKED_MM = getattr(torch, "_weight_int8pack_mm", None)


class Int8Linear(nn.Module):
    """``y = x @ (q * scale)^T + b`` with ``q`` int8 (out, in) and ``scale`` (out,)."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        assert qweight.dtype == torch.int8 and qweight.ndim == 2 and scale.shape == qweight.shape[:1]
        self.in_features, self.out_features = qweight.shape[1], qweight.shape[0]
        self.register_buffer("qweight", qweight.contiguous())  # (out, in) int8
        self.register_buffer("scale", scale.float().contiguous())  # (out,)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        w = linear.weight.detach().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (out,)
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(q, scale, linear.bias)

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scale[:, None]  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)  # (N, in)
        scale = self.scale.to(x.dtype)
        if _PACKED_MM is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16, torch.float16):
            y = _PACKED_MM(flat.contiguous(), self.qweight, scale)  # (N, out)
        else:
            y = F.linear(flat, self.qweight.to(x.dtype)) * scale
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, weight=int8 per-channel"


def quantize_linears(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` in place by an :class:`Int8Linear`; returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear.from_linear(child))
    return model


def module_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())
