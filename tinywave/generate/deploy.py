"""CPU deployment: load a model directory in fp32 or bf16, optionally int8-quantize its linears.

int8 is dynamic quantization on torch alone: every ``nn.Linear`` becomes a
:class:`tinywave.generate.int8.Int8Linear` (int8 weights with one scale per output channel,
a quarter of their fp32 bytes; activations quantized per row at each call).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from tinywave.generate.int8 import int8_backend
from tinywave.hub import resolve_model_dir
from tinywave.precision_names import torch_dtype

log = logging.getLogger(__name__)

CPU_PRECISIONS = ("fp32", "bf16")  # fp16 matmuls are not a CPU deployment option


def check_dtype(dtype: str) -> torch.dtype:
    """The torch dtype of ``fp32`` or ``bf16`` (``float32`` / ``bfloat16`` also work)."""
    return torch_dtype(dtype, CPU_PRECISIONS)


def quantize_int8(model: torch.nn.Module, backend: str = "tinywave") -> torch.nn.Module:
    """Dynamic int8 quantization of all ``nn.Linear`` layers, in place (fp32 models only); backend: tinywave or torchao."""
    quantize = int8_backend(backend)
    if next(model.parameters()).dtype != torch.float32:
        raise ValueError("int8 dynamic quantization needs an fp32 model; use dtype=fp32 with int8")
    return quantize(model)


def prepare(model: torch.nn.Module, dtype: str = "fp32", int8: bool = False, int8_backend: str = "tinywave") -> torch.nn.Module:
    """Eval mode, the dtype, and optional int8 linears."""
    model = model.eval().to(check_dtype(dtype))
    return quantize_int8(model, int8_backend) if int8 else model


def load_causal_lm(path: str | Path, dtype: str = "fp32", int8: bool = False, int8_backend: str = "tinywave") -> torch.nn.Module:
    """A plain Hugging Face causal-LM directory (or a hub id in the local HF cache), ready for CPU decoding."""
    from transformers import AutoModelForCausalLM  # lazy: transformers is heavy (~3 s); prepare() and int8 work on any torch model

    path = resolve_model_dir(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model directory {path} has no config.json; pass a Hugging Face model directory (e.g. from `tinywave export`)")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=check_dtype(dtype), local_files_only=True)
    return prepare(model, dtype, int8, int8_backend)
