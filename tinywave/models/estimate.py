"""Sizes of a distillation run before it runs: parameters, memory, FLOPs and a GPU layout.

Everything here is arithmetic on a Llama shape (:class:`LlamaShape`), so the real sizes
(SpiritLM 7B teacher, 2.3B student) are estimated on any laptop; ``tinywave distill
--dry-run`` also builds the student from a teacher of the same shape family scaled down
(:func:`scaled_config`: same layer count and vocabulary, 64 wide) to validate the config.

Conventions:

- parameters: ``non_embedding`` excludes the token embedding and the (untied) LM head;
- memory (bytes): the student trains with fp32 master weights, fp32 gradients and two
  fp32 AdamW moments (16 B/parameter; bf16 autocast for compute), the frozen teacher is
  held in ``teacher.dtype``; activations are what one micro-batch keeps for the backward
  pass without activation checkpointing (per token and layer: the fp32 RMSNorm inputs,
  then q/k/v/attention output, and gate/up/SiLU/product of the MLP in the compute
  dtype), plus float32 attention maps of the mapped layers (student log-probabilities
  and probabilities, teacher log-probabilities: 3 x B x H x T^2 x 4 bytes per pair);
- FLOPs per optimizer step (``accum_steps`` micro-batches of one rank): student
  6 N + 12 L h T per token (forward + backward, PaLM's count with N the non-embedding
  parameters plus the LM head), teacher 2 N + 4 L h T per token (forward only);
- layout: fully sharded data parallel (``train.parallel=fsdp``) over N GPUs divides the
  student's weights, gradients and optimizer states by N; the frozen teacher is
  replicated and each GPU keeps its own micro-batch's activations. The smallest
  power-of-two N that fits 90% of the GPU memory is suggested.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinywave.hub import local_path
from tinywave.precision_names import canonical

PRESETS: dict[str, "LlamaShape"] = {}
GPUS = {"A100-80GB": (80, 312e12), "H100-80GB": (80, 989e12)}  # memory GB, dense bf16 peak FLOP/s
MFU = 0.4  # assumed model FLOPs utilisation for the time estimate
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}  # per value; precision_names.canonical also reads float32 / bfloat16 / float16


@dataclass(frozen=True)
class LlamaShape:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    tied: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @classmethod
    def from_config(cls, cfg: Any) -> "LlamaShape":
        """From a transformers config or its ``config.json`` dict."""
        get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
        heads = int(get("num_attention_heads"))
        return cls(int(get("vocab_size")), int(get("hidden_size")), int(get("num_hidden_layers")), heads,
                   int(get("num_key_value_heads") or heads), int(get("intermediate_size")), bool(get("tie_word_embeddings", False)))

    def student(self, n_layers: int, width: int = 0) -> "LlamaShape":
        """The student's shape: ``n_layers`` layers, heads and FFN narrowed in proportion to ``width`` (0: same width)."""
        if not width or width == self.hidden:
            return replace(self, layers=n_layers)
        heads = width // self.head_dim
        return replace(self, layers=n_layers, hidden=width, heads=heads, kv_heads=heads * self.kv_heads // self.heads,
                       ffn=max(1, self.ffn * width // self.hidden))


LLAMA_2_7B = LlamaShape(32000, 4096, 32, 32, 32, 11008)
PRESETS.update({"llama-2-7b": LLAMA_2_7B, "spirit-lm-base-7b": replace(LLAMA_2_7B, vocab=32512),
                "spirit-lm-expressive-7b": replace(LLAMA_2_7B, vocab=32768)})


@dataclass(frozen=True)
class ParamCount:
    embedding: int
    layers: int
    final_norm: int
    head: int

    @property
    def total(self) -> int:
        return self.embedding + self.layers + self.final_norm + self.head

    @property
    def non_embedding(self) -> int:
        return self.layers + self.final_norm


def layer_params(s: LlamaShape) -> int:
    attn = 2 * s.hidden * s.hidden + 2 * s.hidden * s.kv_dim  # q, o; k, v (no biases)
    return attn + 3 * s.hidden * s.ffn + 2 * s.hidden  # gate/up/down + two RMSNorms


def param_count(s: LlamaShape) -> ParamCount:
    return ParamCount(s.vocab * s.hidden, s.layers * layer_params(s), s.hidden, 0 if s.tied else s.vocab * s.hidden)


def lora_params(s: LlamaShape, r: int, mlp: bool = False) -> int:
    """LoRA A and B matrices on q/k/v/o (and gate/up/down with ``mlp``) of every layer."""
    per_layer = r * (2 * (s.hidden + s.hidden) + 2 * (s.hidden + s.kv_dim))
    return s.layers * (per_layer + (r * 3 * (s.hidden + s.ffn) if mlp else 0))


@dataclass(frozen=True)
class StepSettings:
    batch_size: int  # sequences per micro-batch (per GPU)
    seq_len: int
    accum_steps: int = 1
    precision: str = "bf16"  # student compute: bf16 autocast or fp32
    teacher_dtype: str = "bf16"
    teacher_runs: bool = True  # a teacher-dependent loss is on
    hidden_pairs: int = 0  # mapped layer pairs of the hidden-state loss
    attn_pairs: int = 0  # mapped layer pairs of the attention loss
    chunk_size: int = 256  # tokens per chunk of the vocabulary losses

    @property
    def tokens(self) -> int:  # per micro-batch
        return self.batch_size * self.seq_len


def activation_bytes_per_token_layer(s: LlamaShape, compute_bytes: int) -> int:
    """Bytes one token keeps per decoder layer for the backward pass (no checkpointing)."""
    attn = 4 * s.hidden + compute_bytes * (3 * s.hidden + 2 * s.kv_dim)  # fp32 norm input; normed, q, k, v, output
    mlp = 4 * s.hidden + compute_bytes * (s.hidden + 4 * s.ffn)  # fp32 norm input; normed, gate, up, silu, product
    return attn + mlp


def memory(student: LlamaShape, teacher: LlamaShape, st: StepSettings) -> dict[str, float]:
    """Bytes per component of one training step on one GPU without sharding."""
    p_s, p_t = param_count(student).total, param_count(teacher).total
    a = BYTES[canonical(st.precision, key="train.precision")]
    teacher_bytes = BYTES[canonical(st.teacher_dtype, key="teacher.dtype")]
    maps = st.attn_pairs * 3 * st.batch_size * student.heads * st.seq_len**2 * 4
    vocab = st.chunk_size * student.vocab * 4 * (4 if st.teacher_runs else 2)  # student (+ teacher) logits, log-softmax, grads
    kept = (st.hidden_pairs + 1) * st.tokens * teacher.hidden * teacher_bytes if st.teacher_runs else 0
    return {
        "student weights (fp32)": 4.0 * p_s, "gradients (fp32)": 4.0 * p_s, "AdamW states (fp32)": 8.0 * p_s,
        "teacher weights": float(teacher_bytes * p_t if st.teacher_runs else 0),
        "activations / micro-batch": float(st.tokens * student.layers * activation_bytes_per_token_layer(student, a) + maps),
        "teacher targets + logits chunks": float(kept + vocab),
    }


def step_flops(student: LlamaShape, teacher: LlamaShape, st: StepSettings) -> dict[str, float]:
    """FLOPs of one optimizer step (``accum_steps`` micro-batches of one rank)."""
    tokens = st.tokens * st.accum_steps
    n_s = param_count(student).non_embedding + param_count(student).head
    n_t = param_count(teacher).non_embedding + param_count(teacher).head
    out = {"student fwd+bwd": float(tokens * (6 * n_s + 12 * student.layers * student.hidden * st.seq_len))}
    out["teacher fwd"] = float(tokens * (2 * n_t + 4 * teacher.layers * teacher.hidden * st.seq_len)) if st.teacher_runs else 0.0
    return out


@dataclass(frozen=True)
class Layout:
    gpus: int
    nodes: int
    per_gpu_bytes: float
    fits: bool


LOCAL = ("teacher weights", "activations / micro-batch", "teacher targets + logits chunks")  # not sharded by FSDP


def suggest_layout(mem: dict[str, float], gpu_gb: float = 80, gpus_per_node: int = 8, max_gpus: int = 1024) -> Layout:
    """Smallest power-of-two FSDP world size whose per-GPU share fits 90% of ``gpu_gb``.

    The student's weights, gradients and optimizer states are sharded (``train.parallel=fsdp``);
    the frozen teacher is replicated on every GPU, and each GPU keeps its micro-batch's activations.
    """
    local = sum(mem[k] for k in LOCAL)
    sharded = sum(mem.values()) - local
    n = 1
    while n <= max_gpus:
        per_gpu = sharded / n + local
        if per_gpu <= 0.9 * gpu_gb * 1e9:
            return Layout(n, math.ceil(n / gpus_per_node), per_gpu, True)
        n *= 2
    return Layout(max_gpus, math.ceil(max_gpus / gpus_per_node), sharded / max_gpus + local, False)


def teacher_shape(teacher_dir: str) -> tuple[LlamaShape, str]:
    """(shape, where it came from): ``teacher_dir/config.json`` if present, else a preset named by the folder."""
    path = local_path(teacher_dir) if teacher_dir else Path("spirit-lm-base-7b")
    if (path / "config.json").is_file():
        return LlamaShape.from_config(json.loads((path / "config.json").read_text(encoding="utf-8"))), str(path / "config.json")
    if path.name in PRESETS:
        return PRESETS[path.name], f"preset {path.name} ({path} not present)"
    raise ValueError(f"teacher.dir={teacher_dir!r} has no config.json and its name is none of the presets {sorted(PRESETS)}; "
                     "point teacher.dir at the teacher folder (only config.json is read) or at .../spirit-lm-base-7b")


def scaled_config(shape: LlamaShape, width: int = 64, head_dim: int = 16):
    """A LlamaConfig of the same family (layers, vocabulary, query groups) ``width`` wide, for validation runs."""
    from transformers import LlamaConfig  # lazy: transformers is heavy (~3 s); the rest of this module is arithmetic

    groups = shape.heads // shape.kv_heads
    heads = max(width // head_dim // groups, 1) * groups
    return LlamaConfig(vocab_size=shape.vocab, hidden_size=heads * head_dim, intermediate_size=max(8, round(shape.ffn * heads * head_dim / shape.hidden)),
                       num_hidden_layers=shape.layers, num_attention_heads=heads, num_key_value_heads=heads // groups,
                       max_position_embeddings=256, tie_word_embeddings=shape.tied, head_dim=head_dim)


def _gb(x: float) -> str:
    return f"{x / 1e9:8.1f} GB"


def report(teacher: LlamaShape, student: LlamaShape, st: StepSettings, steps: int, lora_r: int = 16) -> list[str]:
    """The dry run's printout: parameters, memory, FLOPs, layout and time for the real sizes."""
    pt, ps = param_count(teacher), param_count(student)
    lines = ["parameters:                total        non-embedding",
             f"  teacher ({teacher.layers:2d} layers)   {pt.total / 1e9:6.2f} B     {pt.non_embedding / 1e9:6.2f} B",
             f"  student ({student.layers:2d} layers)   {ps.total / 1e9:6.2f} B     {ps.non_embedding / 1e9:6.2f} B"
             f"   ({ps.total / pt.total:.2f} of the teacher)"]
    mem = memory(student, teacher, st)
    lines += [f"memory per step (batch {st.batch_size} x {st.seq_len} tokens, {st.precision}, no sharding):"]
    lines += [f"  {k:32s}{_gb(v)}" for k, v in mem.items()] + [f"  {'total':32s}{_gb(sum(mem.values()))}"]
    flops = step_flops(student, teacher, st)
    total = sum(flops.values())
    lines += [f"FLOPs per optimizer step ({st.accum_steps} x {st.tokens} tokens per rank): "
              + ", ".join(f"{k} {v:.3g}" for k, v in flops.items()) + f", total {total:.3g}"]
    for name, (gb, peak) in GPUS.items():
        lay = suggest_layout(mem, gb)
        seconds = total / (MFU * peak)  # every rank runs its own micro-batches
        hours = seconds * steps / 3600
        lines.append(f"layout on {name}: FSDP over {lay.gpus} GPU(s) = {lay.nodes} node(s) of 8, {_gb(lay.per_gpu_bytes).strip()} per GPU"
                     + ("" if lay.fits else " (does not fit: lower data.batch_size or use activation checkpointing)")
                     + f"; ~{seconds:.1f} s/step at {MFU:.0%} MFU, {lay.gpus * st.accum_steps * st.tokens} tokens/step; "
                     + f"{steps} steps ~{hours:.0f} h ({hours * lay.gpus:.0f} GPU-h)")
    lora = lora_params(teacher, lora_r)
    corr = {"student weights (fp32)": 16.0 * lora + 2.0 * pt.total, "teacher weights": 0.0,  # the corrected teacher is sharded
            "activations / micro-batch": float(st.tokens * teacher.layers * activation_bytes_per_token_layer(teacher, 2)),
            "teacher targets + logits chunks": float(st.chunk_size * teacher.vocab * 8)}
    lay = suggest_layout(corr)
    lines.append(f"teacher correction (LoRA r={lora_r} on q/k/v/o): {lora / 1e6:.1f} M trainable, {_gb(sum(corr.values())).strip()} "
                 f"unsharded; FSDP over {lay.gpus} x 80 GB GPU(s)")
    return lines
