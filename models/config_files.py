"""Reading a config dataclass the one way every EgoRecall config is read: its defaults, then a YAML/JSON file,
then a mapping of values (a command's everyday flags), then ``KEY=VALUE`` overrides (``--set``); a key that is
not a field is refused by its full dotted name, so a typo can never silently run with the default.

Training (:mod:`training.config`), pretraining (:mod:`training.pretrain.config`) and the app's settings
(:mod:`app.settings`, with the library's :class:`indexing.config.LibraryConfig` inside) are dataclass trees
read by :func:`configure`. It lives in the lowest layer because every layer's settings are read alike; it knows
nothing of any of them. Frozen dataclasses are rebuilt (``dataclasses.replace``), mutable ones changed in place.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from models.errors import EgoRecallError

T = TypeVar("T")


class ConfigError(EgoRecallError):
    """A config that cannot be used: unknown key, wrong type, impossible value, unreadable file."""


def plain(value: Any) -> Any:
    """A config's ``asdict`` with tuples as lists (as YAML and JSON write them)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check (and gently convert) one value against a field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{source}: '{key}' must be a path, not {value!r}.")
        return Path(value).expanduser()
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key, source) if len(inner) == 1 else value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source}: '{key}' must be a number, not {value!r}.")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: '{key}' must be a whole number, not {value!r}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, not {value!r}.")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, not {value!r}.")
        return value
    if origin is list:
        if isinstance(value, (str, Path)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, not {value!r}.")
        return [_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)] if args else list(value)
    if origin is tuple:
        if args and args[-1] is Ellipsis:  # tuple[X, ...]: any length, every item an X
            if isinstance(value, (str, Path)):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{source}: '{key}' must be a list, not {value!r}.")
            return tuple(_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or (args and len(value) != len(args)):
            raise ConfigError(f"{source}: '{key}' must be a list of {len(args)} values, not {value!r}.")
        return tuple(_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be a mapping, not {value!r}.")
        return dict(value)
    return value


def apply_values(target: T, values: Mapping[str, Any], source: str, prefix: str = "") -> T:
    """Overlay a nested mapping onto a config dataclass, refusing unknown keys by their dotted name; returns it
    (a frozen one rebuilt with the changes, a mutable one changed in place)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: '{prefix.rstrip('.') or 'the top level'}' must be a mapping of settings.")
    hints = _hints(type(target))
    known = {f.name for f in dataclasses.fields(target)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"{source}: unknown config key '{dotted}' (known here: {', '.join(sorted(known))}).")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            changes[key] = apply_values(current, value, source, f"{dotted}.")
        else:
            changes[key] = _coerce(value, hints[key], dotted, source)
    if not changes:
        return target
    if type(target).__dataclass_params__.frozen:  # type: ignore[attr-defined]
        try:
            return dataclasses.replace(target, **changes)  # type: ignore[type-var]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {prefix.rstrip('.') or 'settings'}: {exc}") from None
    for key, value in changes.items():
        setattr(target, key, value)
    return target


def read_config_file(path: str | Path, search_dir: Path | None = None) -> dict[str, Any]:
    """A YAML or JSON config file as a mapping (an empty file is an empty mapping); a bare name that is not a
    file here is looked for in ``search_dir`` (the folder of one-file-per-experiment configs)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        candidate = search_dir / path.name if search_dir is not None else None
        if candidate is not None and path.parent == Path(".") and candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
        else:
            raise ConfigError(f"The config file {path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"The config file {path} cannot be read ({exc.strerror or exc}).") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"The config file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'} "
            f"({str(exc).splitlines()[0]})."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"The config file {path} must hold a mapping of settings at the top level.")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-4"`` -> (["optim", "lr"], 1e-4); the value is read as YAML (lists, null, booleans)."""
    if "=" not in text:
        raise ConfigError(f"--set takes key=value, got '{text}'.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set '{text}' has no valid key before '='.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def nest(parts: list[str], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def configure(
    target: T,
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    values: Mapping[str, Any] | None = None,
    *,
    search_dir: Path | None = None,
) -> T:
    """The one way every EgoRecall config dataclass is read: ``target`` (its defaults), then the file at ``path``
    (YAML/JSON; a bare name is also looked for in ``search_dir``), then ``values`` (a nested mapping, e.g. a
    command's everyday flags), then ``key=value`` overrides (``--set``); unknown keys are refused by their dotted
    name. Returns the config (``target`` itself unless it is frozen)."""
    if path is not None:
        target = apply_values(target, read_config_file(path, search_dir), str(path))
    if values:
        target = apply_values(target, values, "values")
    for text in overrides:
        parts, value = parse_override(text)
        target = apply_values(target, nest(parts, value), "--set")
    return target


def field_paths(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every leaf setting of a config dataclass by dotted name, with its type hint (nested dataclasses walked):
    what ``--set`` accepts, and what a command's flags are checked against."""
    out: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out.update(field_paths(hint, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = hint
    return out
