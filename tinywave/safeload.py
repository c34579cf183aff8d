"""Loading files that other people made, without running code hidden in them.

A pickle can name any Python callable (``os.system``, ``subprocess.Popen``...) and the
unpickler calls it while loading. Every ``.pt`` and ``.npy`` the toolkit reads goes
through this module:

* :func:`load_torch` uses ``torch.load(weights_only=True)``: tensors, numbers, strings,
  lists and dicts only. A file that needs anything else is refused with
  :class:`UnsafeFileError`, which names the file and the Python objects it would import
  (found by reading the pickle's opcodes, never by running them) and says how to opt in.
* :func:`load_numpy` uses ``np.load(allow_pickle=False)``; object arrays are refused the same way.
* :func:`load_json` reads JSON with an error naming the file and the line.

The opt-in is ``allow_pickle=True`` in Python, ``trust_pickle=true`` (``--trust-pickle``)
on the command line of the recipes that read files from others. Safetensors, ``.npy``
of plain dtypes and JSON never need it.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import io
import json
import logging
import pickle
import pickletools
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

OPT_IN = "pass --trust-pickle (config key trust_pickle=true; allow_pickle=True in Python)"
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


class UnsafeFileError(ValueError):
    """A file needs arbitrary unpickling to load; nothing in it was executed."""

    def __init__(self, path: str | Path, imports: list[str], what: str, opt_in: str = OPT_IN):
        shown = ", ".join(imports[:6]) + (f" (+{len(imports) - 6} more)" if len(imports) > 6 else "")
        would = f" (it would import {shown})" if imports else ""
        super().__init__(
            f"{path} was refused: {what} needs Python objects unpickled{would}, which can run arbitrary code. "
            f"Nothing in it was executed. If you trust where this file comes from, {opt_in}; "
            "better, convert it once to safetensors or a plain .npy array."
        )
        self.path, self.imports = str(path), imports


def pickle_globals(data: bytes) -> list[str]:
    """``module.name`` of every global the pickles in ``data`` would import, read from their opcodes only.

    Consecutive pickles are all read (torch's legacy format writes several in a row); raw
    bytes after them, or a damaged stream, end the scan.
    """
    found: list[str] = []
    strings: list[str] = []
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):
            for op, arg, _ in pickletools.genops(stream):
                if op.name in _STRING_OPS:
                    strings.append(str(arg))
                elif op.name in ("GLOBAL", "INST"):
                    found.append(_py3_name(*str(arg).split(" ", 1)))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(_py3_name(strings[-2], strings[-1]))
    except Exception:  # not (or no longer) a pickle: report what was read
        pass
    return list(dict.fromkeys(found))


def _py3_name(module: str, name: str = "") -> str:
    """``module.name`` with protocol-2 names mapped as the unpickler maps them (``__builtin__`` -> ``builtins``)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _torch_pickles(path: Path) -> list[bytes]:
    """The pickle streams of a torch file (``*/data.pkl`` in the zip format, else the raw file)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return [z.read(n) for n in z.namelist() if n.endswith(".pkl")]
    return [path.read_bytes()]


def _torch_last(names: list[str]) -> list[str]:
    """Unique names, those outside torch's own namespace first (they are the ones worth reading)."""
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda n: n.startswith("torch."))


def foreign_imports(streams: list[bytes]) -> list[str]:
    """Every global the pickle streams would import (opcode scan), torch's own names last."""
    return _torch_last([g for s in streams for g in pickle_globals(s)])


def torch_file_imports(path: Path) -> list[str]:
    """The globals of a torch file that a weights-only load refuses.

    Zip-format files (what ``torch.save`` writes) are asked with torch's public
    ``torch.serialization.get_unsafe_globals_in_checkpoint``, which knows torch's allowlist
    and the user's ``add_safe_globals``. Legacy-format files and raw pickles, which that
    function does not read, get the opcode scan of :func:`foreign_imports`.
    """
    import torch  # lazy: keeps safeload importable without torch (load_numpy/load_json serve speech/ and numpy-only readers)

    if zipfile.is_zipfile(path):
        try:
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        except Exception:  # a TorchScript archive, or opcodes torch's scanner does not read
            log.debug("torch could not list the globals of %s; scanning its pickles", path)
    return foreign_imports(_torch_pickles(path))


def _need_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found" + ("; it is a directory" if path.is_dir() else ""))


def load_torch(path: str | Path, allow_pickle: bool = False, map_location: str = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load`` of tensors and plain containers; anything else needs ``allow_pickle``."""
    import torch  # lazy: keeps safeload importable without torch (load_numpy/load_json serve speech/ and numpy-only readers)

    path = Path(path)
    _need_file(path, what)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        imports = torch_file_imports(path)
        if not allow_pickle:
            log.debug("weights-only load of %s failed: %s", path, exc)
            raise UnsafeFileError(path, imports, f"this {what}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read as a torch {what} ({type(exc).__name__}: {str(exc)[:200]}); "
                         "the file is truncated or not a torch file: copy it again") from None
    log.warning("loading %s with full unpickling (trust_pickle): it imports %s", path, ", ".join(imports) or "nothing unusual")
    return torch.load(path, map_location=map_location, weights_only=False)


def _npy_pickle(path: Path) -> bytes:
    """The bytes after a .npy header (the pickle of an object array)."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        size = int.from_bytes(f.read(2 if major == 1 else 4), "little")
        f.seek(size, io.SEEK_CUR)
        return f.read()


def load_numpy(path: str | Path, allow_pickle: bool = False, what: str = "array file") -> Any:
    """``np.load`` of plain arrays (``.npy``/``.npz``); object arrays need ``allow_pickle``."""
    path = Path(path)
    _need_file(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise ValueError(f"{path} cannot be read as a numpy {what} ({exc}); the file is truncated or not a .npy/.npz") from None
        if not allow_pickle:
            try:
                imports = foreign_imports([_npy_pickle(path)])
            except Exception:
                imports = []
            raise UnsafeFileError(path, imports, f"this {what} (an object array)") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} cannot be read as a numpy {what} ({exc}); the file is truncated or not a .npy/.npz") from None
    log.warning("loading %s with full unpickling (trust_pickle)", path)
    return np.load(path, allow_pickle=True)


def load_json(path: str | Path, what: str = "JSON file") -> Any:
    """Parsed JSON; a missing file, bad UTF-8 or bad JSON is an error naming the file and the line."""
    path = Path(path)
    _need_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {exc.start}); rewrite it") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); rewrite it") from None


@contextlib.contextmanager
def refuse_pickled_weights(folder: str | Path) -> Iterator[None]:
    """Around ``from_pretrained(folder)``: a pickled ``.bin`` that transformers' weights-only load
    refuses becomes an :class:`UnsafeFileError` naming the file (instead of an UnpicklingError)."""
    try:
        yield
    except pickle.UnpicklingError:
        folder = Path(folder)
        files = sorted(p for pattern in ("*.bin", "*.pt", "*.pth") for p in folder.glob(pattern))
        imports = list(dict.fromkeys(g for f in files for g in torch_file_imports(f)))
        names = ", ".join(f.name for f in files) or "its weight files"
        convert = ("convert it once in Python with from_pretrained(DIR, weights_only=False).save_pretrained(NEW_DIR), "
                   "which writes safetensors, and use NEW_DIR")
        raise UnsafeFileError(folder, imports, f"the model folder's {names}", convert) from None
