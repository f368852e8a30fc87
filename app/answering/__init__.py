"""Answering: a question and a library (or one clip's features) -> ranked moments, one module per step.

* :mod:`~app.answering.base` -- the :class:`Answerer` interface every mode implements;
* :mod:`~app.answering.registry` -- modes by name (``zeroshot``, a checkpoint, ...) and a small LRU of built ones;
* :mod:`~app.answering.vectors` -- question -> CLIP prompt-ensemble vector (cached);
* :mod:`~app.answering.zeroshot`, :mod:`~app.answering.trained`, :mod:`~app.answering.fusion` -- the modes
  (``fusion`` mixes the other two at score level, with a weight chosen on validation data);
* :mod:`~app.answering.search` -- library-wide search: candidate videos, scoring, cross-video ranking;
* :mod:`~app.answering.results` -- what ``ask`` returns (:class:`Moment`, :class:`Answer`);
* :mod:`~app.answering.dataset` -- every query of an NLQ file answered (``predict``, benchmarks).

The short public entry points are :func:`make_answerer` (or ``EgoRecall.answerer``), ``Answerer.prepare`` /
``Answerer.answer`` for one clip, :func:`answer_question` for a library (:func:`find_moments` before moments
and clips), and :func:`answer_dataset` for a file.

An :class:`Answerer` turns questions into ranked windows over one clip's features. Everything above it --
library-wide search (:mod:`app.answering.search`), the ``ask`` and ``predict`` commands, the UI -- only talks to this
interface, so a new mode is one registered class.

Modes:

* ``auto`` (the default, :mod:`~app.answering.auto`): ``fused`` with the library's best compatible checkpoint
  when there is one, ``zeroshot`` otherwise; the answer names the mode that answered.
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
  independent of the rest of the video), capped by the window ranked above it, so the model's own span
  order within a video stands (:func:`app.answering.trained.comparable_windows`); without it (``predict``,
  evaluation) the model's span scores are kept.
"""

from __future__ import annotations

from app.answering.auto import AUTO, best_checkpoint, resolve_auto
from app.answering.base import (
    CHECKPOINT,
    ZEROSHOT,
    AnswerContext,
    Answerer,
    ClipAnswer,
    FeatureMismatch,
    PreparedQuestion,
    UnknownMode,
    window_mean,
)
from app.answering.dataset import answer_dataset
from app.answering.fusion import FUSED, FusedAnswerer, FusionChoice, choose_fusion_weight
from app.answering.registry import (
    AnswererCache,
    AnswererKind,
    answerer_cache_key,
    answerer_kinds,
    make_answerer,
    parse_mode,
    register_answerer,
)
from app.answering.results import Answer, Moment, ScoreSeries
from app.answering.search import (
    MAX_K,
    InvalidRequest,
    NothingToSearch,
    Ranking,
    ScoredVideo,
    SearchConfig,
    answer_question,
    check_k,
    find_moments,
    segment_grid,
)
from app.answering.trained import TrainedAnswerer
from app.answering.vectors import VectorCache, prompt_vectors
from app.answering.zeroshot import ZeroShotAnswerer
from models.questions import EmptyQuestion

__all__ = [
    "AUTO",
    "ZEROSHOT",
    "CHECKPOINT",
    "FUSED",
    "FusedAnswerer",
    "FusionChoice",
    "choose_fusion_weight",
    "Answer",
    "Answerer",
    "AnswerContext",
    "AnswererCache",
    "AnswererKind",
    "ClipAnswer",
    "EmptyQuestion",
    "FeatureMismatch",
    "InvalidRequest",
    "Moment",
    "NothingToSearch",
    "PreparedQuestion",
    "Ranking",
    "ScoreSeries",
    "ScoredVideo",
    "SearchConfig",
    "TrainedAnswerer",
    "UnknownMode",
    "VectorCache",
    "ZeroShotAnswerer",
    "MAX_K",
    "answer_question",
    "check_k",
    "answer_dataset",
    "best_checkpoint",
    "resolve_auto",
    "answerer_cache_key",
    "answerer_kinds",
    "find_moments",
    "make_answerer",
    "parse_mode",
    "prompt_vectors",
    "register_answerer",
    "segment_grid",
    "window_mean",
]
