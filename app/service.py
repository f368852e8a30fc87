"""The one object the CLI and the UI both call: it owns the library and a lazily loaded, cached encoder.

Keep it thin: each method is a user-level action (index these files, list, remove, ask, later train) that
delegates to ``indexing``/``models``/``training`` and turns per-file failures into results, so a batch of
uploads where one file is bad still indexes the others.

State is per instance (the library handle, the encoder, an LRU of loaded checkpoints), never per module, so
two services (e.g. two libraries) in one process do not share answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.answering import (
    AUTO,
    ZEROSHOT,
    Answer,
    AnswerContext,
    Answerer,
    AnswererCache,
    Moment,
    answer_question,
)
from app.answering.fusion import FUSED
from app.answering.when import explicit_range
from app.settings import Settings
from indexing.errors import VideoError
from indexing.excerpts import ExcerptFiles, ExcerptMaker
from indexing.feedback import Correction
from indexing.library import Library, LibrarySettings, ReindexReport, VideoRecord
from indexing.outcome import IndexResult
from models.clip_encoder import ClipEncoder, EncoderSpec, quiet_random_init_warning
from models.errors import EgoRecallError

if TYPE_CHECKING:
    from app.adaptation import AdaptSettings
    from indexing.cluster import ClusterConfig, CorpusProgress
    from training.config import TrainConfig
    from training.feedback import FeedbackExport
    from training.run_result import TrainResult

logger = logging.getLogger(__name__)

IndexProgress = Callable[[Path, int, int], None]
"""``progress(path, frames_done, frames_total)`` while one file of a batch is being indexed."""


class EgoRecall:
    """EgoRecall's service facade.

    ``encoder_spec`` chooses the encoder for indexing (and later for questions); when None, a library that
    already holds videos uses the encoder it was built with, and a new library uses ``settings.encoder``.
    Both the library and the encoder are opened on first use; the encoder is loaded once and shared by
    threads. ``encoder`` hands in an already loaded encoder (its spec then wins), e.g. one shared by the app.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        encoder_spec: EncoderSpec | None = None,
        rate_hz: float | None = None,
        encoder: ClipEncoder | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._explicit_spec = encoder.spec if encoder is not None else encoder_spec
        self._rate_hz = rate_hz
        self._library: Library | None = None
        self._told_encoder = False
        self._encoder: ClipEncoder | None = encoder
        self._lock = threading.RLock()
        self._answerers = AnswererCache(size=3)
        self._default_checkpoint_tried = False
        self._default_checkpoint_problem: str | None = None

    # ------------------------------------------------------------------------------------------ resources
    @property
    def library(self) -> Library:
        with self._lock:
            if self._library is None:
                self._library = Library.open(
                    self.settings.library, rate_hz=self._rate_hz, config=self.settings.indexing
                )
            return self._library

    @property
    def encoder_spec(self) -> EncoderSpec:
        """Explicit choice, else the library's own encoder, else the settings' default. A library built with
        another encoder than the settings name keeps its own (features of two encoders cannot be compared);
        that is said once, in the log, rather than silently."""
        if self._explicit_spec is not None:
            return self._explicit_spec
        own = self.library.encoder_spec
        if own is None:
            return self.settings.encoder
        chosen = self.settings.encoder
        if own != chosen and chosen != EncoderSpec() and not self._told_encoder:
            self._told_encoder = True
            logger.warning(
                "the library at %s was built with encoder %s, not %s as the settings say; using the library's "
                "(switch it with `python -m app library reindex --model %s --pretrained %s`)",
                self.settings.library,
                own.key,
                chosen.key if not chosen.is_file else chosen.pretrained,
                chosen.model,
                chosen.pretrained,
            )
        return own

    def encoder(self) -> ClipEncoder:
        """The encoder, loaded on first call (EncoderUnavailable says what is missing) and then reused."""
        with self._lock:
            if self._encoder is not None:
                self.library.require_encoder(self._encoder.key)
            else:
                spec = self.encoder_spec
                # Refuse a mismatch before spending seconds loading weights.
                self.library.require_encoder(spec.key)
                with quiet_random_init_warning(spec):
                    self._encoder = ClipEncoder.load(spec, self.settings.device)
            return self._encoder

    def use_encoder(self, encoder: ClipEncoder) -> None:
        """Use an already loaded encoder from now on (indexing and questions). Raises ``EncoderMismatch``
        unless the library is empty or was built with the same weights."""
        with self._lock:
            self.library.require_encoder(encoder.key)
            if self._encoder is not encoder:
                self._explicit_spec, self._encoder = encoder.spec, encoder
                self._answerers.clear()

    # ------------------------------------------------------------------------------------------ actions
    def index(
        self, paths: Iterable[str | Path], progress: IndexProgress | None = None, *, copy_media: bool = True
    ) -> list[IndexResult]:
        """Index files one after another; a file that cannot be indexed gets an error result, the rest go on.

        Errors about the library or the encoder (busy, mismatch, weights missing) are raised: they would
        fail every file alike.
        """
        files = [Path(p) for p in paths]
        if not files:
            return []
        library, encoder = self.library, self.encoder()
        results = []
        for path in files:
            try:
                before = library.find_file(path) if path.is_file() else None
                if before is not None:
                    results.append(IndexResult(path, before, existed=True))
                    continue
                callback = (lambda done, total, _p=path: progress(_p, done, total)) if progress else None
                record = library.add(path, encoder, progress=callback, copy_media=copy_media)
                results.append(IndexResult(path, record))
            except VideoError as exc:
                logger.info("not indexed: %s", exc)
                results.append(IndexResult(path, error=exc))
        return results

    def index_on_cluster(
        self,
        paths: Iterable[str | Path],
        config: ClusterConfig | None = None,
        progress: CorpusProgress | None = None,
        *,
        copy_media: bool = True,
    ) -> list[IndexResult]:
        """Index files with Ray workers (:mod:`indexing.cluster`): the same results as :meth:`index`, with
        decoding and encoding spread over the cluster and the commits made here. Needs the ``ray`` extra."""
        from indexing.cluster import index_on_cluster

        outcomes = index_on_cluster(
            self.library, list(paths), self.encoder_spec, config=config, copy_media=copy_media, progress=progress
        )
        return outcomes

    def watch(
        self,
        folder: str | Path,
        stop: threading.Event,
        *,
        interval_s: float = 2.0,
        settle_s: float = 5.0,
        on_result: Callable[[IndexResult], None] | None = None,
        copy_media: bool = True,
    ) -> int:
        """Index the videos that arrive in ``folder`` until ``stop`` is set: each once it has finished copying,
        in recording-time order (:mod:`indexing.watch`); remembered in the library, so a restart indexes
        nothing twice. A file that cannot be indexed is reported and not retried until it changes; a folder that
        disappears is reported and waited for. Returns how many videos were added."""
        from indexing.watch import FolderWatch

        watcher = FolderWatch.for_library(self.library.root, Path(folder), settle_s)
        added = 0
        while not stop.is_set():
            for path in watcher.poll():
                if stop.is_set():
                    break
                (result,) = self.index([path], copy_media=copy_media)
                watcher.mark_done(path)
                added += result.ok and not result.existed
                if on_result is not None:
                    on_result(result)
            stop.wait(interval_s)
        return added

    def videos(self) -> list[VideoRecord]:
        """Ready videos, in the order they were added."""
        return self.library.videos()

    def remove(self, video_id: str) -> VideoRecord:
        """Remove one video and everything the library stored for it."""
        return self.library.remove(video_id)

    def set_recording_time(self, video_id: str, when: str) -> VideoRecord:
        """Date a video by hand (``2026-12-06T08:15``, local time, or with an offset); raises ``InvalidTime``
        with nothing changed when the time cannot be read."""
        from indexing.recording_time import parse_user_time

        return self.library.set_recording_time(video_id, parse_user_time(when))

    # ------------------------------------------------------------------------------------------ corrections
    def correct(
        self,
        video_id: str,
        question: str,
        start: float,
        end: float,
        verdict: str,
        *,
        mode: str = "",
        shown: tuple[float, float] | None = None,
    ) -> Correction:
        """Store a user's correction of one answer moment (``right``, ``wrong`` or ``adjusted`` to start-end);
        raises ``InvalidCorrection`` or ``UnknownVideo`` with nothing stored."""
        return self.library.feedback.add(video_id, question, start, end, verdict, mode=mode, shown=shown)

    def corrections(self, video_id: str | None = None) -> list[Correction]:
        return self.library.feedback.list(video_id)

    def export_feedback(self, path: str | Path) -> FeedbackExport:
        """The right and adjusted corrections as an Ego4D NLQ training file (see :mod:`training.feedback`)."""
        from training.feedback import export_feedback

        return export_feedback(self.library, path)

    # ------------------------------------------------------------------------------------------ answering
    def answer_context(self, settings: LibrarySettings | None = None) -> AnswerContext:
        """What answerers need to know about this library's features (``settings``: as the caller read them)."""
        library = self.library
        settings = library.settings if settings is None else settings
        if not settings.encoder_key or settings.dim is None:  # (claimed but empty: find_moments says so)
            from app.answering import NothingToSearch

            raise NothingToSearch(
                f"the library at {library.root} has no videos yet; add some with `python -m app index VIDEO...`"
            )
        return AnswerContext(
            feature_key=settings.encoder_key,
            feature_dim=int(settings.dim),
            rate_hz=float(settings.rate_hz),
            encoder=self.encoder,
            encoder_spec=self.encoder_spec,
            checkpoints_dir=self.settings.checkpoints_dir,
            device=self.settings.device,
        )

    def answerer(self, mode: str = AUTO, *, settings: LibrarySettings | None = None) -> Answerer:
        """The answerer for a mode (``auto``, ``zeroshot``, a checkpoint name/path or ``fused:CHECKPOINT``), built
        once and kept (LRU of 3); ``auto`` gives the answerer of the mode it stands for now. ``settings``: the
        library's, when the caller already read them.

        Raises ``UnknownMode``, a ``CheckpointError`` (missing, wrong kind, incompatible with the library's
        features) or ``EncoderUnavailable``.
        """
        context = self.answer_context(settings)
        if mode == AUTO:
            self._fetch_default_checkpoint(context)
        return self._answerers.get(mode, context)

    def _fetch_default_checkpoint(self, context: AnswerContext) -> None:
        """``auto``'s first use: install the configured published checkpoint (``Settings.default_checkpoint``)
        when the library has no compatible checkpoint of its own. Tried once per service; a failure (offline,
        a bad download, another encoder's checkpoint) is logged and said in every ``auto`` answer, which is
        then zero-shot's."""
        source = self.settings.default_checkpoint
        if not source or self._default_checkpoint_tried:
            return
        with self._lock:
            if self._default_checkpoint_tried:
                return
            self._default_checkpoint_tried = True
            from app.answering import best_checkpoint
            from checkpoints.release import install

            if best_checkpoint(context) is not None:
                return
            try:
                folder = install(
                    source,
                    self.settings.checkpoints_dir,
                    features=(context.feature_key, context.feature_dim, float(context.rate_hz or 0.0)),
                )
                logger.info("installed the default checkpoint %s from %s", folder.name, source)
            except EgoRecallError as exc:
                logger.warning("the default checkpoint %s was not installed: %s", source, exc)
                self._default_checkpoint_problem = (
                    f"the default checkpoint {source} could not be installed ({exc}); answering without it"
                )

    def modes(self, *, compatible_only: bool = True) -> list[str]:
        """What ``ask(mode=...)`` accepts here: ``auto``, ``zeroshot``, then the stored checkpoints (newest
        first) -- by default only those trained on this library's features (encoder, size, grid rate) -- then
        each checkpoint fused with zero-shot (``fused:NAME``)."""
        from checkpoints import compatible_checkpoints, list_checkpoints

        if compatible_only:
            s = self.library.settings
            infos = []  # an empty library reads no checkpoint yet
            if s.encoder_key is not None and s.dim is not None:
                infos = compatible_checkpoints(self.settings.checkpoints_dir, s.encoder_key, s.dim, s.rate_hz)
        else:
            infos = list_checkpoints(self.settings.checkpoints_dir)
        names = [c.name for c in infos]
        return [AUTO, ZEROSHOT] + names + [f"{FUSED}:{n}" for n in names]

    def clip_maker(self) -> ExcerptMaker:
        return ExcerptMaker(self.library, self.settings.excerpts_dir, self.settings.excerpts)

    def cut(self, video_id: str, start: float, end: float) -> ExcerptFiles:
        """The playable excerpt (MP4) and thumbnail of a time range of a video (cut once, then cached)."""
        return self.clip_maker().make(video_id, start, end)

    def ask(
        self,
        question: str,
        *,
        video_id: str | None = None,
        mode: str = AUTO,
        k: int = 5,
        clips: bool = True,
        since: str | float | None = None,
        until: str | float | None = None,
    ) -> Answer:
        """The ``k`` best moments for a question, in one video (``video_id``) or the whole library.

        ``mode`` is ``auto`` (the best this library has: see :mod:`app.answering.auto`), ``zeroshot``, a
        checkpoint (name in the checkpoints folder, or a path) or ``fused:CHECKPOINT``; the answer's ``mode``
        says which one answered. ``since``/``until`` (a time such as ``2026-12-06T08:15``, or unix seconds)
        limit the search to what was recorded then; without them, time words of the question do ("yesterday",
        "this morning"). Each moment carries its wall-clock time. With ``clips``, each moment gets a cached MP4
        clip and a JPEG thumbnail (a moment whose clip fails keeps ``clip=None`` and says why in
        ``clip_error``). Raises ``EmptyQuestion``, ``InvalidRequest`` (k outside 1-50), ``UnknownVideo``,
        ``NothingToSearch`` (empty library), ``InvalidTimeRange``, ``NothingAtThatTime`` and the checkpoint
        errors.
        """
        when = explicit_range(since, until)  # refused before loading anything
        maker = self.clip_maker() if clips else None
        view = self.library.view()  # the question's one read of the catalog
        answer = answer_question(
            self.library,
            self.answerer(mode, settings=view.settings),
            question,
            asked_mode=mode,
            video_id=video_id,
            k=k,
            config=self.settings.answers,
            cut=(lambda moment: self._with_clip(maker, moment)) if maker is not None else None,
            when=when,
            view=view,
        )
        if mode == AUTO and self._default_checkpoint_problem:
            answer = replace(answer, warnings=answer.warnings + (self._default_checkpoint_problem,))
        return answer

    @staticmethod
    def _with_clip(maker: ExcerptMaker, moment: Moment) -> Moment:
        try:
            files = maker.make(moment.video_id, moment.start, moment.end)
        except EgoRecallError as exc:
            logger.warning("no clip for %s %.1f-%.1f s: %s", moment.video_id, moment.start, moment.end, exc)
            return replace(moment, clip_error=str(exc))
        return replace(moment, clip=files.clip, thumbnail=files.thumbnail, clip_start=files.start)

    # ------------------------------------------------------------------------------------------ training
    def train(
        self,
        config: TrainConfig,
        progress: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None,
        *,
        resume: bool | None = None,
        show_progress: bool = False,
    ) -> TrainResult:
        """Train one stage of a localizer (see :func:`training.loop.run`).

        A config that names no feature source trains on this app's library, and one that names no checkpoints
        folder publishes to the app's (``settings.checkpoints_dir``), so the app lists and uses the result.
        ``progress`` receives every log record (``training.runlog``); ``stop.set()`` ends the run cleanly.
        """
        import copy

        from training.loop import run

        config = copy.deepcopy(config)
        if not config.data.library and not config.data.features_dir:
            config.data.library = str(self.settings.library)
        if not config.output.checkpoints_dir:
            library = config.data.library
            same_library = bool(library) and Path(library or "").resolve() == Path(self.settings.library).resolve()
            if same_library or not config.data.library:
                config.output.checkpoints_dir = str(self.settings.checkpoints_dir)
        # An encoder this app already loaded serves the text tokens too (used only if its weights match).
        result = run(
            config, progress=progress, stop=stop, encoder=self._encoder, resume=resume, show_progress=show_progress
        )
        if config.eval.fit_answering and not result.stopped:
            from app.answering.tuning import fit_for_answering

            result.answering = fit_for_answering(self, config, result)
        return result

    def adapt(
        self,
        checkpoint: str | None = None,
        settings: AdaptSettings | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None,
    ) -> TrainResult:
        """Fine-tune ``checkpoint`` (default: the one ``auto`` uses) on this library's own pseudo-narrations
        (:mod:`app.adaptation`); returns the run's result, with the new checkpoint published beside the base."""
        from app.adaptation import AdaptSettings, adaptation_config

        return self.train(adaptation_config(self, checkpoint, settings or AdaptSettings()), progress, stop)

    # ------------------------------------------------------------------------------------------ encoders
    def reindex(self, spec: EncoderSpec, progress: Callable[[int, int], None] | None = None) -> ReindexReport:
        """Switch the library to another encoder: re-encode every video with ``spec`` (see
        :meth:`Library.reindex`), then use that encoder for questions and new videos.

        ``progress(frames_done, frames_total)`` follows the re-encoding. The old encoder keeps answering
        questions until the switch.
        """
        library = self.library
        with quiet_random_init_warning(spec):
            encoder = ClipEncoder.load(spec, self.settings.device)
        report = library.reindex(encoder, progress=progress)
        with self._lock:
            self._explicit_spec, self._encoder = spec, encoder
        return report
