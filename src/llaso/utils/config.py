"""Typed options from YAML files and `key=value` overrides: the one loader every command's options use.

An options type is a dataclass (sections are nested dataclasses); every default lives in it. A YAML file may
start from another one with `base: other.yaml` (a path relative to the file; the two are merged key by key,
except for `atomic_keys`, whose mappings replace each other whole). Overrides use dotted keys:
`optim.lr=1e-4 loop.max_steps=10 data.train=[a.json,b.json]`. Values are parsed as YAML and then checked
against the field's type, so a typo (`optim.lrr=1`) or a wrong type (`loop.epochs=many`) is an error that
names the key (with a did-you-mean), never a silent default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; the message names the key."""


def load_options(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    atomic_keys: Collection[str] = (),
    what: str = "a config",
) -> T:
    """A `cls` from a YAML file (with its `base:` chain; its `description:` is dropped) and overrides."""
    data: dict[str, Any] = read_yaml_chain(Path(path), atomic_keys, what) if path is not None else {}
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    result: T = from_dict(cls, data, "")
    return result


def read_yaml_chain(
    path: Path, atomic_keys: Collection[str] = (), what: str = "a config", seen: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """The mapping of a YAML file merged over its `base:` files."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: `base:` loop through {' -> '.join(map(str, seen))}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {what} must be a mapping, got {type(raw).__name__}")
    raw.pop("description", None)
    base = raw.pop("base", None)
    if base is None:
        return raw
    merged = read_yaml_chain(path.parent / str(base), atomic_keys, what, (*seen, path))
    _deep_merge(merged, raw, atomic_keys)
    return merged


def _deep_merge(into: dict[str, Any], new: dict[str, Any], atomic_keys: Collection[str]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict) and k not in atomic_keys:
            _deep_merge(into[k], v, atomic_keys)
        else:
            into[k] = v


def parse_override(item: str) -> tuple[str, Any]:
    """`optim.lr=1e-4` → ("optim.lr", "1e-4" parsed as YAML)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {e}") from None
    return key, value


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = nxt
    node[parts[-1]] = value


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, checking every key and value type."""
    label = where or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping, got {type(data).__name__} {data!r:.60}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(fields))})"
            raise ConfigError(f"unknown config key {dotted!r}{hint}")
        kwargs[key] = _coerce(hints[key], value, dotted)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value if value is not None else {}, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}")
    if origin is Literal:
        if isinstance(value, bool):  # YAML 1.1 reads a bare `no` as false
            value = {False: "no", True: "yes"}[value] if value not in args else value
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # `data.train=a.json` means a list of one
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-4` as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover (a schema bug)
