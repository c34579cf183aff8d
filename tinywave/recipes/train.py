"""Recipe: pretrain a teacher from a config, or correct an existing one on target data.

    tinywave train --config configs/teacher-tiny.yaml tokenizer=runs/vocab \
        data.shards=runs/shards train.out=runs/teacher
    tinywave train mode=correct teacher=runs/teacher/model method=lora \
        data.shards=runs/target_shards train.out=runs/teacher_corrected

``pretrain`` builds a LlamaForCausalLM (untied embeddings, like SpiritLM) sized by the
``model`` section with the tokenizer's vocabulary; ``correct`` fine-tunes a teacher
folder, fully or with LoRA adapters (peft) that are merged into the weights on save.
Both train with next-token CE and write ``train.out/model`` (a plain HF folder with the
tokenizer and ``speech_tokenizer/``) when the run completes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import ClassVar

from tinywave.config import field, to_dict
from tinywave.text.vocab import load_tokenizer, vocab_fingerprint
from tinywave.training.settings import TRACKER_RENAMES, DataSettings, OptimSettings, RunSettings

log = logging.getLogger(__name__)


@dataclass
class ModelSection:
    n_layers: int = field(6, help="decoder layers (Llama-2-7B: 32)")
    width: int = field(256, help="hidden size (Llama-2-7B: 4096)")
    heads: int = field(4, help="attention heads (Llama-2-7B: 32)")
    kv_heads: int = field(0, help="key/value heads (0: as many as heads)")
    ffn: int = field(0, help="FFN size (0: 8/3 x width rounded up to 64; Llama-2-7B: 11008)")
    max_positions: int = field(2048, help="longest sequence (Llama-2: 4096)")
    rope_theta: float = field(10000.0, help="RoPE base")


@dataclass
class LoraSection:
    r: int = field(16, help="LoRA rank")
    alpha: float = field(32.0, help="LoRA alpha (scale = alpha / r)")
    dropout: float = field(0.0, help="dropout on the LoRA input")
    mlp: bool = field(False, help="also adapt the MLP projections (gate/up/down), not only q/k/v/o")


@dataclass
class Config:
    RENAMED: ClassVar[dict[str, str]] = dict(TRACKER_RENAMES)
    mode: str = field("pretrain", help="pretrain: a new model from the model section; correct: fine-tune the teacher folder")
    tokenizer: str = field("", help="pretrain: text+speech tokenizer folder (`tinywave vocab`)")
    speech_tokenizer: str = field("", help="speech tokenizer folder to ship in the model folder (default: the one next to the tokenizer/teacher)")
    teacher: str = field("", help="correct: the model folder to fine-tune")
    method: str = field("full", help="correct: full (all weights) or lora (adapters, merged on save)")
    chunk_size: int = field(256, help="tokens per chunk of the CE loss")
    model: ModelSection = dc_field(default_factory=ModelSection)
    lora: LoraSection = dc_field(default_factory=LoraSection)
    data: DataSettings = dc_field(default_factory=DataSettings)
    optim: OptimSettings = dc_field(default_factory=OptimSettings)
    train: RunSettings = dc_field(default_factory=RunSettings)
    resume: bool = field(False, help="continue from the newest checkpoint in train.out (same as train.resume)")


def _pretrain_model(cfg: Config, resume_from: Path | None):
    """(model, tokenizer, folder holding the speech tokenizer) for a model trained from scratch."""
    from tinywave.models.hf import load_causal_lm, new_llama  # lazy: models.hf imports torch and transformers (~4 s)

    if not cfg.tokenizer:
        raise ValueError("mode=pretrain needs tokenizer=DIR, the text+speech tokenizer folder from `tinywave vocab`")
    tok = load_tokenizer(cfg.tokenizer)
    if resume_from is not None:
        return load_causal_lm(resume_from), tok, cfg.speech_tokenizer or cfg.tokenizer
    m = cfg.model
    model = new_llama(len(tok), m.n_layers, m.width, m.heads, m.kv_heads, m.ffn, max_positions=m.max_positions, rope_theta=m.rope_theta,
                      bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    return model, tok, cfg.speech_tokenizer or cfg.tokenizer


def _correction_model(cfg: Config, resume_from: Path | None):
    """(model, tokenizer, speech tokenizer source) for fine-tuning ``cfg.teacher`` (full or LoRA)."""
    # lazy: these import torch (models.hf transformers too, ~4 s); recipe modules import without them
    from tinywave.models.hf import load_causal_lm
    from tinywave.models.lora import apply_lora, lora_targets, load_lora

    if not cfg.teacher:
        raise ValueError("mode=correct needs teacher=DIR, the model folder to fine-tune")
    tok = load_tokenizer(cfg.teacher)
    methods = {
        "full": lambda: load_causal_lm(resume_from or cfg.teacher),
        "lora": lambda: (
            load_lora(load_causal_lm(cfg.teacher), resume_from, trainable=True) if resume_from is not None
            else apply_lora(load_causal_lm(cfg.teacher), cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, lora_targets(cfg.lora.mlp), cfg.teacher)
        ),
    }
    if cfg.method not in methods:
        raise ValueError(f"method={cfg.method!r} is not known; choose one of {sorted(methods)}")
    return methods[cfg.method](), tok, cfg.speech_tokenizer or cfg.teacher


MODES = {"pretrain": _pretrain_model, "correct": _correction_model}


def run(cfg: Config) -> int:
    import torch  # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)

    # lazy: these import torch (models.hf and models.export transformers too, ~4 s)
    from tinywave.data.shards import ShardDataset
    from tinywave.training.batches import BatchStream
    from tinywave.distill.objective import DistillObjective, LossWeights
    from tinywave.training.trainer import fit, resolve_device, resume_point
    from tinywave.models.checks import check_shards_fit, check_tokenizer_fits
    from tinywave.models.export import export_model
    from tinywave.models.hf import copy_speech_tokenizer, write_model_dir
    from tinywave.models.lora import is_adapter_dir

    if cfg.mode not in MODES:
        raise ValueError(f"mode={cfg.mode!r} is not known; choose one of {sorted(MODES)}")
    if not cfg.data.shards:
        raise ValueError("train needs data.shards, the shard folder from `tinywave data build`")
    cfg.train.resume = cfg.train.resume or cfg.resume
    resume_from = resume_point(cfg.train, to_dict(cfg))
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg.train.device)

    # 1. model and tokenizer
    model, tokenizer, speech_src = MODES[cfg.mode](cfg, resume_from)
    check_tokenizer_fits(model, tokenizer, f"{cfg.mode} model")
    lora = hasattr(model, "peft_config")

    # 2. data, refused unless built with this tokenizer
    dataset = ShardDataset(cfg.data.shards, expected_fingerprint=vocab_fingerprint(tokenizer))
    check_shards_fit(dataset.index, dataset.seq_len, cfg.data.seq_len, {"model": model}, cfg.data.shards)
    stream = BatchStream(dataset, cfg.data.batch_size, cfg.train.seed)

    # 3. objective: next-token CE
    objective = DistillObjective(model.to(device, torch.float32).train(), LossWeights(ce=1.0, chunk_size=cfg.chunk_size))
    params = [p for p in objective.parameters() if p.requires_grad]
    log.info("%s (%s): %.2fM trainable parameters", cfg.mode, "lora" if lora else "full", sum(p.numel() for p in params) / 1e6)

    # 4. train; a LoRA checkpoint holds the adapter only, a full one the whole model
    def save_model(folder: Path) -> None:
        if lora:
            model.save_pretrained(str(folder))
            tokenizer.save_pretrained(str(folder))
            copy_speech_tokenizer(speech_src, folder)
        else:
            write_model_dir(model, tokenizer, folder, speech_src=speech_src)

    result = fit(objective, params, stream, cfg.optim, cfg.train, save_model, config=to_dict(cfg), resume_from=resume_from)

    # 5. the model as a plain HF folder (adapters merged)
    if result.finished and result.checkpoint is not None:
        out = export_model(result.checkpoint, Path(cfg.train.out) / "model")
        log.info("%s model -> %s%s", cfg.mode, out, " (LoRA merged)" if lora or is_adapter_dir(result.checkpoint) else "")
    return 0
