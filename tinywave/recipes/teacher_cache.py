"""Recipe: run the teacher once over the training shards and store what distillation needs.

    tinywave teacher-cache --teacher runs/teacher/model --shards runs/shards --out runs/teacher-cache \
        top_k=64 temperatures=[2.0] hidden_layers=[1,3]
    tinywave distill ... teacher.cache=runs/teacher-cache loss.attn_weight=0

With ``attn_layers=[1,3]`` it also stores those layers' queries and keys, so the attention
loss runs from the cache too (``loss.attn_weight`` > 0).

Stores per token the top-k next-token logits with the log-normalizer and the remaining
probability mass at each of ``temperatures``, and optionally the hidden states of the
teacher layers the student is mapped to (``tinywave distill`` logs its layer map), as
memory-mapped arrays (see ``tinywave/distill/teacher_cache.py``). ``top_k=0`` keeps the whole
vocabulary: distilling from it gives exactly the online losses. A rerun continues an
interrupted cache block by block; under ``torchrun --nproc_per_node N`` each process
fills every N-th block. Distillation refuses a cache built from other shards or another
teacher (config, weights or dtype).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tinywave.config import field
from tinywave.text.vocab import load_tokenizer, vocab_fingerprint

log = logging.getLogger(__name__)


@dataclass
class Config:
    teacher: str = field("", help="teacher model folder (the teacher.dir that `tinywave distill` will use)")
    dtype: str = field("fp32", help="teacher weights dtype, as distill's teacher.dtype: fp32, bf16 or fp16 (part of the fingerprint)")
    shards: str = field("", help="training shard folder (distill's data.shards)")
    out: str = field("", help="cache folder to write (built as OUT.partial, renamed when complete)")
    top_k: int = field(64, help="next-token logits kept per position (0: the whole vocabulary, exact)")
    temperatures: list[float] = field([1.0, 2.0], help="temperatures whose normalizers are stored; distill's loss.temperature must be one (unless top_k=0)")
    logit_dtype: str = field("fp16", help="storage of the top-k logits: fp16, bf16 or fp32")
    hidden_layers: list[int] = field([], help="teacher layers whose outputs are stored (the mapped layers, for loss.hidden_weight > 0)")
    hidden_dtype: str = field("bf16", help="storage of the hidden states: bf16, fp16 or fp32")
    attn_layers: list[int] = field([], help="teacher layers whose queries and keys are stored (the mapped layers, for loss.attn_weight > 0)")
    attn_dtype: str = field("fp16", help="storage of the queries and keys: fp16, bf16 or fp32")
    batch_size: int = field(8, help="rows per teacher forward pass")
    block_rows: int = field(256, help="rows per resumable block (the unit of progress and of the split across ranks)")
    chunk_size: int = field(1024, help="positions per chunk of full-vocabulary logits (bounds memory)")
    device: str = field("auto", help="auto, cpu or cuda")
    stop_after_blocks: int = field(0, help="stop after this many blocks in this invocation (0: no limit); a rerun continues")


def run(cfg: Config) -> int:
    # lazy: torch is heavy (~1.4 s); recipe modules import without it (tinywave/recipes/__init__.py)
    import torch
    import torch.distributed as dist

    # lazy: these import torch (models.hf transformers too, ~4 s)
    from tinywave.data.shards import ShardDataset
    from tinywave.distill.teacher_cache import CacheSettings, build_cache, finish_if_complete
    from tinywave.training.distributed import torchrun_env
    from tinywave.training.trainer import resolve_device
    from tinywave.models.checks import check_shards_fit, check_tokenizer_fits
    from tinywave.models.hf import load_causal_lm

    if not cfg.teacher or not cfg.shards or not cfg.out:
        raise ValueError("teacher-cache needs --teacher DIR (model folder), --shards DIR and --out DIR")
    # 1. processes: under torchrun every rank fills its share of the blocks
    env = torchrun_env()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and env.world_size > 1:
        torch.cuda.set_device(env.local_rank)
        device = torch.device("cuda", env.local_rank)
    if env.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank, world_size=env.world_size)
    # 2. teacher and shards, checked like distillation checks them
    teacher = load_causal_lm(cfg.teacher, cfg.dtype)
    tokenizer = load_tokenizer(cfg.teacher)
    check_tokenizer_fits(teacher, tokenizer, f"teacher {cfg.teacher}")
    dataset = ShardDataset(cfg.shards, expected_fingerprint=vocab_fingerprint(tokenizer))
    check_shards_fit(dataset.index, dataset.seq_len, 0, {"teacher": teacher}, cfg.shards)
    # 3. cache, block by block
    settings = CacheSettings(cfg.top_k, tuple(cfg.temperatures), cfg.logit_dtype, tuple(cfg.hidden_layers), cfg.hidden_dtype,
                             tuple(cfg.attn_layers), cfg.attn_dtype, cfg.batch_size, cfg.block_rows, cfg.chunk_size)
    summary = build_cache(teacher, dataset, cfg.out, settings, device, env.rank, world_size=env.world_size, stop_after_blocks=cfg.stop_after_blocks)
    # 4. several ranks: once all are done, rank 0 renames the folder into place
    if env.world_size > 1:
        dist.barrier()
        summary["complete"] = finish_if_complete(cfg.out) if env.rank == 0 else True
        dist.barrier()
        dist.destroy_process_group()
    if not summary["complete"]:
        log.info("teacher cache: %d blocks written now; rerun the same command to continue", summary["blocks_done"])
        return 0
    log.info("teacher cache complete: %s", cfg.out)
    return 0
