"""Answerers: one interface, one implementation per answering mode, chosen through a small registry.

An :class:`Answerer` turns questions into ranked windows over one clip's features. Everything above it --
library-wide search (:mod:`app.answers`), the ``ask`` and ``predict`` commands, the UI -- only talks to this
interface, so a new mode is one registered class.

Modes:

* ``zeroshot`` (:class:`ZeroShotAnswerer`): the question is rewritten into a CLIP prompt ensemble
  (:mod:`models.zeroshot`), every frame is scored by its cosine with it, and the curve becomes windows.
  Needs the CLIP that made the features.
* a checkpoint (:class:`TrainedAnswerer`): any other mode string names a trained localizer in the
  checkpoints folder (or a path to one). Its metadata must match the features (encoder key, dimension, grid
  rate -- :func:`checkpoints.check_compatible`); its questions are encoded by the frozen token encoder its
  metadata names (:func:`checkpoints.text_encoder_spec`), reusing the already loaded CLIP when the weights
  are the same; it answers with :func:`models.inference.localize`.

Comparable scores. Within one mode, window scores of different videos must rank against each other:

* zero-shot scores are cosine similarities of one question vector with features of one encoder, so they
  compare across videos as they are;
* a localizer's span scores (p_start x p_end) are softmax-normalised *per video* -- every video, even one
  without the answer, puts its mass somewhere -- so they do not compare. With ``comparable=True`` a trained
  window is scored by the model's highlight probability averaged over the window (a per-bin sigmoid,
  independent of the rest of the video) and the windows are re-ordered by it; without it (``predict``,
  evaluation) the model's own span order and scores are kept.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from models.errors import EgoRecallError
from models.grid import TimeGrid
from models.windows import Window
from models.zeroshot import (EmptyQuestion, Rewrite, ZeroShotConfig, embed_prompts, rewrite_question,
                             similarity_curve, zero_shot_windows)

logger = logging.getLogger(__name__)

ZEROSHOT = "zeroshot"
CHECKPOINT = "checkpoint"


class UnknownMode(EgoRecallError):
    """The answering mode is neither a registered mode nor a checkpoint."""


class FeatureMismatch(EgoRecallError):
    """The features cannot be read by the chosen mode (e.g. zero-shot with features of another encoder)."""


@dataclass(frozen=True)
class PreparedQuestion:
    """A question made ready once for any number of clips."""

    text: str
    rewrite: Rewrite
    vector: np.ndarray | None = None
    """The CLIP prompt-ensemble vector (float32 [dim], unit): zero-shot scoring and library search."""
    tokens: np.ndarray | None = None
    """Trained modes: the query's token features [T, Dt] (float32) ..."""
    mask: np.ndarray | None = None
    """... and their validity mask [T]."""


@dataclass
class ClipAnswer:
    windows: list[Window]
    """Best first, seconds on the clip's grid, non-overlapping."""
    curve: np.ndarray
    """One score per bin of the clip's grid (cosine for zero-shot, highlight probability for localizers)."""


@dataclass
class AnswerContext:
    """What answerers need to know about the features they will read, and where to load things from."""

    feature_key: str
    """Identity of the encoder that made the features (``EncoderSpec.key``)."""
    feature_dim: int
    rate_hz: float | None
    """The features' grid rate; None when it varies per clip (a folder of precomputed clip features)."""
    clip: Callable[[], object]
    """Loads (once) the CLIP ``ClipEncoder`` whose text space matches the features."""
    clip_spec: object | None = None
    """That CLIP's ``EncoderSpec``, known without loading it (None when unknown)."""
    checkpoints_dir: Path | None = None
    device: str | None = None
    feature_key_known: bool = True
    """False for features of unknown origin (only their dimension can be checked against a checkpoint)."""


class Answerer(Protocol):
    mode: str
    """The mode string it answers for (``zeroshot`` or the checkpoint's name)."""
    label: str
    """A short human description, e.g. ``zero-shot (ViT-B-16/openai)``."""
    max_candidate_videos: int
    """How many videos a library-wide question may score in full (its cost per video decides)."""

    def prepare(self, questions: Sequence[str], *, search: bool = False) -> list[PreparedQuestion]:
        """Encode questions once. ``search``: also make the CLIP vector used to narrow a library search.
        Raises :class:`EmptyQuestion` if any question is empty."""

    def answer(self, questions: Sequence[PreparedQuestion], features, grid: TimeGrid, k: int, *,
               comparable: bool = False) -> list[ClipAnswer]:
        """Up to ``k`` windows per question over one clip's ``features`` [grid.num_bins, dim]."""


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class AnswererKind:
    name: str
    factory: Callable[[AnswerContext, str | None], Answerer]
    cache_key: Callable[[AnswerContext, str | None], tuple]
    takes_argument: bool = False


_KINDS: dict[str, AnswererKind] = {}


def register_answerer(name: str, *, takes_argument: bool = False,
                      cache_key: Callable[[AnswerContext, str | None], tuple] | None = None):
    def wrap(factory):
        _KINDS[name] = AnswererKind(name, factory, cache_key or (lambda ctx, arg: (name, arg, ctx.feature_key)),
                                    takes_argument)
        return factory
    return wrap


