"""Checks run before any training step: vocabularies, shards and sequence lengths agree.

A teacher/student or data vocabulary mismatch trains without error and gives silently
wrong results, so each is refused up front with the fix in the message.
"""

from __future__ import annotations

from torch import nn

from tinywave.text.vocab import layout_from_tokenizer


def check_tokenizer_fits(model: nn.Module, tokenizer, where: str) -> None:
    """The tokenizer holds the speech vocabulary and every id has a row in the model's embeddings."""
    try:
        layout_from_tokenizer(tokenizer)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"{where}: the tokenizer has {len(tokenizer)} ids but the model's vocabulary has {model.config.vocab_size} rows; "
            "the model folder holds a tokenizer it was not trained with"
        )


def check_same_vocabulary(teacher: nn.Module, student: nn.Module, teacher_fp: str, student_fp: str, student_dir: str) -> None:
    """Teacher and student share vocabulary size and tokenizer (equal fingerprints)."""
    t_size, s_size = teacher.config.vocab_size, student.config.vocab_size
    if t_size != s_size:
        raise ValueError(f"teacher vocabulary has {t_size} ids but student {student_dir} has {s_size}; distil into a student built from this teacher")
    if teacher_fp != student_fp:
        raise ValueError(
            f"teacher tokenizer fingerprint {teacher_fp} differs from student {student_dir}'s {student_fp}: their ids mean "
            "different tokens; build the student from this teacher (leave student.dir empty)"
        )


def check_shards_fit(index: dict, seq_len: int, expected_seq_len: int, models: dict[str, nn.Module], shards_dir: str) -> None:
    """Shard ids fit every model's vocabulary; rows fit their position range; the length is the expected one."""
    if expected_seq_len and expected_seq_len != seq_len:
        raise ValueError(f"shards in {shards_dir} have rows of {seq_len} tokens, but data.seq_len={expected_seq_len}; "
                         f"rebuild them with seq_len={expected_seq_len} or set data.seq_len=0")
    for name, model in models.items():
        if index["vocab_size"] > model.config.vocab_size:
            raise ValueError(f"shards in {shards_dir} use {index['vocab_size']} ids but the {name} has {model.config.vocab_size}; rebuild the shards with the {name}'s tokenizer")
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit and seq_len > limit:
            raise ValueError(f"shards in {shards_dir} have rows of {seq_len} tokens, more than the {name}'s max_position_embeddings={limit}; rebuild them with a shorter seq_len")
