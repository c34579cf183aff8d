"""A tiny `tinywave train` workspace: a tokenizer folder and [Hu] shards built with it, and the command's arguments."""

from __future__ import annotations

import json
from pathlib import Path

from support.models import tiny_tokenizer
from support.shards import speech_shards


def lm_workspace(root: Path, n_docs: int = 60) -> dict[str, Path]:
    """A BPE+speech tokenizer folder (with a speech_tokenizer/ stub) and packed shards built with it."""
    words = "tom went to the park and found a red ball under the old tree".split()
    tok, layout = tiny_tokenizer([" ".join(words)] * 10, vocab=60, n_hu=32, n_pi=4, n_st=4)
    tok.save_pretrained(root / "vocab")
    (root / "vocab" / "speech_tokenizer").mkdir(exist_ok=True)
    (root / "vocab" / "speech_tokenizer" / "speech_tokenizer.json").write_text(json.dumps({"kind": "test"}))
    speech_shards(root / "shards", tok, layout, n_docs=n_docs, n_units=32, seq_len=32)
    return {"vocab": root / "vocab", "shards": root / "shards"}


def train_args(ws: dict[str, Path], out: Path, steps: int) -> list[str]:
    """`tinywave train` (pretrain) of a 2-layer, 16-wide teacher, checkpointing every step."""
    return ["train", f"tokenizer={ws['vocab']}", f"data.shards={ws['shards']}", f"train.out={out}", f"train.steps={steps}",
            "model.n_layers=2", "model.width=16", "model.heads=2", "model.kv_heads=1", "model.max_positions=32",
            "data.batch_size=4", "optim.lr=1e-2", "optim.warmup_steps=1", "train.ckpt_every=1", "train.report_to=[]"]
