"""Indexing a corpus over a Ray cluster: workers stage videos anywhere, the one writer commits them here.

Ray (an optional extra, ``pip install -e ".[ray]"``) runs the work; this module only says what runs where:

* **Workers** are Ray actors, one per GPU when the cluster has GPUs (else ``workers`` actors of
  ``cpus_per_worker`` CPUs). Each loads the encoder once and stages one video at a time
  (:func:`indexing.staging.stage_video`): hashing, probing, decoding in watched child processes on its
  node's CPUs while it encodes, and writing the features into the library's ``staging/`` folder. The library
  must therefore live on a file system every node sees.
* **The driver** (this process) keeps at most ``in_flight_per_worker`` videos outstanding per worker -- the
  back-pressure that bounds the staging area and Ray's object store -- and commits every finished video at
  once through :meth:`~indexing.library.Library.commit_staged`, the library's single writer, so a catalog
  row becomes ready only after its features and index entries are in place.

Faults: a worker process that dies mid-video is restarted by Ray and the video retried (``retries`` more
times); a file that fails on every try, or that is not a video, gets an error result and the run goes on.
A driver killed at any instant leaves the library consistent: what was committed stays, staged folders are
deleted by the next repair (the driver holds ``staging/lock`` while it may commit), and a rerun skips every
file whose bytes are already in the library without decoding it.
"""

from __future__ import annotations

import logging
import shutil
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexing.catalog import STATUS_READY
from indexing.config import DecodeConfig
from indexing.errors import DecoderFailed, FeatureMismatch, LibraryBusy, LibraryError, VideoError
from indexing.fsutil import FileLock
from indexing.layout import STAGING_LOCK
from indexing.library import Library
from indexing.outcome import IndexResult
from indexing.staging import StagedVideo, stage_video, staging_root
from models.errors import EgoRecallError

logger = logging.getLogger(__name__)


class ClusterUnavailable(LibraryError):
    """Ray is not installed, or the cluster cannot be reached or has no room for a worker."""


