"""Background work of the app: the indexing queue, the demo-data job and the one training run.

Event handlers only enqueue and return, so a page never waits on a long job and questions are never held up
behind indexing or training. The state lives here, in one object owned by the app instance -- not in a page
and not in a module global -- so progress survives a page reload, and two apps in one process (tests) do not
share jobs.

* Encoder work (indexing uploads, making demo data) goes through ONE worker thread, in order: the encoder and
  the library's writer are used by one job at a time, and the GPU is never shared by two encoder jobs.
* Training runs in its own thread; only one run at a time (:class:`JobBusy` otherwise). ``stop`` sets the
  ``threading.Event`` the training loop watches, so it ends cleanly after the current step.

Every status is plain JSON-able data (``index_status()``, ``training_status()``, ``demo_status()``): the UI
renders it, and the HTTP API returns it as is.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.job_records import DemoJob, IndexFile, IndexJob, TrainJob, describe_report
from models.download import current_download
from models.errors import EgoRecallError

logger = logging.getLogger(__name__)

UNEXPECTED = "an unexpected error stopped {what} (the server log has the details)"
"""What a user sees for a bug: one line, never a traceback (the traceback goes to the log)."""

MAX_RECORDS = 20_000
"""Training log records kept in memory for the curves (a long run logs every ``log_every`` steps)."""


class JobBusy(EgoRecallError):
    """A job of this kind is already running (one training run, one demo at a time)."""


class UnknownJob(EgoRecallError):
    """No job with this id."""


def error_message(exc: BaseException, what: str) -> str:
    """One line for the user: our own errors say what to do; anything else is logged with its traceback."""
    if isinstance(exc, EgoRecallError):
        return str(exc)
    logger.error("%s failed", what, exc_info=exc)
    return UNEXPECTED.format(what=what)


# ---------------------------------------------------------------------------------------------- the manager
class JobManager:
    """Owns the app's background jobs. ``service`` is the :class:`~app.service.EgoRecall` they act on.

    ``keep`` finished index jobs are remembered for the status display. ``demo_runner`` (tests) replaces
    the lazily imported ``app.demo.run_demo``.
    """

    def __init__(
        self,
        service,
        *,
        keep: int = 20,
        demo_runner: Callable[..., Any] | None = None,
        watch_folder: str | Path | None = None,
    ) -> None:
        self.service = service
        self.watch_folder = Path(watch_folder).expanduser().absolute() if watch_folder else None
        """The one folder the app may watch (set where the app is started, never from the page: a page must
        not make the server index any folder it names)."""
        self._watch_stop: threading.Event | None = None
        self._watch_thread: threading.Thread | None = None
        self._watch_added = 0
        self._keep = keep
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: queue.Queue[IndexJob | DemoJob] = queue.Queue()
        self._index_jobs: list[IndexJob] = []
        self._train: TrainJob | None = None
        self._train_thread: threading.Thread | None = None
        self._demo: DemoJob | None = None
        self._demo_runner: Callable[..., Any] = demo_runner or _run_demo
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None
        self._closed = False
        self.library_version = 0
        """Bumped whenever the set of library videos may have changed (pages re-read the list then)."""

    # ------------------------------------------------------------------ the encoder queue
    def _next_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="egorecall-encoder-jobs", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._closed:
                return
            try:
                if isinstance(job, IndexJob):
                    self._run_index(job)
                else:
                    self._run_demo(job)
            except Exception:  # noqa: BLE001 - the worker must survive any job
                logger.exception("background job %s failed", job.id)
            finally:
                self._bump()

    def _bump(self) -> None:
        with self._changed:
            self.library_version += 1
            self._changed.notify_all()

    def library_changed(self) -> None:
        """Tell pages to re-read the video list (after a removal made outside the queue)."""
        self._bump()

    def close(self) -> None:
        """Stop taking jobs; a running training run is asked to stop, a folder watch stops."""
        self.stop_watch()
        self._closed = True
        self._queue.put(None)  # type: ignore[arg-type]
        with self._lock:
            if self._train is not None and self._train.active:
                self._train.stop.set()
            if self._demo is not None:
                self._demo.stop.set()

    # ------------------------------------------------------------------ watching a folder
    def start_watch(self, interval_s: float = 2.0, settle_s: float = 5.0) -> dict[str, Any]:
        """Index what arrives in :attr:`watch_folder`, through the encoder queue in recording-time order, until
        :meth:`stop_watch` (see :mod:`indexing.watch`). Raises when the app was started without one."""
        if self.watch_folder is None:
            raise EgoRecallError("this app watches no folder; start it with --watch FOLDER")
        with self._lock:
            if self._watch_thread is not None and self._watch_thread.is_alive():
                return self.watch_status()
            stop = self._watch_stop = threading.Event()
            self._watch_thread = threading.Thread(
                target=self._watch, args=(stop, interval_s, settle_s), name="egorecall-watch", daemon=True
            )
            self._watch_thread.start()
        return self.watch_status()

    def _watch(self, stop: threading.Event, interval_s: float, settle_s: float) -> None:
        from indexing.watch import FolderWatch

        if self.watch_folder is None:  # start_watch refuses to start without one
            return
        watcher = FolderWatch.for_library(self.service.library.root, self.watch_folder, settle_s)
        while not stop.is_set():
            for path in watcher.poll():
                job = self.submit_index([(path, path.name)])
                self.wait_index(job.id)
                watcher.mark_done(path)  # only once indexed: a restart in between indexes it then
                self._watch_added += sum(f.state == "indexed" for f in job.files)
                if stop.is_set():
                    break
            stop.wait(interval_s)

    def stop_watch(self) -> dict[str, Any]:
        if self._watch_stop is not None:
            self._watch_stop.set()
        return self.watch_status()

    def watch_status(self) -> dict[str, Any]:
        thread, stop = self._watch_thread, self._watch_stop
        on = thread is not None and thread.is_alive() and stop is not None and not stop.is_set()
        return {"folder": str(self.watch_folder) if self.watch_folder else None, "on": on, "added": self._watch_added}

    # ------------------------------------------------------------------ indexing
    def submit_index(self, files: list[tuple[str | Path, str]]) -> IndexJob:
        """Queue files for indexing: ``(path, display name)`` pairs. Returns at once."""
        if not files:
            raise EgoRecallError("choose at least one video file to add")
        job = IndexJob(self._next_id("index"), [IndexFile(Path(p), name or Path(p).name) for p, name in files])
        with self._lock:
            self._index_jobs.append(job)
            done = [j for j in self._index_jobs if j.finished]
            for old in done[: max(0, len(done) - self._keep)]:
                self._index_jobs.remove(old)
        self._queue.put(job)
        self._ensure_worker()
        self._bump()
        return job

    def _run_index(self, job: IndexJob) -> None:
        job.state = "running"
        for i, f in enumerate(job.files):
            if f.state != "queued":
                continue
            f.state, f.started = "indexing", time.monotonic()

            def progress(_path, done, total, _f=f):
                _f.frames_done, _f.frames_total = int(done), int(total)

            try:
                (result,) = self.service.index([f.path], progress=progress, copy_media=True)
            except Exception as exc:  # noqa: BLE001 - the library/encoder failed for every file alike
                message = error_message(exc, f"indexing {f.name}")
                for rest in job.files[i:]:
                    rest.state, rest.message = "failed", message
                break
            if result.ok:
                f.video_id = result.record.id
                f.state = "existed" if result.existed else "indexed"
                f.message = "already in the library" if result.existed else "indexed"
                f.frames_done = f.frames_total = max(f.frames_total, f.frames_done)
            else:
                f.state = "failed"
                # The library names the file by its temporary upload name; say the user's name instead.
                f.message = f"{f.name}: {result.error.reason}" if hasattr(result.error, "reason") else str(result.error)
            self._bump()
        job.state = "done"

    def index_job(self, job_id: str) -> IndexJob:
        with self._lock:
            for job in self._index_jobs:
                if job.id == job_id:
                    return job
        raise UnknownJob(f"there is no indexing job {job_id!r}")

    def index_status(self) -> dict[str, Any]:
        """The current file (with ETA), the queue length and the recent jobs, newest first."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self._index_jobs)
        current = None
        queued = 0
        for job in jobs:
            for n, f in enumerate(job.files, start=1):
                if f.state == "indexing":
                    current = {
                        "job": job.id,
                        "name": f.name,
                        "file": n,
                        "files": len(job.files),
                        "frames_done": f.frames_done,
                        "frames_total": f.frames_total,
                        "fraction": f.frames_done / f.frames_total if f.frames_total else 0.0,
                        "eta_s": f.eta_s(now),
                    }
                elif f.state == "queued":
                    queued += 1
        return {
            "busy": current is not None or queued > 0,
            "current": current,
            "queued_files": queued,
            "download": current_download(),
            "version": self.library_version,
            "jobs": [j.to_dict(now) for j in reversed(jobs)],
        }

    def wait_index(self, job_id: str, timeout: float | None = None) -> IndexJob:
        """Block until a job has finished (tests, scripts); returns it (finished or not at the timeout)."""
        job = self.index_job(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not job.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._changed.wait(0.5 if left is None else min(left, 0.5))
        return job

    def pending_files(self) -> list[IndexFile]:
        """Files queued or being indexed (shown in the video list next to the ready videos)."""
        with self._lock:
            return [f for j in self._index_jobs for f in j.files if f.state in ("queued", "indexing")]

    # ------------------------------------------------------------------ training
    def start_training(self, config, name: str | None = None) -> TrainJob:
        """Start one training run in the background: a :class:`training.config.TrainConfig`, or a function that
        makes one in the run's thread (slow preparation, e.g. adaptation's narrations) with the run's ``name``."""
        with self._lock:
            if self._train is not None and self._train.active:
                raise JobBusy(
                    f"the training run '{self._train.name}' is still running; stop it or wait for it "
                    f"to finish before starting another"
                )
            name = name or config.name
            job = TrainJob(self._next_id("train"), name)
            self._train = job
            self._train_thread = threading.Thread(
                target=self._run_training, args=(job, config), name=f"egorecall-train-{name}", daemon=True
            )
            self._train_thread.start()
        return job

    def _run_training(self, job: TrainJob, config) -> None:
        def progress(record: dict[str, Any]) -> None:
            record = {k: v for k, v in record.items() if k != "config"}  # (large, and not plotted)
            if "path" in record:  # HTTP clients take a {"path": ...} object for a file to download
                record["file"] = record.pop("path")
            with self._lock:
                job.records.append(record)
                if len(job.records) > MAX_RECORDS:  # keep the first, thin the rest
                    del job.records[1 : len(job.records) // 2 : 2]

        try:
            if callable(config):
                config = config()
            result = self.service.train(config, progress=progress, stop=job.stop)
        except Exception as exc:  # noqa: BLE001
            job.state, job.message = "failed", error_message(exc, f"the training run '{job.name}'")
        else:
            job.result = _train_result(result)
            job.state = "stopped" if result.stopped else "finished"
            job.message = _train_message(job.result)
        finally:
            job.ended = time.time()
            self._bump()

    def stop_training(self) -> TrainJob | None:
        """Ask the running training run to stop after its current step (None when none is running)."""
        with self._lock:
            job = self._train
            if job is None or not job.active:
                return None
            job.stop.set()
            job.state = "stopping"
            return job

    def training_status(self, since: int = 0) -> dict[str, Any]:
        with self._lock:
            job = self._train
            if job is None:
                return {"kind": "train", "state": "idle", "message": "", "records": [], "num_records": 0}
            return job.to_dict(since)

    def wait_training(self, timeout: float | None = None) -> dict[str, Any]:
        thread = self._train_thread
        if thread is not None:
            thread.join(timeout)
        return self.training_status()

    # ------------------------------------------------------------------ demo data
    def start_demo(self) -> DemoJob:
        """Queue "make demo data" (``app.demo.run_demo``) on the encoder queue. Raises :class:`JobBusy` while
        one is queued or running, and an :class:`EgoRecallError` when this build has no demo module."""
        with self._lock:
            if self._demo is not None and self._demo.active:
                raise JobBusy("demo data is already being made")
            job = DemoJob(self._next_id("demo"))
            self._demo = job
        self._queue.put(job)
        self._ensure_worker()
        return job

    def _run_demo(self, job: DemoJob) -> None:
        if job.stop.is_set():
            job.state, job.message = "stopped", "stopped before it began"
            return
        job.state = "running"

        def progress(stage: str, fraction: float) -> None:
            job.stage, job.fraction = str(stage), float(min(max(fraction, 0.0), 1.0))
            self._bump()

        try:
            report = self._demo_runner(self.service, progress=progress, stop=job.stop)
        except Exception as exc:  # noqa: BLE001
            job.state, job.message = "failed", error_message(exc, "making demo data")
            return
        job.report = report
        job.state = "stopped" if job.stop.is_set() else "finished"
        job.fraction = 1.0 if job.state == "finished" else job.fraction
        job.message = describe_report(report) or ("demo data is ready" if job.state == "finished" else "stopped")

    def stop_demo(self) -> DemoJob | None:
        with self._lock:
            job = self._demo
            if job is None or not job.active:
                return None
            job.stop.set()
            return job

    def demo_status(self) -> dict[str, Any]:
        with self._lock:
            return (
                self._demo.to_dict()
                if self._demo is not None
                else {"kind": "demo", "state": "idle", "stage": "", "fraction": 0.0, "message": ""}
            )


def _run_demo(*args: Any, **kwargs: Any) -> Any:
    from app.demo import run_demo

    return run_demo(*args, **kwargs)


def _train_result(result) -> dict[str, Any]:
    d = result.to_dict()
    d.pop("history", None)
    d.pop("replica_digests", None)
    return d


def _train_message(result: dict[str, Any]) -> str:
    state = "stopped early at" if result.get("stopped") else "finished after"
    text = f"{state} step {result.get('steps')} of {result.get('total_steps')}"
    best = result.get("best")
    if best and best.get("metrics"):
        m = best["metrics"]
        text += "; best " + ", ".join(f"{k} {m[k]:.1f}" for k in ("R@1@0.3", "R@5@0.3") if k in m)
    names = [Path(p).name for p in result.get("checkpoints", {}).values()]
    if names:
        text += "; new checkpoints: " + ", ".join(names)
    return text
