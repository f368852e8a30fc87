"""Trained modes: an NLQ localizer from the checkpoint store, answering with :func:`models.inference.localize`.

Its metadata must match the features (encoder key, dimension, grid rate -- :func:`checkpoints.check_compatible`);
its questions are encoded by the frozen token encoder its metadata names (:func:`checkpoints.text_encoder_spec`),
reusing the already loaded CLIP when the weights are the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from app.answering.base import (
    CHECKPOINT,
    AnswerContext,
    ClipAnswer,
    PreparedQuestion,
    rewrite_all,
    stored_calibration,
    window_mean,
)
from app.answering.registry import register_answerer
from app.answering.vectors import VectorCache, prompt_vectors
from app.answering.zeroshot import ZeroShotAnswerer
from models.errors import EgoRecallError
from models.grid import TimeGrid
from models.questions import EmptyQuestion
from models.text_readings import reading_key
from models.windows import Window
from training.checkpoint_info import inference_config_from_metadata

logger = logging.getLogger(__name__)


def _named(checkpoint: str | None) -> str:
    """The checkpoint a trained mode was asked for (the registry always hands one to a mode that takes it)."""
    if not checkpoint:
        raise ValueError("a trained mode needs a checkpoint name or folder")
    return checkpoint


def _checkpoint_key(context: AnswerContext, arg: str | None) -> tuple:
    from checkpoints import resolve_checkpoint
    from checkpoints.store import META_FILE

    folder = resolve_checkpoint(_named(arg), context.checkpoints_dir).resolve()
    try:
        stamp = (folder / META_FILE).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return CHECKPOINT, str(folder), stamp, context.feature_key, context.feature_dim


def comparable_windows(windows: Sequence[Window], curve: np.ndarray, grid: TimeGrid) -> list[Window]:
    """The model's windows in its own order, scored so that they rank against other videos' windows.

    Each window's score is its mean highlight probability, capped by the score of the window ranked above
    it (a running minimum): across videos the highlight compares, within a video the span order stands. The
    span order is the better judge inside a clip (bench/README.md: re-ordering by highlight cost VSLNet 7
    points of R@1@0.3)."""
    out: list[Window] = []
    cap = np.inf
    for w in windows:
        cap = min(cap, window_mean(curve, grid, w))
        out.append(Window(w.start, w.end, float(cap)))
    return out


def _library_text_tower(spec, key: str, context: AnswerContext) -> bool:
    """Whether a checkpoint's questions are encoded by the library's own CLIP: the same architecture and weights
    -- named alike, or a weights file with the same contents (keys hold its digest) at another path, as after
    the library, or a checkpoint trained elsewhere, moved."""
    library = context.encoder_spec
    if spec.kind != "open_clip" or library is None or library.model != spec.model:
        return False
    if library.pretrained == spec.pretrained:
        return True
    weights = context.feature_key.removesuffix(f"+{library.quantize}") if library.quantize else context.feature_key
    return key == reading_key(f"open_clip:{weights}", spec.reading)


@register_answerer(CHECKPOINT, takes_argument=True, cache_key=_checkpoint_key)
class TrainedAnswerer:
    """A trained NLQ localizer from the checkpoint store."""

    max_candidate_videos = 4

    def local_context_s(self, question: PreparedQuestion) -> float | None:
        return None  # the model reads the whole clip

    def __init__(self, context: AnswerContext, checkpoint: str | None, inference=None) -> None:
        from checkpoints import (
            IncompatibleCheckpoint,
            check_compatible,
            load_checkpoint,
            resolve_checkpoint,
            text_encoder_spec,
        )
        from models.text_tokens import load_text_encoder

        folder = resolve_checkpoint(_named(checkpoint), context.checkpoints_dir)
        self.model, self.meta = load_checkpoint(folder, device=context.device)
        self.calibration, self.warnings = stored_calibration(self.meta.calibration, CHECKPOINT, str(folder))
        fe = self.meta.feature_encoder
        if context.feature_key_known:
            check_compatible(
                self.meta,
                context.feature_key,
                context.feature_dim,
                context.rate_hz if context.rate_hz is not None else fe.rate_hz,
            )
        elif fe.dim != context.feature_dim:
            raise IncompatibleCheckpoint(
                f"this {self.meta.model} checkpoint expects {fe.describe()}, but the features are "
                f"{context.feature_dim}-d"
            )
        aux = self.meta.aux_feature_encoder
        self._aux = aux is not None
        if aux is not None and not (aux.key == context.feature_key and aux.dim == context.feature_dim):
            raise IncompatibleCheckpoint(
                f"this {self.meta.model} checkpoint also reads a second stream of {aux.describe()}, which these "
                f"features ({context.feature_dim}-d from '{context.feature_key}') cannot provide"
            )
        spec = text_encoder_spec(self.meta.text_encoder)
        shared = None
        if _library_text_tower(spec, self.meta.text_encoder.key, context):
            shared = context.encoder()
            spec = replace(spec, pretrained=shared.spec.pretrained)  # the same weights, wherever they now are
        self.tokens = load_text_encoder(spec, context.device, encoder=shared)
        if int(self.tokens.dim) != int(self.meta.text_encoder.dim):
            raise IncompatibleCheckpoint(
                f"checkpoint {folder.name} expects {self.meta.text_encoder.dim}-d query tokens, but its text "
                f"encoder {self.tokens.key} makes {self.tokens.dim}-d ones"
            )
        self._context = context
        self._inference = inference or inference_config_from_metadata(self.meta)
        self._vectors = VectorCache()
        self.mode = folder.name
        self.label = f"{self.meta.model} checkpoint {folder.name}"
        self._reader: ZeroShotAnswerer | None = None
        self._reader_tried = False
        self._reader_error = ""
        cal = self.calibration
        self.measure_presence = bool(cal and cal.presence_weight)
        self.measure_clip = bool(cal and cal.clip_weight)
        if (self.measure_presence or self.measure_clip) and self.clip_reader() is None:
            self.calibration, self.measure_presence, self.measure_clip = None, False, False
            self.warnings += (
                f"the confidence stored with checkpoint {folder.name} reads the clip with CLIP, which cannot read "
                f"these features ({self._reader_error}); answers carry no confidence",
            )

    def clip_reader(self) -> ZeroShotAnswerer | None:
        """Zero-shot CLIP over the same features, which reads a clip on one scale for every clip (its best window
        score, the presence of the question's object) -- evidence a calibration may weigh beside this model's
        own score, whose span probabilities are relative to the clip (asked about something the clip never
        shows, it still places an answer there). None when the library's CLIP did not make these features."""
        if not self._reader_tried:
            self._reader_tried = True
            try:
                self._reader = ZeroShotAnswerer(self._context)
            except EgoRecallError as exc:
                self._reader_error = str(exc)
                logger.info("checkpoint %s: no CLIP reading of the clip (%s)", self.mode, exc)
        return self._reader

    def _reading(self) -> ZeroShotAnswerer | None:
        """The CLIP reader when this answer measures something with it (see :meth:`clip_reader`)."""
        if not (self.measure_presence or self.measure_clip):
            return None
        reader = self.clip_reader()
        if reader is not None:
            reader.measure_presence = self.measure_presence
        return reader

    def prepare(self, questions: Sequence[str], *, search: bool = False) -> list[PreparedQuestion]:
        """The checkpoint's query tokens; with CLIP's reading measured, also everything zero-shot makes of the
        question (its CLIP vector, before/after anchor and presence column)."""
        reader = self._reading()
        tokens = self._tokens(questions, search=search and reader is None)
        if reader is None:
            return tokens
        return [replace(z, tokens=t.tokens, mask=t.mask) for t, z in zip(tokens, reader.prepare(questions))]

    def _tokens(self, questions: Sequence[str], *, search: bool) -> list[PreparedQuestion]:
        rewrites = rewrite_all(questions)
        if not rewrites:
            return []
        feats, mask = self.tokens.encode([r.question for r in rewrites])
        feats, mask = np.asarray(feats, np.float32), np.asarray(mask, bool)
        for r, m in zip(rewrites, mask):
            if not m.any():
                raise EmptyQuestion(f"the question {r.question!r} gives no text tokens")
        vectors = (
            prompt_vectors(self._context.encoder(), rewrites, cache=self._vectors) if search else [None] * len(rewrites)
        )
        return [
            PreparedQuestion(r.question, r, v, feats[i], mask[i]) for i, (r, v) in enumerate(zip(rewrites, vectors))
        ]

    def answer(
        self,
        questions: Sequence[PreparedQuestion],
        features,
        grid: TimeGrid,
        k: int,
        *,
        comparable: bool = False,
        region: bool = False,
    ) -> list[ClipAnswer]:
        from models.inference import localize

        if not questions:
            return []
        asked = [q.token_features for q in questions]
        t_max = max(len(t) for t, _ in asked)
        tokens = np.zeros((len(questions), t_max, asked[0][0].shape[-1]), np.float32)
        mask = np.zeros((len(questions), t_max), bool)
        for i, (t, m) in enumerate(asked):
            tokens[i, : len(t)] = t
            mask[i, : len(m)] = m
        floats = np.array(features, dtype=np.float32)  # a writable copy: memory maps are read-only
        results = localize(
            self.model,
            floats,
            grid,
            tokens,
            mask,
            video_aux=floats if self._aux else None,
            config=replace(self._inference, k=k),
        )
        reader = self._reading()  # CLIP reads the features as zero-shot does (its float16 rows as they are)
        if reader is not None and any(q.vector is None for q in questions):
            reader = None  # prepared before measuring was asked for: nothing for CLIP to read them with
        presence = reader.presence(questions, features) if reader else [None] * len(questions)
        clip = reader.clip_scores(questions, features, grid) if reader and self.measure_clip else [None] * len(results)
        out = []
        for res, p, c in zip(results, presence, clip):
            windows = res.windows
            if comparable:
                windows = comparable_windows(windows, res.curve, grid)
            out.append(ClipAnswer(windows, np.asarray(res.curve, np.float32), p, c))
        return out
