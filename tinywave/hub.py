"""Model folders named by a Hugging Face Hub id, found in the local HF cache and never downloaded.

Wherever a model folder is asked for, a hub id such as ``openai/whisper-small`` (optionally
``@revision``: a branch, tag or commit) is accepted when a snapshot of it is already in the
local cache (``huggingface-cli download`` / ``hf download`` fill it on a connected machine)::

    ~/.cache/huggingface/hub/models--openai--whisper-small/refs/main            -> commit hash
    ~/.cache/huggingface/hub/models--openai--whisper-small/snapshots/<commit>/  config.json, ...

The cache folder is ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub`` (the order
``huggingface_hub`` uses), read when the id is resolved. The lookup is
``huggingface_hub.snapshot_download(local_files_only=True)``: no network request is made,
whatever ``HF_HUB_OFFLINE`` says. A local folder always wins over an id of the same spelling.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$")


def hub_cache_dir() -> Path:
    """The local Hugging Face hub cache this process would read (from the environment, now)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def looks_like_hub_id(name: str) -> bool:
    """``org/name``, optionally ``@revision``: two path parts, neither ``.`` nor ``..``."""
    return bool(_HUB_ID.match(name)) and ".." not in name and not name.startswith(".")


def cached_snapshot(repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision``, or None when it is not in the cache."""
    # lazy: huggingface_hub costs ~0.2 s (httpx, its API client); only a hub-id lookup needs it, and light modules import hub.py
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError  # lazy: as above

    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=str(hub_cache_dir()), local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError):
        return None


def local_path(name: str | Path) -> Path:
    """``name`` itself when it exists or is no hub id; else its cached snapshot, if any (no error)."""
    path = Path(name)
    if path.exists() or not looks_like_hub_id(str(name)):
        return path
    repo_id, _, revision = str(name).partition("@")
    return cached_snapshot(repo_id, revision or "main") or path


def resolve_model_dir(name: str | Path, what: str = "model") -> Path:
    """A local folder as given, or the cached snapshot of a hub id; a clear error when it is neither.

    Missing folders that cannot be hub ids are returned unchanged, so the caller's own
    "not found" message (which names the file it wanted) still applies.
    """
    path, text = Path(name), str(name)
    if path.exists() or not looks_like_hub_id(text):
        return path
    repo_id, _, revision = text.partition("@")
    snapshot = cached_snapshot(repo_id, revision or "main")
    if snapshot is not None:
        return snapshot
    cache = hub_cache_dir()
    raise FileNotFoundError(
        f"{what} {text!r} is not a local folder, and no snapshot of the hub id {repo_id!r}"
        f"{f' at revision {revision!r}' if revision else ''} is in the Hugging Face cache {cache} "
        f"(looked for {cache / ('models--' + repo_id.replace('/', '--'))}/snapshots/). Nothing is downloaded at run time: "
        f"on a connected machine run `huggingface-cli download {repo_id}` (or `hf download {repo_id}`; same HF_HOME / "
        "HF_HUB_CACHE) "
        "and copy the cache here, or pass a local model folder (save_pretrained output)"
    )
