"""Ctrl-C / SIGTERM for long-running commands (train, pretrain): the first asks the run to stop after its
current step (snapshot written), a second interrupts at once."""

from __future__ import annotations

import signal
import sys
import threading


def stop_on_signals(stop: threading.Event):
    """First Ctrl-C/SIGTERM: stop after the current step; a second Ctrl-C interrupts at once."""

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after the current step (Ctrl-C again to abort)...", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    return previous
