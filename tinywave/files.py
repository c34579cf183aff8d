"""Crash-safe file writing and JSON-lines helpers.

A file or folder is either absent or complete: everything is written under a temporary
name in the same directory, flushed and fsynced, then renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def fsync_dir(path: str | Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# errno -> what to do about it, for write errors
WRITE_FIXES = {
    errno.ENOSPC: "free disk space there (df -h) or write to another folder",
    errno.EDQUOT: "free space within your disk quota or write to another folder",
    errno.EFBIG: "the file is larger than this filesystem or a ulimit allows (ulimit -f); write elsewhere",
    errno.EACCES: "fix the folder's permissions (ls -ld, chmod/chown) or write to another folder",
    errno.EPERM: "fix the folder's permissions (ls -ld, chmod/chown) or write to another folder",
    errno.EROFS: "the filesystem is read-only; write to another folder",
}


# writers outside Python (safetensors in Rust, torch's zip writer in C++) report I/O
# errors as their own exception types; these patterns recover the cause from the text
_ERRNO_RE = re.compile(r"os error (\d+)|\[Errno (\d+)\]")
_TORCH_WRITER_RE = re.compile(r"PytorchStreamWriter failed|file write failed|unexpected pos \d+ vs \d+")


def write_errno(exc: BaseException) -> int | None:
    """The errno behind a failed write: an OSError's, or one named in a native writer's message."""
    if isinstance(exc, OSError):
        return exc.errno
    if not isinstance(exc, Exception):
        return None
    m = _ERRNO_RE.search(str(exc))
    if m:
        return int(m.group(1) or m.group(2))
    return errno.EIO if _TORCH_WRITER_RE.search(str(exc)) else None


def write_error(exc: BaseException, path: Path) -> OSError | None:
    """An OSError naming ``path``, saying the old content is intact and what to do; None if ``exc`` is no write error."""
    code = write_errno(exc)
    if code not in WRITE_FIXES and code != errno.EIO:
        return None
    reason = os.strerror(code) if code != errno.EIO or isinstance(exc, OSError) else f"the writer failed: {str(exc)[:160]}"
    fix = WRITE_FIXES.get(code, "the disk may be full or the file larger than allowed: check free space (df -h) and ulimit -f")
    return OSError(code, f"could not write {path} ({reason}); nothing was replaced, any previous version is intact; {fix}")


@contextlib.contextmanager
def explained_write_errors(path: Path) -> Iterator[None]:
    """Re-raise disk-full, quota, size-limit and permission errors with a message naming ``path`` and the fix."""
    try:
        yield
    except Exception as exc:
        explained = write_error(exc, path)
        if explained is None:
            raise
        raise explained from exc


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    with explained_write_errors(path):
        _atomic_write_bytes(path, data)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` in one rename.

    On any error the temporary folder is removed and an existing ``path`` is untouched;
    a disk-full or permission error names ``path`` and the fix.
    """
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    with explained_write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if old.exists() and not path.exists():  # killed between the two renames below: put it back
            os.replace(old, path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        if path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not path.exists():
            os.replace(old, path)
        explained = write_error(exc, path)
        if explained is None:
            raise
        raise explained from exc


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """Yield (line number, parsed object or None, error text) for every non-empty line.

    A truncated last line (a killed writer) is reported as an error, never raised.
    """
    path = Path(path)
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield n, None, f"line is not UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            except json.JSONDecodeError as exc:
                yield n, None, f"line is not valid JSON ({exc.msg})"
                continue
            except (ValueError, RecursionError) as exc:  # a number of over 4300 digits, nesting too deep
                yield n, None, f"line is not usable JSON ({type(exc).__name__}: {str(exc)[:80]})"
                continue
            if not isinstance(obj, dict):
                yield n, None, f"line holds a {type(obj).__name__}, expected a JSON object"
                continue
            yield n, obj, ""


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All valid objects of a JSON-lines file, skipping a torn trailing line."""
    return [obj for _, obj, _ in read_jsonl(path) if obj is not None]


class JsonlAppender:
    """Append JSON objects one per line, flushed and fsynced so a kill loses at most one line."""

    def __init__(self, path: str | Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._f = open(self.path, "a", encoding="utf-8")
        self._fsync = fsync

    def _repair_tail(self) -> None:
        """Drop a torn last line left by a killed writer, so appends start on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            cut = data.rfind(b"\n") + 1
            f.truncate(cut)

    def write(self, obj: dict[str, Any]) -> None:
        self.write_many([obj])

    def write_many(self, objs: Iterable[dict[str, Any]]) -> None:
        with explained_write_errors(self.path):  # a torn last line is repaired by the next appender
            for obj in objs:
                self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self._f.flush()
            if self._fsync:
                os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