def answerer_kinds() -> list[str]:
    return sorted(_KINDS)


def parse_mode(mode: str) -> tuple[AnswererKind, str | None]:
    """``zeroshot`` -> that kind; ``checkpoint:NAME`` or any other string -> a checkpoint name or path."""
    mode = (mode or "").strip()
    if not mode:
        raise UnknownMode(f"no answering mode given; use {ZEROSHOT} or the name of a trained checkpoint")
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


def make_answerer(mode: str, context: AnswerContext) -> Answerer:
    kind, arg = parse_mode(mode)
    return kind.factory(context, arg)


def answerer_cache_key(mode: str, context: AnswerContext) -> tuple:
    """Identity of the answerer ``mode`` would build for these features (a changed checkpoint changes it)."""
    kind, arg = parse_mode(mode)
    return kind.cache_key(context, arg)


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


# ------------------------------------------------------------------------------------------ shared steps
def _rewrite_all(questions: Sequence[str]) -> list[Rewrite]:
    if isinstance(questions, str):
        raise TypeError("pass a list of questions, not a single string")
    return [rewrite_question(q) for q in questions]


class VectorCache:
    """Question vectors already made (LRU): CLIP's text tower costs ~0.5 s per prompt on a CPU
    (bench/README.md), and a user re-asks the same question with another scope, k or mode."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            vec = self._items.pop(key, None)
            if vec is not None:
                self._items[key] = vec
            return vec

    def put(self, key: tuple, vec: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vec
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))


def prompt_vectors(clip, rewrites: Sequence[Rewrite], batch: int = 256,
                   cache: VectorCache | None = None) -> list[np.ndarray]:
    """Every question's prompt-ensemble vector, encoding all new prompts of all questions in few batches."""
    keys = [tuple((p.text, p.weight) for p in r.prompts) for r in rewrites]
    found = [cache.get(k) if cache is not None else None for k in keys]
    todo = [r for r, v in zip(rewrites, found) if v is None]
    texts: dict[str, int] = {}
    for r in todo:
        for p in r.prompts:
            texts.setdefault(p.text, len(texts))
    order = list(texts)
    emb = np.concatenate([np.asarray(clip.encode_text(order[s:s + batch]), np.float32)
                          for s in range(0, len(order), batch)]) if order else np.zeros((0, clip.dim), np.float32)

    class _Lookup:  # embed_prompts' encoder interface over the rows just encoded
        dim = clip.dim

        @staticmethod
        def encode_text(ts):
            return emb[[texts[t] for t in ts]]

    out = []
    for r, key, vec in zip(rewrites, keys, found):
        if vec is None:
            vec = embed_prompts(_Lookup, r.prompts)
            if cache is not None:
                cache.put(key, vec)
        out.append(vec)
    return out


# ------------------------------------------------------------------------------------------ zero-shot
@register_answerer(ZEROSHOT)
class ZeroShotAnswerer:
    """CLIP prompt ensembles against frame features (see :mod:`models.zeroshot`)."""

    max_candidate_videos = 8

    def __init__(self, context: AnswerContext, _arg: str | None = None,
                 config: ZeroShotConfig = ZeroShotConfig()) -> None:
        self.clip = context.clip()
        if int(self.clip.dim) != int(context.feature_dim):
            raise FeatureMismatch(
                f"zero-shot answering compares questions embedded by CLIP {self.clip.key} ({self.clip.dim}-d) with "
                f"the frame features, but the features are {context.feature_dim}-d ({context.feature_key}); "
                f"zero-shot needs features made by that same CLIP (or choose a trained checkpoint)")
        if context.feature_key_known and context.feature_key != self.clip.key:
            raise FeatureMismatch(
                f"the features were made by {context.feature_key}, but the questions would be embedded by CLIP "
                f"{self.clip.key}; zero-shot needs both from the same CLIP (pass its --model/--pretrained)")
        self.mode = ZEROSHOT
        self.label = f"zero-shot ({self.clip.key})"
        self.config = config
        self._vectors = VectorCache()

    def prepare(self, questions: Sequence[str], *, search: bool = False) -> list[PreparedQuestion]:
        rewrites = _rewrite_all(questions)
        vectors = prompt_vectors(self.clip, rewrites, cache=self._vectors)
        return [PreparedQuestion(r.question, r, v) for r, v in zip(rewrites, vectors)]

    def answer(self, questions: Sequence[PreparedQuestion], features, grid: TimeGrid, k: int, *,
               comparable: bool = False) -> list[ClipAnswer]:
        if not questions:
            return []
        curves = similarity_curve(features, np.stack([q.vector for q in questions]))
        return [ClipAnswer(zero_shot_windows(c, grid, k, self.config), c) for c in curves]


# ------------------------------------------------------------------------------------------ trained
def _checkpoint_key(context: AnswerContext, arg: str | None) -> tuple:
    from checkpoints import resolve_checkpoint
    from checkpoints.store import META_FILE

    folder = resolve_checkpoint(arg, context.checkpoints_dir).resolve()
    try:
        stamp = (folder / META_FILE).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return CHECKPOINT, str(folder), stamp, context.feature_key, context.feature_dim


