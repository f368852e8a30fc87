"""Localizers by name: one decorator to add an architecture, one function to build it from a plain dict.

Checkpoints store a model's registry name and its config as JSON; this module turns them back into a model,
so neither the training loop nor the checkpoint store needs to know which architectures exist.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from models.errors import EgoRecallError
from models.localizer import Localizer

BUILTIN_MODULES = ("models.vslnet", "models.reler")
"""Modules whose import registers EgoRecall's own localizers (imported on first use of the registry)."""

_REGISTRY: dict[str, type[Localizer]] = {}
_builtins_loaded = False

L = TypeVar("L", bound=type[Localizer])


class UnknownLocalizer(EgoRecallError):
    """A model name that no registered localizer has."""


class InvalidLocalizerConfig(EgoRecallError):
    """A config dict with unknown fields or values of the wrong type."""


def register_localizer(name: str) -> Callable[[L], L]:
    """Class decorator: ``@register_localizer("vslnet")`` on a :class:`Localizer` subclass whose
    ``config_class`` is its config dataclass."""

    def wrap(cls: L) -> L:
        if not (isinstance(cls, type) and issubclass(cls, Localizer)):
            raise TypeError(f"{cls!r} is not a Localizer subclass")
        if not dataclasses.is_dataclass(cls.config_class):
            raise TypeError(f"{cls.__name__}.config_class must be a dataclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a localizer named '{name}' is already registered ({_REGISTRY[name].__name__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def localizer_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def localizer_class(name: str) -> type[Localizer]:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownLocalizer(
            f"there is no localizer model named '{name}' (known models: {', '.join(sorted(_REGISTRY)) or 'none'})"
        ) from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready plain values (tuples become lists)."""

    def plain(value):
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_from_dict(name: str, values: dict[str, Any] | None = None):
    """The named model's config: defaults, overridden by ``values`` (which may come from JSON).

    Unknown keys are refused rather than ignored, so a typo in a training config cannot silently train the
    default model.
    """
    cls = localizer_class(name).config_class
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidLocalizerConfig(
            f"unknown {name} config field(s): {', '.join(unknown)} (known: {', '.join(known)})"
        )
    hints = typing.get_type_hints(cls)
    for key, value in list(values.items()):
        values[key] = _coerce(name, key, value, hints.get(key))
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InvalidLocalizerConfig(f"invalid {name} config: {exc}") from exc


def _coerce(model: str, key: str, value: Any, hint: Any) -> Any:
    """JSON has lists where configs have tuples, and ints where floats are wanted; nothing else is converted."""
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, bool, str) and not isinstance(value, hint):
        raise InvalidLocalizerConfig(f"{model} config field '{key}' must be {hint.__name__}, got {value!r}")
    return value


def build_localizer(name: str, config: dict[str, Any] | Any | None = None) -> Localizer:
    """A freshly initialised model: ``build_localizer("vslnet", {"video_dim": 256})``.

    ``config`` may be a plain dict (missing fields take their defaults), the model's config dataclass, or None.
    """
    cls = localizer_class(name)
    if config is None or isinstance(config, dict):
        config = config_from_dict(name, config)
    elif not isinstance(config, cls.config_class):
        raise InvalidLocalizerConfig(f"{name} needs a {cls.config_class.__name__}, got {type(config).__name__}")
    return cls(config)
