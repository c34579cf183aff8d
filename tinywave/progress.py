"""Progress bars for long work (tqdm), quiet when TINYWAVE_PROGRESS=0."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm


def enabled() -> bool:
    return os.environ.get("TINYWAVE_PROGRESS", "1") != "0"


def bar(iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "", unit: str = "it", **kw: Any) -> tqdm:
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled(), mininterval=1.0, dynamic_ncols=True, **kw)