@register_answerer(CHECKPOINT, takes_argument=True, cache_key=_checkpoint_key)
class TrainedAnswerer:
    """A trained NLQ localizer from the checkpoint store."""

    max_candidate_videos = 4

    def __init__(self, context: AnswerContext, checkpoint: str | None, inference=None) -> None:
        from checkpoints import (IncompatibleCheckpoint, check_compatible, load_checkpoint, resolve_checkpoint,
                                 text_encoder_spec)
        from models.inference import InferenceConfig
        from models.text_tokens import load_text_encoder

        folder = resolve_checkpoint(checkpoint, context.checkpoints_dir)
        self.model, self.meta = load_checkpoint(folder, device=context.device)
        fe = self.meta.feature_encoder
        if context.feature_key_known:
            check_compatible(self.meta, context.feature_key, context.feature_dim,
                             context.rate_hz if context.rate_hz is not None else fe.rate_hz)
        elif fe.dim != context.feature_dim:
            raise IncompatibleCheckpoint(
                f"this {self.meta.model} checkpoint expects {fe.describe()}, but the features are "
                f"{context.feature_dim}-d")
        aux = self.meta.aux_feature_encoder
        self._aux = aux is not None
        if aux is not None and not (aux.key == context.feature_key and aux.dim == context.feature_dim):
            raise IncompatibleCheckpoint(
                f"this {self.meta.model} checkpoint also reads a second stream of {aux.describe()}, which these "
                f"features ({context.feature_dim}-d from '{context.feature_key}') cannot provide")
        spec = text_encoder_spec(self.meta.text_encoder)
        clip = None
        cs = context.clip_spec
        if spec.kind == "open_clip" and cs is not None and (cs.model, cs.pretrained) == (spec.model, spec.pretrained):
            clip = context.clip()
        self.tokens = load_text_encoder(spec, context.device, clip=clip)
        if int(self.tokens.dim) != int(self.meta.text_encoder.dim):
            raise IncompatibleCheckpoint(
                f"checkpoint {folder.name} expects {self.meta.text_encoder.dim}-d query tokens, but its text "
                f"encoder {self.tokens.key} makes {self.tokens.dim}-d ones")
        self._context = context
        self._inference = inference or InferenceConfig()
        self._vectors = VectorCache()
        self.mode = folder.name
        self.label = f"{self.meta.model} checkpoint {folder.name}"

    def prepare(self, questions: Sequence[str], *, search: bool = False) -> list[PreparedQuestion]:
        rewrites = _rewrite_all(questions)
        if not rewrites:
            return []
        feats, mask = self.tokens.encode([r.question for r in rewrites])
        feats, mask = np.asarray(feats, np.float32), np.asarray(mask, bool)
        for r, m in zip(rewrites, mask):
            if not m.any():
                raise EmptyQuestion(f"the question {r.question!r} gives no text tokens")
        vectors = (prompt_vectors(self._context.clip(), rewrites, cache=self._vectors) if search
                   else [None] * len(rewrites))
        return [PreparedQuestion(r.question, r, v, feats[i], mask[i]) for i, (r, v) in enumerate(zip(rewrites, vectors))]

    def answer(self, questions: Sequence[PreparedQuestion], features, grid: TimeGrid, k: int, *,
               comparable: bool = False) -> list[ClipAnswer]:
        from dataclasses import replace

        from models.inference import localize

        if not questions:
            return []
        t_max = max(len(q.tokens) for q in questions)
        dim = questions[0].tokens.shape[-1]
        tokens = np.zeros((len(questions), t_max, dim), np.float32)
        mask = np.zeros((len(questions), t_max), bool)
        for i, q in enumerate(questions):
            tokens[i, :len(q.tokens)] = q.tokens
            mask[i, :len(q.mask)] = q.mask
        features = np.array(features, dtype=np.float32)  # a writable copy: memory maps are read-only
        results = localize(self.model, features, grid, tokens, mask, video_aux=features if self._aux else None,
                           config=replace(self._inference, k=k))
        out = []
        for res in results:
            windows = res.windows
            if comparable:
                windows = sorted((Window(w.start, w.end, window_mean(res.curve, grid, w)) for w in windows),
                                 key=lambda w: w.score, reverse=True)
            out.append(ClipAnswer(windows, np.asarray(res.curve, np.float32)))
        return out


def window_mean(curve: np.ndarray, grid: TimeGrid, window: Window) -> float:
    """Mean of a per-bin curve over the bins a window covers."""
    s, e = grid.seconds_to_bins(window.start, window.end)
    return float(np.mean(curve[s:e + 1]))


__all__ = ["ZEROSHOT", "CHECKPOINT", "Answerer", "AnswerContext", "AnswererCache", "AnswererKind", "ClipAnswer",
           "EmptyQuestion", "FeatureMismatch", "PreparedQuestion", "TrainedAnswerer", "UnknownMode",
           "ZeroShotAnswerer", "answerer_cache_key", "answerer_kinds", "make_answerer", "parse_mode",
           "prompt_vectors", "register_answerer", "window_mean"]
