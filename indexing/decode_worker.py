"""Entry points of the decoder child processes (what they run, and how they talk to the parent).

A child sends tuples over a one-way pipe: ``("batch", first_bin, frames)``, ``("beat",)`` (a heartbeat while it
decodes frames it does not keep), then ``("done", stats)`` -- or ``("error", class_name, path, reason)`` for a
file that cannot be indexed, or ``("fail", summary)`` when the decoder itself broke. A child that dies
without saying anything (a signal, ``os._exit``) is noticed by the parent through the pipe's end-of-file.

The child's stderr goes to a log file the parent reads on failure: FFmpeg and decord print to the C-level
stderr, and the CLI promises exactly one line per bad file. Nothing here imports torch.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from indexing.backends import SegmentRequest, resolve_backend
from indexing.errors import VideoError


def _redirect_stderr(log_path: str | None) -> None:
    if not log_path:
        return
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)


def _report_failure(conn, exc: BaseException) -> None:
    try:
        if isinstance(exc, VideoError):
            conn.send(("error", type(exc).__name__, str(exc.path), exc.reason))
        else:
            traceback.print_exc()
            conn.send(("fail", f"{type(exc).__name__}: {exc}".strip()))
    except (BrokenPipeError, EOFError, OSError):
        pass


def segment_main(conn, request: SegmentRequest, backend: str, heartbeat_s: float, log_path: str | None) -> None:
    """Decode one segment and stream it to the parent; exits quietly if the parent has gone away."""
    _redirect_stderr(log_path)
    last = time.monotonic()

    def emit(first_bin, frames) -> None:
        nonlocal last
        conn.send(("batch", int(first_bin), frames))
        last = time.monotonic()

    def beat() -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= heartbeat_s:
            conn.send(("beat",))
            last = now

    try:
        stats = resolve_backend(backend).decode_segment(request, emit, beat)
        conn.send(("done", stats))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent stopped listening (cancelled, or killed): nothing to report to
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as a message
        _report_failure(conn, exc)
    finally:
        conn.close()


def probe_main(conn, path: str, rate_hz: float | None, log_path: str | None) -> None:
    """Probe a file and send back its VideoInfo."""
    _redirect_stderr(log_path)
    try:
        from indexing.probe import probe

        conn.send(("done", probe(path, rate_hz=rate_hz)))
    except (BrokenPipeError, ConnectionResetError):
        pass
    except BaseException as exc:  # noqa: BLE001
        _report_failure(conn, exc)
    finally:
        conn.close()
