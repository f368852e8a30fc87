"""Answering modes by name: ``zeroshot``, ``checkpoint:NAME`` (or a bare checkpoint name or path), and whatever
else registers itself, each built from an :class:`~app.answering.base.AnswerContext` and kept in a small LRU."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.answering.base import CHECKPOINT, AnswerContext, Answerer, UnknownMode


@dataclass(frozen=True)
class AnswererKind:
    name: str
    factory: Callable[[AnswerContext, str | None], Answerer]
    cache_key: Callable[[AnswerContext, str | None], tuple]
    takes_argument: bool = False


_KINDS: dict[str, AnswererKind] = {}


def register_answerer(
    name: str, *, takes_argument: bool = False, cache_key: Callable[[AnswerContext, str | None], tuple] | None = None
):
    def wrap(factory):
        _KINDS[name] = AnswererKind(
            name, factory, cache_key or (lambda ctx, arg: (name, arg, ctx.feature_key)), takes_argument
        )
        return factory

    return wrap


def answerer_kinds() -> list[str]:
    return sorted(_KINDS)


def parse_mode(mode: str) -> tuple[AnswererKind, str | None]:
    """``zeroshot`` -> that kind; ``checkpoint:NAME`` or any other string -> a checkpoint name or path."""
    mode = (mode or "").strip()
    if not mode:
        raise UnknownMode(f"no answering mode given; use {', '.join(answerer_kinds())} or the name of a checkpoint")
    kind = _KINDS.get(mode)
    if kind is not None and not kind.takes_argument:
        return kind, None
    prefix, sep, rest = mode.partition(":")
    kind = _KINDS.get(prefix) if sep else None
    if kind is not None and kind.takes_argument:
        if not rest.strip():
            raise UnknownMode(f"'{mode}' names no checkpoint; use {prefix}:NAME")
        return kind, rest.strip()
    return _KINDS[CHECKPOINT], mode


def _naming_the_modes(kind: AnswererKind, mode: str, call: Callable[[], object]):
    """``call()``; a mode string that names no registered mode and no checkpoint says what the modes are."""
    from checkpoints import NotACheckpoint

    try:
        return call()
    except NotACheckpoint as exc:
        if kind.name != CHECKPOINT or mode.startswith(f"{CHECKPOINT}:"):
            raise
        named = ", ".join(k if not _KINDS[k].takes_argument else f"{k}:NAME" for k in answerer_kinds())
        raise NotACheckpoint(f"'{mode}' is not an answering mode ({named}) nor a checkpoint: {exc}") from None


def make_answerer(mode: str, context: AnswerContext) -> Answerer:
    kind, arg = parse_mode(mode)
    return _naming_the_modes(kind, mode, lambda: kind.factory(context, arg))


def answerer_cache_key(mode: str, context: AnswerContext) -> tuple:
    """Identity of the answerer ``mode`` would build for these features (a changed checkpoint changes it)."""
    kind, arg = parse_mode(mode)
    return _naming_the_modes(kind, mode, lambda: kind.cache_key(context, arg))


class AnswererCache:
    """A small LRU of built answerers (a loaded checkpoint costs seconds), safe to share between threads."""

    def __init__(self, size: int = 3) -> None:
        self.size = max(1, size)
        self._items: dict[tuple, Answerer] = {}
        self._lock = threading.Lock()

    def get(self, mode: str, context: AnswerContext) -> Answerer:
        key = answerer_cache_key(mode, context)
        with self._lock:
            if key in self._items:
                self._items[key] = self._items.pop(key)  # most recently used last
                return self._items[key]
            answerer = make_answerer(mode, context)
            self._items[key] = answerer
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))
            return answerer

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
