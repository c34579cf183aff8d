"""Tiny random models, one factory per kind, and the presets several test modules share.

Every factory seeds torch right before building, so the same keywords give the same weights.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from support.shards import CACHE_VOCAB, VOCAB

TEXTS = ["the cat sat on the mat", "a dog ran to the park and the cat followed it home", "tom found a red ball"] * 10


def tiny_tokenizer(texts: list[str] = TEXTS, *, vocab: int = 80, n_hu: int = 32, n_pi: int = 8, n_st: int = 4):
    """(tokenizer, layout): a BPE text vocabulary of ``vocab`` ids trained on ``texts``, then the speech ids."""
    from tinywave.text.vocab import train_bpe_tokenizer

    return train_bpe_tokenizer(texts, vocab_size=vocab, n_hu=n_hu, n_pi=n_pi, n_st=n_st)


def tiny_llama(*, tokenizer=None, vocab: int | None = None, extra_rows: int = 0, layers: int = 2, width: int = 32, heads: int = 4,
               kv_heads: int | None = None, ffn: int | None = None, max_positions: int = 256, bos_id: int | None = 1,
               eos_id: int | None = 2, pad_id: int | None = None, lm_head_scale: float | None = None, seed: int = 0,
               training: bool = False):
    """A randomly initialised LlamaForCausalLM (untied head), in eval mode unless ``training``.

    With a ``tokenizer``: ``len(tokenizer) + extra_rows`` rows (unless ``vocab``) and the tokenizer's
    BOS/EOS/PAD ids; without one, ``vocab`` rows and ``bos_id``/``eos_id``/``pad_id`` (defaults: LlamaConfig's;
    ``tinywave.models.hf.new_llama`` passes None). kv_heads defaults to heads, ffn to 2 x width.
    ``lm_head_scale`` multiplies the output head: peaked logits, so greedy choices are decisive
    (no near-ties across batch shapes) or the distributions look like a trained teacher's.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if tokenizer is not None:
        vocab = len(tokenizer) + extra_rows if vocab is None else vocab
        bos_id, eos_id, pad_id = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=ffn or 2 * width, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads or heads, max_position_embeddings=max_positions,
                      tie_word_embeddings=False, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model = LlamaForCausalLM(cfg).train(training)
    if lm_head_scale is not None:
        with torch.no_grad():
            model.lm_head.weight.mul_(lm_head_scale)
    return model


def tiny_model_dir(path: Path, *, tokenizer=None, **llama) -> Path:
    """A plain HF model directory: ``tiny_llama(**llama)`` and its tokenizer (default: ``tiny_tokenizer()``'s)."""
    tok = tiny_tokenizer()[0] if tokenizer is None else tokenizer
    tiny_llama(tokenizer=tok, **llama).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


NO_DROPOUT = {"hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "feat_proj_dropout": 0.0,
              "layerdrop": 0.0, "mask_time_prob": 0.0}


def tiny_hubert(*, layers: int = 2, width: int = 16, heads: int = 2, ffn: int = 32, conv_dim: tuple[int, ...] = (8, 8),
                conv_stride: tuple[int, ...] = (5, 4), conv_kernel: tuple[int, ...] = (10, 4), pos_kernel: int = 4,
                pos_groups: int = 2, dropout: bool = True, seed: int = 0, training: bool = False):
    """A randomly initialised HubertModel, in eval mode unless ``training``. The conv front end
    downsamples by the product of ``conv_stride``; ``dropout=False`` turns off every dropout,
    layerdrop and time masking (HubertConfig's defaults otherwise)."""
    from transformers import HubertConfig, HubertModel

    cfg = HubertConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                       conv_dim=conv_dim, conv_stride=conv_stride, conv_kernel=conv_kernel, num_conv_pos_embeddings=pos_kernel,
                       num_conv_pos_embedding_groups=pos_groups, **({} if dropout else NO_DROPOUT))
    torch.manual_seed(seed)
    return HubertModel(cfg).train(training)


# ---------------------------------------------------------------- text-side judges: a recognizer and a text LM

WORDS = ["the cat sat on the mat", "a dog ran to the park", "she went home and the cat followed"] * 5
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>", "<|startoflm|>",
            "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def _bpe(folder: Path) -> tuple[Path, Path]:
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(WORDS, vocab_size=300, min_frequency=1, show_progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(folder))
    return folder / "vocab.json", folder / "merges.txt"


def tiny_whisper_dir(folder: Path) -> Path:
    """A random one-layer Whisper (model, processor, byte-level BPE of WORDS) saved to ``folder``."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer

    vocab, merges = _bpe(folder / "bpe")
    tok = WhisperTokenizer(str(vocab), str(merges), unk_token=SPECIALS[0], bos_token=SPECIALS[0], eos_token=SPECIALS[0], pad_token=SPECIALS[0])
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    ids = tok.convert_tokens_to_ids
    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                        encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=1500, max_target_positions=64,
                        pad_token_id=ids(SPECIALS[0]), bos_token_id=ids(SPECIALS[0]), eos_token_id=ids(SPECIALS[0]),
                        decoder_start_token_id=ids(SPECIALS[1]))
    WhisperForConditionalGeneration(cfg).save_pretrained(str(folder))
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok).save_pretrained(str(folder))
    return folder


def tiny_gpt2_dir(folder: Path) -> Path:
    """A random one-layer GPT-2 with a byte-level BPE of WORDS saved to ``folder``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(WORDS, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=128)).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


# ---------------------------------------------------------------- presets shared by several test modules (seed=... picks the weights)

# The trainer tests' model over the ``shards`` fixture: new_llama(VOCAB, 2, 16, 2, 1, 32, 32), in train mode.
trainer_llama = partial(tiny_llama, vocab=VOCAB, width=16, heads=2, kv_heads=1, ffn=32, max_positions=32, bos_id=None, eos_id=None,
                        training=True)
# The teacher-cache tests' teacher over the ``cache_shards`` fixture, with peaked distributions like a trained teacher's.
cache_teacher = partial(tiny_llama, vocab=CACHE_VOCAB, layers=3, width=16, heads=2, kv_heads=1, ffn=32, max_positions=32, bos_id=None,
                        eos_id=None, lm_head_scale=40.0)
