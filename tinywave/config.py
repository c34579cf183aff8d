"""Typed dataclass configs: YAML files plus dotted ``key=value`` overrides.

Every subcommand has one dataclass config (nested dataclasses for sections). A run's
configuration is resolved in three layers: the dataclass defaults, then an optional
YAML file, then command-line overrides (``loss.kl_weight=0.5``). Unknown keys are an
error that names the key and the closest valid one; values are coerced to the field's
type or rejected with the expected type in the message. A top-level config class may list
keys it renamed in ``RENAMED: ClassVar[dict[str, str]]`` (old dotted key -> new one; an old
section maps every key under it): an old key, in a YAML file or an override, is an error
that names the new key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key a user wrote is wrong; the message says how to fix it."""


def field(default: Any = dataclasses.MISSING, *, help: str = "", **kw: Any) -> Any:
    """A dataclass field with a help string (shown by ``tinywave <cmd> --help``)."""
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kw)
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        section = default
        return dataclasses.field(default_factory=lambda: dataclasses.replace(section), metadata={"help": help}, **kw)
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid keys: {', '.join(sorted(valid))}."


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML-parsed value to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=where + ".")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""] if value else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r} (write it as [a, b] or a,b)")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r} (write it as {{a: 1}})")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            as_float = float(value)
        except (ValueError, OverflowError):
            raise ConfigError(f"{where}: expected an integer, got {_short(value)}") from None
        if not as_float.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {_short(value)}")
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where}: expected a number, got {_short(value)}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return "" if value is None else str(value)
    return value


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**50 else f"an integer of {len(str(abs(value)))} digits"
    return text if len(text) <= 80 else text[:77] + "..."


def renamed_keys(cls: type) -> dict[str, str]:
    """Old dotted key -> new dotted key, from the config class's ``RENAMED`` (an old section renames every key under it)."""
    return dict(getattr(cls, "RENAMED", None) or {})


def _new_name(renames: dict[str, str], dotted: str) -> str | None:
    for old in sorted(renames, key=len, reverse=True):  # the longest old key that names ``dotted`` or a section above it
        if dotted == old or dotted.startswith(old + "."):
            return renames[old] + dotted[len(old):]
    return None


def check_renamed(cls: type, dotted: str) -> None:
    """Raise ConfigError naming the new key when ``dotted`` is a key ``cls`` renamed (and no longer has)."""
    new = _new_name(renamed_keys(cls), dotted)
    if new is not None and field_type(cls, dotted) is None:
        raise ConfigError(f"config key '{dotted}' was renamed '{new}'; write {new}=...")


def _leaf_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of every leaf of a nested mapping (a section's own key when it is empty)."""
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys += _leaf_keys(value, dotted + ".") if isinstance(value, dict) and value else [dotted]
    return keys


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a plain dict, recursively; unknown keys are errors (renamed ones name the new key)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    if not prefix and renamed_keys(cls):
        for dotted in _leaf_keys(data):
            check_renamed(cls, dotted)
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}{key}'.{_suggest(str(key), names)}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain data (for JSON/YAML next to checkpoints and reports)."""
    return dataclasses.asdict(cfg)


class _Whole(dict):
    """A mapping value given whole on the command line: it replaces the YAML's mapping instead of merging into it."""


def _set_dotted(tree: dict[str, Any], cls: type, dotted: str, raw: str, entries: list[tuple[tuple[str, ...], type, str, Any]]) -> None:
    """Put override ``dotted=raw`` into ``tree``; an entry of a mapping-valued field (``mixture.speech``) goes to ``entries``."""
    parts = dotted.split(".")
    node, node_cls = tree, cls
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(node_cls)]
        if part not in names:
            where = ".".join(parts[:i])
            full = f"{where}.{part}" if where else part
            raise ConfigError(f"unknown config key '{full}'.{_suggest(part, names)}")
        tp = _type_hints(node_cls)[part]
        mapping = typing.get_origin(tp) is dict
        if i == len(parts) - 1:
            value = _parse_value(raw)
            node[part] = _Whole(value) if mapping and isinstance(value, dict) else value  # mixture={...} replaces the YAML's mapping
            return
        if i == len(parts) - 2 and mapping:  # mixture.speech=0.7: one entry, set after the YAML is merged (_set_entries)
            entries.append((tuple(parts[:-1]), node_cls, parts[-1], _parse_value(raw)))
            return
        sub = _dataclass_of(tp)
        if sub is None and mapping:
            name = ".".join(parts[: i + 1])
            raise ConfigError(f"'{name}' is a mapping of values: set one entry with {name}.KEY=VALUE, or all with {name}='{{KEY: VALUE, ...}}'")
        if sub is None:
            raise ConfigError(f"'{'.'.join(parts[: i + 1])}' is a value, not a section: write {'.'.join(parts[: i + 1])}=VALUE")
        node = node.setdefault(part, {})
        node_cls = sub


