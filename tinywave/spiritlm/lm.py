"""SpiritLM's language-model folders (``spiritlm_model/spirit-lm-{base,expressive}-7b/``) and
TinyWave students that share their tokenizer.

A folder is a plain Hugging Face Llama checkpoint (``config.json``, ``pytorch_model.bin``
or safetensors) with SpiritLM's SentencePiece tokenizer (``tokenizer.model``,
``tokenizer_config.json``, ``special_tokens_map.json``): BOS added, no EOS, no pad.
The speech tokens ``[Text] [Speech] [Hu0..500] ([Pi0..63] [St0..99])`` live either as
pieces inside ``tokenizer.model`` or as ``added_tokens_decoder`` entries of
``tokenizer_config.json`` (the release does not tell which; both load the same way).
:func:`check_spiritlm_ids` checks that the ids are SpiritLM's (docs/SPIRITLM.md 4.1):
``[Text]`` 32000, ``[Speech]`` 32001, Hu 32002-32502, Pi 32503-32566, St 32567-32666.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import LlamaTokenizer

from tinywave.models.hf import load_causal_lm, quiet_transformers
from tinywave.text.vocab import VocabLayout, layout_from_tokenizer, speech_tokens_location

TEXT_SIZE = 32000
# variant folder name -> (Pi tokens, St tokens, rows of the embedding matrix) per the MODEL_CARD
VARIANTS: dict[str, tuple[int, int, int]] = {"spirit-lm-base-7b": (0, 0, 32512), "spirit-lm-expressive-7b": (64, 100, 32768)}


@dataclass(frozen=True)
class LMInfo:
    layout: VocabLayout
    speech_tokens_in: str  # "tokenizer.model", "tokenizer_config.json" or "tokenizer.json"
    variant: str | None  # the SpiritLM variant named by the folder, if any


def check_spiritlm_ids(layout: VocabLayout, variant: str | None = None, where: str = "tokenizer") -> None:
    """The layout must reproduce SpiritLM's ids (and the variant's Pi/St blocks when named)."""
    ok = layout.text_size == TEXT_SIZE and layout.n_hu == 501 and (layout.n_pi, layout.n_st) in ((0, 0), (64, 100))
    if variant is not None:
        ok = ok and (layout.n_pi, layout.n_st) == VARIANTS[variant][:2]
    if not ok:
        raise ValueError(f"{where}: speech tokens start at {layout.text_size} with {layout.n_hu} Hu / {layout.n_pi} Pi / "
                         f"{layout.n_st} St ids; SpiritLM's are [Text]=32000, 501 Hu (and 64 Pi + 100 St for expressive)")


def load_lm_tokenizer(folder: str | Path, spiritlm_ids: bool = True):
    """(LlamaTokenizer with BOS and no EOS, LMInfo) of an LM folder; ``spiritlm_ids`` checks the id layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"LM folder {folder} not found; pass spiritlm_model/spirit-lm-base-7b (or -expressive-7b) of the release")
    where = speech_tokens_location(folder)
    with quiet_transformers():
        tok = LlamaTokenizer.from_pretrained(str(folder), add_bos_token=True, add_eos_token=False, local_files_only=True)
    layout = layout_from_tokenizer(tok)
    variant = folder.name if folder.name in VARIANTS else None
    if spiritlm_ids:
        check_spiritlm_ids(layout, variant, str(folder))
    return tok, LMInfo(layout, where, variant)


def load_lm(folder: str | Path, dtype: str = "bf16", spiritlm_ids: bool = True) -> tuple[Any, Any, LMInfo]:
    """(LlamaForCausalLM, tokenizer, LMInfo): the embedding rows must cover every speech id."""
    tok, info = load_lm_tokenizer(folder, spiritlm_ids)
    model = load_causal_lm(folder, dtype)
    rows = model.get_input_embeddings().weight.shape[0]
    expected = VARIANTS[info.variant][2] if info.variant else None
    if rows < info.layout.size or (expected is not None and rows != expected):
        raise ValueError(f"{folder}: the model has {rows} embedding rows but the tokenizer uses ids up to {info.layout.size - 1}"
                         + (f" and {info.variant} has {expected}" if expected else "") + "; the folder mixes two checkpoints")
    return model, tok, info
