"""New recordings arrive every day: a watched folder's videos are indexed once they have finished copying, in
recording-time order, never twice (across restarts), and a folder that disappears leaves the library as it is."""

from __future__ import annotations

import logging
import shutil
import threading
import time

from media import write_video

from app.service import EgoRecall
from app.settings import Settings
from indexing.watch import FolderWatch


def small(path, when: str, seed: int = 0):
    return write_video(path, seconds=1.2, fps=10, width=64, height=48, seed=seed, metadata={"creation_time": when})


def test_only_finished_files_in_recording_order_and_once(tmp_path, caplog):
    folder = tmp_path / "inbox"
    folder.mkdir()
    late = small(tmp_path / "b.mp4", "2026-12-03T18:00:00Z")
    early = small(tmp_path / "a-later-name.mp4", "2026-12-03T07:00:00Z", seed=1)
    watch = FolderWatch(folder, tmp_path / "state.json", settle_s=5.0)
    # a copy in progress: the file grows between looks
    data = late.read_bytes()
    (folder / "b.mp4").write_bytes(data[: len(data) // 2])
    (folder / "x.mp4.part").write_bytes(data)  # a browser's partial download
    (folder / "notes.txt").write_text("not a video")
    assert watch.poll(now=0.0) == []
    (folder / "b.mp4").write_bytes(data)
    shutil.copy(early, folder / "a-later-name.mp4")
    assert watch.poll(now=1.0) == []  # changed since the last look
    assert watch.poll(now=3.0) == []  # unchanged, but not for long enough
    ready = watch.poll(now=7.0)
    assert [p.name for p in ready] == ["a-later-name.mp4", "b.mp4"]  # the morning first
    watch.mark_done(ready[0])
    assert [p.name for p in watch.poll(now=8.0)] == ["b.mp4"]
    # a restarted watcher remembers what it handed over
    again = FolderWatch(folder, tmp_path / "state.json", settle_s=5.0)
    again.poll(now=0.0)
    assert [p.name for p in again.poll(now=10.0)] == ["b.mp4"]
    # the folder goes away: said once, nothing handed over, no error
    shutil.rmtree(folder)
    with caplog.at_level(logging.WARNING):
        assert again.poll(now=11.0) == [] and again.poll(now=12.0) == []
    assert sum("not there" in r.getMessage() for r in caplog.records) == 1


def test_the_service_indexes_what_arrives_and_a_restart_adds_nothing(tmp_path, tiny_spec):
    folder = tmp_path / "inbox"
    folder.mkdir()
    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"), encoder_spec=tiny_spec)
    results = []

    def run_until(n: int, timeout_s: float = 60.0) -> int:
        stop = threading.Event()
        added = []
        thread = threading.Thread(
            target=lambda: added.append(
                service.watch(folder, stop, interval_s=0.05, settle_s=0.2, on_result=results.append)
            )
        )
        thread.start()
        deadline = time.monotonic() + timeout_s
        while len(results) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(30)
        return added[0]

    small(folder / "VID_1.mp4", "2026-12-03T09:00:00Z")
    small(folder / "VID_2.mp4", "2026-12-03T08:00:00Z", seed=1)
    (folder / "broken.mp4").write_bytes(b"\x00" * 4096)
    assert run_until(3) == 2
    assert [r.path.name for r in results if r.ok] == ["VID_2.mp4", "VID_1.mp4"]
    assert [r.path.name for r in results if not r.ok] == ["broken.mp4"]
    assert sorted(v.name for v in service.videos()) == ["VID_1.mp4", "VID_2.mp4"]
    before = len(results)
    # restarted, given many looks (settle 0.2 s, a look every 0.05 s): nothing twice, the bad file left alone
    assert run_until(before + 1, timeout_s=2.0) == 0 and len(results) == before


def test_the_apps_switch_watches_only_the_folder_it_was_started_with(tmp_path, tiny_spec):
    import pytest

    from app.jobs import JobManager
    from models.errors import EgoRecallError

    service = EgoRecall(Settings(library=tmp_path / "lib", device="cpu"), encoder_spec=tiny_spec)
    unwatched = JobManager(service)
    with pytest.raises(EgoRecallError, match="--watch"):
        unwatched.start_watch()
    unwatched.close()
    folder = tmp_path / "inbox"
    folder.mkdir()
    jobs = JobManager(service, watch_folder=folder)
    try:
        assert jobs.watch_status() == {"folder": str(folder.absolute()), "on": False, "added": 0}
        assert jobs.start_watch(interval_s=0.05, settle_s=0.2)["on"]
        small(folder / "VID_1.mp4", "2026-12-03T09:00:00Z")
        deadline = time.monotonic() + 60
        while jobs.watch_status()["added"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jobs.watch_status()["added"] == 1 and [v.name for v in service.videos()] == ["VID_1.mp4"]
        assert not jobs.stop_watch()["on"]
    finally:
        jobs.close()