def _field_default(cls: type, name: str) -> Any:
    """The default value of dataclass field ``name`` (a copy when it comes from a factory)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else {}


def _dataclass_of(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _parse_value(raw: str) -> Any:
    """Parse an override's value as YAML (``3``, ``1e-4``, ``[1, 2]``, ``true``, text)."""
    try:
        return yaml.safe_load(raw) if raw.strip() != "" else ""
    except (yaml.YAMLError, RecursionError, ValueError):  # not YAML (nested too deep, a 5000-digit number): the text itself
        return raw


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        whole = isinstance(v, _Whole)
        out[k] = _merge(out[k], v) if isinstance(v, dict) and not whole and isinstance(out.get(k), dict) else (dict(v) if whole else v)
    return out


def _set_entries(tree: dict[str, Any], entries: list[tuple[tuple[str, ...], type, str, Any]]) -> dict[str, Any]:
    """Set each (path to a mapping field, its dataclass, key, value) in ``tree``, starting from the YAML's mapping or the field's default."""
    for path, owner, key, value in entries:
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        current = node.get(path[-1])
        node[path[-1]] = {**(current if isinstance(current, dict) else _field_default(owner, path[-1])), key: value}
    return tree


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist; pass an existing YAML file to --config (see configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc)[:300]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def read_yaml_with_bases(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML file whose optional ``_base_: other.yaml`` (relative to it) is merged underneath."""
    path = Path(path).resolve()
    if path in seen:
        raise ConfigError(f"config file {path} includes itself through _base_; remove the cycle")
    tree = read_yaml(path)
    base = tree.pop("_base_", None)
    if base is None:
        return tree
    if not isinstance(base, str) or "\0" in base or not base.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in base):
        raise ConfigError(f"{path}: _base_ must be a file path, got {base!r}")
    return _merge(read_yaml_with_bases(path.parent / base, seen + (path,)), tree)


def load_config(cls: type[T], yaml_path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Resolve a config: dataclass defaults <- YAML file <- ``key=value`` overrides."""
    tree: dict[str, Any] = read_yaml_with_bases(yaml_path) if yaml_path else {}
    over: dict[str, Any] = {}
    entries: list[tuple[tuple[str, ...], type, str, Any]] = []
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value (e.g. optim.lr=3e-4)")
        key, raw = item.split("=", 1)
        if not key:
            raise ConfigError(f"override '{item}' has an empty key; write key=value")
        check_renamed(cls, key.strip())
        _set_dotted(over, cls, key.strip(), raw, entries)
    return from_dict(cls, _set_entries(_merge(tree, over), entries))


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Rows (key, type, default, help) for every leaf field, for ``--help``."""
    rows = []
    hints = _type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        sub = _dataclass_of(tp)
        if sub is not None:
            rows += describe(sub, prefix + f.name + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        type_name = getattr(tp, "__name__", str(tp).replace("typing.", ""))
        rows.append((prefix + f.name, type_name, default, f.metadata.get("help", "")))
    return rows


def field_type(cls: type, dotted: str) -> Any:
    """The annotated type of a dotted key, or None if it does not exist."""
    node = cls
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        hints = _type_hints(node)
        if part not in hints:
            return None
        if i == len(parts) - 1:
            return hints[part]
        node = _dataclass_of(hints[part])
        if node is None:
            return None
    return None


def apply_fast(cfg: T, fast: dict[str, Any], cls: type[T]) -> T:
    """``cfg`` with ``fast`` values for every leaf the user left at its default: explicit keys win.

    A `--fast` preset is a set of smaller defaults, not an override: ``--fast teacher.steps=50``
    trains 50 steps.
    """
    defaults = to_dict(cls())

    def merge(current: dict[str, Any], preset: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
        out = dict(current)
        for key, value in preset.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict) and key not in ("mixture",):
                out[key] = merge(current[key], value, default.get(key, {}))
            elif current.get(key) == default.get(key):
                out[key] = value
        return out

    return from_dict(cls, merge(to_dict(cfg), fast, defaults))
