"""Kill a running CLI command with SIGKILL once it has made real progress (crash-safety tests)."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path


def run_and_kill_midway(
    args: list[str], *, cwd: Path, env: dict[str, str], progress: str, timeout_s: float = 120.0
) -> tuple[int, int]:
    """Start ``args``, wait until a stderr line matches ``progress`` (groups: done, total) with 0 < done < total,
    then SIGKILL the process; returns (done, total) as last seen."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stderr], daemon=True).start()
    pattern = re.compile(progress)
    deadline = time.monotonic() + timeout_s
    seen = None
    try:
        while time.monotonic() < deadline:
            try:
                match = pattern.search(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, f"{args[3:5]} exited before making progress"
                continue
            if match and int(match[1]) > 0:
                seen = (int(match[1]), int(match[2]))
                break
        assert seen and seen[0] < seen[1], seen
    finally:
        proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    return seen
