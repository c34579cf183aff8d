"""Model directories: load, create and write plain Hugging Face causal-LM folders.

A model directory (docs/FORMATS.md) is ``config.json`` + safetensors + tokenizer files,
plus ``speech_tokenizer/`` when the model was trained on speech units. Everything here
works from local paths only: a folder, or a hub id already in the local HF cache
(``tinywave.hub``; nothing is downloaded).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from tinywave import precision_names
from tinywave.hub import local_path, resolve_model_dir
from tinywave.models.attention import decoder_layers
from tinywave.safeload import refuse_pickled_weights

log = logging.getLogger(__name__)

SPEECH_TOKENIZER_DIR = "speech_tokenizer"


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-file progress bars while loading/saving small folders."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def torch_dtype(name: str) -> torch.dtype:
    """``fp32`` / ``bf16`` / ``fp16`` (or ``float32`` / ``bfloat16`` / ``float16``) -> the torch dtype."""
    return precision_names.torch_dtype(name)


def check_model_dir(path: str | Path) -> Path:
    """A model folder with a config.json: ``path``, or the cached snapshot of a hub id (``org/name[@rev]``)."""
    path = resolve_model_dir(path)
    if not (path / "config.json").is_file():
        what = "does not exist" if not path.exists() else "holds no config.json"
        raise FileNotFoundError(
            f"model directory {path} {what}; pass a Hugging Face model folder (e.g. the `model/` folder written by "
            "`tinywave train` or `tinywave export`)"
        )
    return path


def load_causal_lm(path: str | Path, dtype: str = "fp32") -> nn.Module:
    """A Llama-family causal LM from a local directory, on CPU, SDPA attention."""
    path = check_model_dir(path)
    with quiet_transformers(), refuse_pickled_weights(path):
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(dtype), local_files_only=True, attn_implementation="sdpa")
    decoder_layers(model)  # refuses models without .model.layers
    return model


def model_from_config(path: str | Path) -> nn.Module:
    """A causal LM built from a folder's ``config.json`` alone (freshly initialised), on CPU, SDPA attention."""
    path = check_model_dir(path)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    decoder_layers(model)
    return model


def new_llama(
    vocab_size: int, n_layers: int, width: int, heads: int, kv_heads: int = 0, ffn: int = 0, *, max_positions: int = 2048,
    rope_theta: float = 10000.0, bos_id: int | None = None, eos_id: int | None = None, pad_id: int | None = None,
) -> nn.Module:
    """A freshly initialised LlamaForCausalLM (untied embeddings, like SpiritLM); random parts follow torch's seed.

    kv_heads 0 means as many as ``heads``; ffn 0 means Llama's 8/3 x width rounded up to 64.
    """
    if width % heads:
        raise ValueError(f"model.width={width} is not a multiple of model.heads={heads}")
    kv_heads = kv_heads or heads
    if heads % kv_heads:
        raise ValueError(f"model.heads={heads} is not a multiple of model.kv_heads={kv_heads}")
    ffn = ffn or -(-(8 * width // 3) // 64) * 64
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=width, intermediate_size=ffn, num_hidden_layers=n_layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
        rope_theta=rope_theta, tie_word_embeddings=False, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def copy_speech_tokenizer(src_dir: str | Path | None, dst_dir: str | Path) -> bool:
    """Copy ``src_dir/speech_tokenizer/`` (or ``src_dir`` itself if it is one) into ``dst_dir``."""
    if not src_dir:
        return False
    src = local_path(src_dir)
    if (src / SPEECH_TOKENIZER_DIR).is_dir():
        src = src / SPEECH_TOKENIZER_DIR
    elif not (src / "speech_tokenizer.json").is_file():
        return False
    shutil.copytree(src, Path(dst_dir) / SPEECH_TOKENIZER_DIR, dirs_exist_ok=True)
    return True


def write_model_dir(
    model: nn.Module, tokenizer, folder: str | Path, speech_src: str | Path | None = None, dtype: str | None = None, weights: bool = True,
) -> None:
    """Write ``model`` + tokenizer (+ speech tokenizer) as a plain HF folder into an existing/new ``folder``.

    The saved config asks for SDPA attention; with ``dtype`` the weights are cast on the way out.
    ``weights=False`` writes everything but the weights (a sharded checkpoint keeps them in its shards).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if dtype is not None:
        model = model.to(torch_dtype(dtype))
    with quiet_transformers():
        if weights:
            model.save_pretrained(str(folder), safe_serialization=True)
        else:
            model.config.save_pretrained(str(folder))
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    copy_speech_tokenizer(speech_src, folder)
    _force_sdpa_in_config(folder / "config.json")


def _force_sdpa_in_config(path: Path) -> None:
    """A saved config must never name tinywave's training-only attention function."""
    config = json.loads(path.read_text())
    if config.get("attn_implementation") not in (None, "sdpa", "eager"):
        config["attn_implementation"] = "sdpa"
        path.write_text(json.dumps(config, indent=2) + "\n")
