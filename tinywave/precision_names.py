"""One spelling of precisions and dtypes: ``fp32``, ``bf16``, ``fp16``.

Every precision or dtype key of every recipe (``train.precision``, ``teacher.dtype``,
``dtype``, ``logit_dtype``, ...) writes the short name; the torch / numpy spellings
``float32``, ``bfloat16`` and ``float16`` stay accepted and mean the same. Formats on disk
that record a dtype (the teacher cache's ``index.json``) keep the long names they were
written with: :func:`long_name` gives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
LONG_NAMES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_ALIASES: dict[str, str] = {**{p: p for p in PRECISIONS}, **{long: short for short, long in LONG_NAMES.items()}}


def canonical(name: str, allowed: Iterable[str] = PRECISIONS, key: str = "dtype") -> str:
    """``name`` in the short spelling (``bfloat16`` -> ``bf16``); ValueError naming ``key`` and the choices."""
    choices = tuple(allowed)
    short = _ALIASES.get(name.strip().lower()) if isinstance(name, str) else None
    if short is not None and short in choices:
        return short
    what = "is not known" if short is None else "is not supported here"
    longs = ", ".join(LONG_NAMES[c] for c in choices)
    raise ValueError(f"{key} {name!r} {what}; choose one of {', '.join(choices)} (or the long spelling: {longs})")


def long_name(name: str, key: str = "dtype") -> str:
    """The torch / numpy spelling of a precision (``bf16`` -> ``bfloat16``), as formats on disk record it."""
    return LONG_NAMES[canonical(name, key=key)]


def short_or_same(value: Any) -> Any:
    """The short spelling when ``value`` spells a precision, else ``value`` unchanged (``int8``, ``auto``, numbers)."""
    return _ALIASES.get(value.strip().lower(), value) if isinstance(value, str) else value


def same_precision(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are two spellings of one precision (``float32`` and ``fp32``)."""
    return isinstance(a, str) and isinstance(b, str) and short_or_same(a) in PRECISIONS and short_or_same(a) == short_or_same(b)


def torch_dtype(name: str, allowed: Iterable[str] = PRECISIONS, key: str = "dtype") -> Any:
    """The ``torch.dtype`` of a precision in either spelling (``fp32`` / ``float32`` -> ``torch.float32``)."""
    import torch  # lazy: keeps this module importable without torch (models.estimate's arithmetic uses the names only)

    return getattr(torch, LONG_NAMES[canonical(name, allowed, key)])
