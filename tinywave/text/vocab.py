"""Vocabulary layout: text tokens, then ``[Text]``, ``[Speech]``, then Hu, Pi, St blocks.

With a Llama-2 SentencePiece tokenizer (32000 text pieces) the ids equal SpiritLM's:
``[Text]`` 32000, ``[Speech]`` 32001, ``[Hu0..500]`` 32002-32502, ``[Pi0..63]``
32503-32566, ``[St0..99]`` 32567-32666. A small BPE text tokenizer keeps the same order,
shifted. Tokenizers are saved as Hugging Face directories, so
``AutoTokenizer.from_pretrained(dir)`` alone maps ``[Speech][Hu12][Pi3]`` to one id per
token and decodes back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from tinywave.hub import resolve_model_dir
from tinywave.speech.format import SPEECH_MARKER, TEXT_MARKER

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")  # ids 0..3 of the small BPE tokenizer
_SPEECH_TOKEN_RE = re.compile(r"\[(Hu|Pi|St)(\d+)\]|\[(Text|Speech)\]")


@dataclass(frozen=True)
class VocabLayout:
    """Id ranges of the speech vocabulary placed after ``text_size`` text tokens."""

    text_size: int
    n_hu: int = 501
    n_pi: int = 64
    n_st: int = 100

    @property
    def text_id(self) -> int:
        return self.text_size

    @property
    def speech_id(self) -> int:
        return self.text_size + 1

    @property
    def hu_offset(self) -> int:
        return self.text_size + 2

    @property
    def pi_offset(self) -> int:
        return self.hu_offset + self.n_hu

    @property
    def st_offset(self) -> int:
        return self.pi_offset + self.n_pi

    @property
    def size(self) -> int:
        return self.st_offset + self.n_st

    def ranges(self) -> dict[str, range]:
        """Named id ranges (for modality forcing and checks)."""
        return {
            "text": range(0, self.text_size),
            "markers": range(self.text_id, self.speech_id + 1),
            "hu": range(self.hu_offset, self.pi_offset),
            "pi": range(self.pi_offset, self.st_offset),
            "st": range(self.st_offset, self.size),
        }

    def speech_tokens(self) -> list[str]:
        """The added tokens in id order: [Text], [Speech], Hu.., Pi.., St.."""
        return (
            [TEXT_MARKER, SPEECH_MARKER]
            + [f"[Hu{i}]" for i in range(self.n_hu)]
            + [f"[Pi{i}]" for i in range(self.n_pi)]
            + [f"[St{i}]" for i in range(self.n_st)]
        )

    def speech_string_to_ids(self, text: str) -> list[int]:
        """Fast path for strings made only of speech tokens and markers (no text)."""
        offsets = {"Hu": (self.hu_offset, self.n_hu), "Pi": (self.pi_offset, self.n_pi), "St": (self.st_offset, self.n_st)}
        ids: list[int] = []
        pos = 0
        for m in _SPEECH_TOKEN_RE.finditer(text):
            if m.start() != pos:
                raise ValueError(f"speech string has text between tokens at character {pos}: {text[pos:m.start()][:40]!r}; use the text tokenizer for mixed strings")
            pos = m.end()
            if m.group(3):
                ids.append(self.text_id if m.group(3) == "Text" else self.speech_id)
                continue
            base, count = offsets[m.group(1)]
            value = int(m.group(2))
            if value >= count:
                raise ValueError(f"token [{m.group(1)}{value}] is outside the vocabulary ({count} {m.group(1)} tokens); retrain units with fewer codes or enlarge the layout")
            ids.append(base + value)
        if pos != len(text):
            raise ValueError(f"speech string has trailing text {text[pos:][:40]!r}; expected only [Hu..]/[Pi..]/[St..] tokens")
        return ids

    def ids_to_speech_string(self, ids: Iterable[int]) -> str:
        names = self.speech_tokens()
        out = []
        for i in ids:
            j = int(i) - self.text_id
            if not 0 <= j < len(names):
                raise ValueError(f"id {i} is not a speech token or marker (speech ids are {self.text_id}..{self.size - 1})")
            out.append(names[j])
        return "".join(out)

    def to_json(self) -> dict[str, int]:
        return {"text_size": self.text_size, "n_hu": self.n_hu, "n_pi": self.n_pi, "n_st": self.n_st}


def layout_from_tokenizer(tokenizer) -> VocabLayout:
    """Recover the layout from any HF tokenizer holding the speech tokens; checks contiguity."""
    vocab = tokenizer.get_vocab()
    if TEXT_MARKER not in vocab or SPEECH_MARKER not in vocab:
        raise ValueError("tokenizer has no [Text]/[Speech] tokens; build one with `tinywave vocab` (it adds the speech vocabulary)")
    text_size = vocab[TEXT_MARKER]
    counts = {}
    for prefix in ("Hu", "Pi", "St"):
        n = 0
        while f"[{prefix}{n}]" in vocab:
            n += 1
        counts[prefix] = n
    layout = VocabLayout(text_size, counts["Hu"], counts["Pi"], counts["St"])
    for offset, token in enumerate(layout.speech_tokens()):
        if vocab.get(token) != text_size + offset:
            raise ValueError(f"tokenizer's speech tokens are not laid out contiguously: {token} has id {vocab.get(token)}, expected {text_size + offset}")
    return layout


def vocab_fingerprint(tokenizer) -> str:
    """A short hash of the id -> token map: equal fingerprints mean interchangeable ids."""
    items = sorted(((int(i), t) for t, i in tokenizer.get_vocab().items()))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode()).hexdigest()[:16]


def _add_speech_tokens(tokenizer, layout_counts: tuple[int, int, int]):
    text_size = len(tokenizer)
    layout = VocabLayout(text_size, *layout_counts)
    added = [AddedToken(t, special=False, normalized=False, single_word=False, lstrip=False, rstrip=False) for t in layout.speech_tokens()]
    tokenizer.add_tokens(added)
    got = layout_from_tokenizer(tokenizer)
    assert got == layout, (got, layout)
    return tokenizer, layout


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1000, n_hu: int = 501, n_pi: int = 64, n_st: int = 100):
    """Train a small BPE text tokenizer (HF ``tokenizers``) and append the speech vocabulary.

    Returns (PreTrainedTokenizerFast, VocabLayout). Text ids come first, so the layout is
    SpiritLM's order shifted to the text vocabulary size.
    """
    from transformers import PreTrainedTokenizerFast  # lazy: transformers (~3 s); torch-free modules (models.card, data.interleave) import this one

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    core.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>", add_bos_token=False
    )
    return _add_speech_tokens(tok, (n_hu, n_pi, n_st))


def llama_tokenizer_with_speech(sentencepiece_model: str | Path, n_hu: int = 501, n_pi: int = 64, n_st: int = 100):
    """A Llama SentencePiece tokenizer (``tokenizer.model``) plus the speech vocabulary.

    With Llama-2's 32000 pieces this reproduces SpiritLM's ids exactly.
    """
    from transformers import LlamaTokenizerFast  # lazy: transformers (~3 s); torch-free modules (models.card, data.interleave) import this one

    path = Path(sentencepiece_model)
    if not path.is_file():
        raise FileNotFoundError(f"SentencePiece model {path} not found; pass the tokenizer.model of a Llama checkpoint")
    tok = LlamaTokenizerFast(vocab_file=str(path), add_bos_token=True, add_eos_token=False, legacy=True)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token
    return _add_speech_tokens(tok, (n_hu, n_pi, n_st))


def load_tokenizer(path: str | Path):
    """``AutoTokenizer`` from a local directory (or a hub id in the local HF cache), with a clear error when it is not one."""
    from transformers import AutoTokenizer  # lazy: transformers (~3 s); torch-free modules (models.card, data.interleave) import this one

    path = resolve_model_dir(path, "tokenizer")
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory {path} not found; build one with `tinywave vocab --out {path}` or pass a model directory")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return tok


def encode_text(tokenizer, words: Sequence[str] | str) -> list[int]:
    """Ids of a text span (no BOS/EOS); words are joined by single spaces."""
    text = words if isinstance(words, str) else " ".join(words)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def speech_tokens_location(folder: Path) -> str:
    """Which file defines ``[Hu0]``: the SentencePiece model, the tokenizer config, or a tokenizer.json."""
    model = folder / "tokenizer.model"
    if model.is_file():
        if spm.SentencePieceProcessor(model_file=str(model)).PieceToId("[Hu0]") not in (0, None):
            return "tokenizer.model"
    config = folder / "tokenizer_config.json"
    if config.is_file():
        added = json.loads(config.read_text(encoding="utf-8")).get("added_tokens_decoder", {})
        if any(entry.get("content") == "[Hu0]" for entry in added.values()):
            return "tokenizer_config.json"
    if (folder / "tokenizer.json").is_file():
        return "tokenizer.json"
    raise ValueError(f"{folder}: no file defines the speech tokens ([Hu0] is neither a piece of tokenizer.model nor in "
                     "tokenizer_config.json's added_tokens_decoder); this is not a SpiritLM tokenizer")