@dataclass(frozen=True)
class ClusterConfig:
    """How a corpus is spread over a Ray cluster; the defaults suit one GPU per worker, or all CPUs."""

    address: str | None = None
    """``None`` starts a Ray instance on this machine for the run; ``auto`` joins the cluster that ``ray start``
    made here; ``HOST:PORT`` joins that cluster's head."""
    workers: int | None = None
    """Worker actors (None: one per GPU of the cluster, else one per ``cpus_per_worker`` of its CPUs)."""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each worker: its encoder threads and its decoder children share them."""
    in_flight_per_worker: int = 2
    """Videos given to a worker ahead of time: one being indexed, the next waiting, no more."""
    retries: int = 2
    """Tries after the first for a video whose worker process died (a crash, a kill, a lost node)."""


CorpusProgress = Callable[[IndexResult, int, int], None]
"""``progress(result, files_done, files_total)``, called on the driver after each file is settled."""


class _Worker:
    """The body of a worker actor (wrapped by ``ray.remote`` at run time, so Ray stays optional)."""

    def __init__(self, library_root: str, spec: dict, rate_hz: float, decode: DecodeConfig, skip: frozenset[str]):
        import torch

        from models.clip_encoder import ClipEncoder, EncoderSpec, quiet_random_init_warning

        self.root, self.rate_hz, self.decode, self.skip = Path(library_root), rate_hz, decode, skip
        self.encoder, self.failure = None, None
        encoder_spec = EncoderSpec(**spec)
        device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray shows a worker only the GPU it reserved
        try:
            with quiet_random_init_warning(encoder_spec):
                self.encoder = ClipEncoder.load(encoder_spec, device)
        except EgoRecallError as exc:  # weights missing on this node, say: one clear line, not a traceback
            self.failure = str(exc)

    def ready(self) -> str | None:
        """Why the encoder could not be loaded, or None."""
        return self.failure

    def stage(self, path: str, copy_media: bool) -> tuple[str, object]:
        if self.encoder is None:  # the driver stops at ready()'s failure before giving any work
            return "error", DecoderFailed(Path(path), f"its worker has no encoder ({self.failure})")
        try:
            out = stage_video(
                path,
                self.root,
                self.encoder,
                rate_hz=self.rate_hz,
                config=self.decode,
                copy_media=copy_media,
                skip=self.skip,
            )
        except VideoError as exc:
            return "error", exc
        return ("exists", out) if isinstance(out, str) else ("staged", out)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable(
            'indexing on a cluster needs Ray, an optional extra: pip install -e ".[ray]" (or pip install ray)'
        ) from None
    return ray


def _worker_layout(ray, config: ClusterConfig) -> tuple[int, float, float]:
    """(workers, CPUs each, GPUs each) for the cluster as it is now."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 0))
    if config.workers is not None:
        n = config.workers
    elif gpus:
        n = gpus
    else:
        n = max(1, int(cpus // config.cpus_per_worker))
    if n < 1:
        raise ClusterUnavailable(f"a run needs at least one worker, not {n}")
    if cpus < config.cpus_per_worker:
        raise ClusterUnavailable(
            f"the Ray cluster has {cpus:g} CPUs, fewer than one worker's {config.cpus_per_worker:g}"
        )
    return n, config.cpus_per_worker, (1.0 if gpus else 0.0)


def index_on_cluster(
    library: Library,
    paths: Sequence[str | Path],
    spec,
    *,
    config: ClusterConfig | None = None,
    copy_media: bool = True,
    progress: CorpusProgress | None = None,
) -> list[IndexResult]:
    """Index ``paths`` into ``library`` with Ray workers using the encoder ``spec`` (an ``EncoderSpec``).

    Returns one result per path, in order. Raises :class:`ClusterUnavailable` (no Ray, no cluster, workers
    that cannot load the encoder), :class:`EncoderMismatch` and :class:`LibraryBusy` (another distributed run
    commits into this library) -- errors that would fail every file alike.
    """
    config = config or ClusterConfig()
    paths = [Path(p) for p in paths]
    if not paths:
        return []
    library.require_encoder(spec.key)
    ray = _import_ray()
    staging = staging_root(library.root)
    staging.mkdir(parents=True, exist_ok=True)
    lock = FileLock(staging / STAGING_LOCK)
    if not lock.try_acquire():
        raise LibraryBusy(f"another distributed run is indexing into the library at {library.root}")
    started_here = not ray.is_initialized()
    try:
        _clear_staging(staging)  # a dead run's leftovers: nobody else may commit from here now
        if started_here:
            try:
                ray.init(address=config.address, include_dashboard=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = config.address or "this machine"
                raise ClusterUnavailable(f"cannot reach the Ray cluster at {where}: {exc}") from None
        return _run(ray, library, paths, spec, config, copy_media, progress)
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()
        _clear_staging(staging)  # folders of killed attempts; every finished one was committed
        lock.release()


def _clear_staging(staging: Path) -> None:
    for p in staging.iterdir():
        if p.name == STAGING_LOCK:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _run(ray, library, paths, spec, config, copy_media, progress) -> list[IndexResult]:
    n, cpus, gpus = _worker_layout(ray, config)
    with library.catalog.connect() as con:
        skip = frozenset(r.sha256 for r in library.catalog.videos(con, (STATUS_READY,)))
    actor_class = ray.remote(_Worker).options(
        num_cpus=cpus, num_gpus=gpus, max_restarts=-1, max_task_retries=config.retries
    )
    spec_fields = dict(model=spec.model, pretrained=spec.pretrained, quantize=getattr(spec, "quantize", ""))
    args = (str(library.root), spec_fields, library.settings.rate_hz, library.config.decode, skip)
    workers = [actor_class.remote(*args) for _ in range(min(n, len(paths)))]
    try:
        failures = [why for why in ray.get([w.ready.remote() for w in workers]) if why]
    except ray.exceptions.RayError as exc:
        failures = [_cause(exc)]
    if failures:
        for w in workers:
            ray.kill(w)
        raise ClusterUnavailable(f"the Ray workers could not start: {failures[0]}")
    logger.info("indexing %d files with %d Ray workers (%g CPUs, %g GPUs each)", len(paths), len(workers), cpus, gpus)
    todo = deque(range(len(paths)))
    pending: dict = {}
    results: list[IndexResult | None] = [None] * len(paths)

    def give(worker) -> None:
        if todo:
            i = todo.popleft()
            pending[worker.stage.remote(str(paths[i]), copy_media)] = (i, worker)

    try:
        for _ in range(max(1, config.in_flight_per_worker)):
            for w in workers:
                give(w)
        done = 0
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, worker = pending.pop(ref)
            results[i] = _settle(ray, library, paths[i], ref, config)
            done += 1
            if progress:
                progress(results[i], done, len(paths))
            give(worker)
    finally:
        for w in workers:
            ray.kill(w)
    return [r for r in results if r is not None]  # every file settled: the loop ends when none is pending


def _settle(ray, library: Library, path: Path, ref, config: ClusterConfig) -> IndexResult:
    """Turn one worker's answer into a result, committing a staged video."""
    try:
        kind, value = ray.get(ref)
    except ray.exceptions.RayError as exc:
        error = DecoderFailed(path, f"its worker died on every one of {config.retries + 1} tries ({_cause(exc)})")
        logger.warning("not indexed: %s", error)
        return IndexResult(path, error=error)
    if kind == "error":
        logger.info("not indexed: %s", value)
        return IndexResult(path, error=value)
    if kind == "exists":
        with library.catalog.connect() as con:
            return IndexResult(path, library.catalog.by_sha(con, value), existed=True)
    staged: StagedVideo = value
    try:
        return IndexResult(path, library.commit_staged(staged))
    except (FeatureMismatch, LibraryBusy):
        raise
    except LibraryError as exc:
        return IndexResult(path, error=DecoderFailed(path, f"its staged features could not be committed ({exc})"))


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_list(list_file: str | Path) -> list[Path]:
    """Paths from a list file, one per line (``#`` comments and blank lines skipped); relative paths are
    taken from the list file's folder, so a list travels with its corpus."""
    list_file = Path(list_file)
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LibraryError(f"cannot read the list of videos {list_file}: {exc}") from None
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            out.append(p if p.is_absolute() else list_file.parent / p)
    return out


__all__ = ["ClusterConfig", "IndexResult", "ClusterUnavailable", "index_on_cluster", "read_list"]
