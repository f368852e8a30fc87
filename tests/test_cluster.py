"""Indexing on a Ray cluster (``index --ray``): the library it builds equals a one-process index of the same
files, a worker killed mid-video is retried, a driver killed mid-run leaves a consistent library whose rerun
skips what was committed, and staging leftovers never outlive a run.

The cluster is a local Ray instance started by the tests (two CPUs, as CI has), with the tiny encoder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from media import write_random_bytes, write_video
from tiny import TINY_ARGS

from indexing.cluster import ClusterConfig, ClusterUnavailable, index_on_cluster, read_list
from indexing.errors import InvalidVideo, LibraryError
from indexing.fsutil import FileLock
from indexing.layout import STAGING_LOCK
from indexing.library import Library
from indexing.staging import MANIFEST, WORKER_PID, StagedVideo, stage_video, staging_root

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_ARGS


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Path]:
    """Six videos of different lengths and seeds (long enough that killing a worker lands mid-video)."""
    d = tmp_path_factory.mktemp("corpus")
    return [
        write_video(d / f"walk{i}.mp4", seconds=16 + 4 * i, fps=15, width=96, height=64, seed=40 + i) for i in range(6)
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus, tiny_encoder) -> Library:
    """The same files indexed in this process, one after another, by ``Library.add``."""
    lib = Library.open(tmp_path_factory.mktemp("reference") / "lib")
    for path in corpus:
        lib.add(path, tiny_encoder)
    return lib


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _same_library(lib: Library, reference: Library) -> None:
    got = {r.sha256: r for r in lib.videos()}
    want = {r.sha256: r for r in reference.videos()}
    assert set(got) == set(want)
    for sha, rec in want.items():
        other = got[sha]
        for field in ("id", "name", "duration", "fps", "width", "height", "num_rows", "dim", "encoder_key", "rate_hz"):
            assert getattr(other, field) == getattr(rec, field), field
        np.testing.assert_allclose(
            np.asarray(lib.features(other.id), np.float32),
            np.asarray(reference.features(rec.id), np.float32),
            atol=2e-3,  # fp16 features of the same weights on the same frames
        )
    assert lib.check().ok, lib.check().problems
    assert [p.name for p in staging_root(lib.root).iterdir() if p.name != STAGING_LOCK] == []
    assert lib.num_frames() == reference.num_frames()


def _kill_first_worker_mid_video(library_root: Path, stop: threading.Event, killed: list[int]) -> None:
    """Wait until a worker is writing a staged folder (pid file there, manifest not yet) and SIGKILL it."""
    staging = staging_root(library_root)
    while not stop.is_set():
        for folder in staging.glob("*") if staging.is_dir() else []:
            pid_file = folder / WORKER_PID
            if pid_file.is_file() and not (folder / MANIFEST).exists():
                try:
                    pid = int(pid_file.read_text())
                    os.kill(pid, signal.SIGKILL)
                except (ValueError, OSError):
                    continue
                killed.append(pid)
                return
        time.sleep(0.005)


def test_cluster_index_equals_one_process_even_when_a_worker_is_killed(
    tmp_path, corpus, reference, local_ray, tiny_spec
):
    lib = Library.open(tmp_path / "lib")
    bad = write_random_bytes(tmp_path / "not-a-video.mp4")
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_worker_mid_video, args=(lib.root, stop, killed), daemon=True)
    killer.start()
    seen = []
    try:
        results = index_on_cluster(
            lib,
            [*corpus, bad],
            tiny_spec,
            config=ClusterConfig(workers=2),
            progress=lambda result, done, total: seen.append((result.path.name, done, total)),
        )
    finally:
        stop.set()
        killer.join(5)
    assert killed, "no worker was caught mid-video"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert [r.path for r in results] == [*corpus, bad]
    assert all(r.ok for r in results[:-1]), [str(r.error) for r in results if not r.ok]
    assert isinstance(results[-1].error, InvalidVideo) and "not-a-video.mp4" in str(results[-1].error)
    assert [done for _name, done, _total in seen] == list(range(1, 8)) and {t for *_, t in seen} == {7}
    _same_library(lib, reference)

    again = index_on_cluster(lib, corpus[:2], tiny_spec, config=ClusterConfig(workers=1))
    assert all(r.existed for r in again)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "app", *args]


def _env(**extra: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}
    for name in ("EGORECALL_MODEL", "EGORECALL_PRETRAINED", "EGORECALL_QUANTIZE", "EGORECALL_LIBRARY"):
        env.pop(name, None)
    return env


RUN_MARK = "EGORECALL_TEST_RUN"


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries ``RUN_MARK=mark``: a driver and every Ray process it started (the
    raylet and its workers inherit the driver's environment, but not its process group)."""
    needle = f"{RUN_MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                pass
    return found


def _kill_run(mark: str, timeout_s: float = 30.0) -> None:
    """SIGKILL every process of one marked run and wait until none is left: a Ray worker that outlives its
    driver for a moment would stage one more video after the library was repaired."""
    deadline = time.monotonic() + timeout_s
    while pids := _marked(mark):
        assert time.monotonic() < deadline, f"processes of the killed run still alive: {pids}"
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


@pytest.mark.slow
def test_a_driver_killed_mid_run_leaves_a_consistent_library_and_the_rerun_skips_what_was_committed(
    tmp_path, corpus, reference
):
    listing = tmp_path / "corpus.txt"
    listing.write_text("# the corpus\n" + "".join(f"{p}\n" for p in corpus) + "\n")
    lib_dir = tmp_path / "lib"
    cmd = _cli("index", "--ray", "--ray-workers", "1", "--library", str(lib_dir), "--from-list", str(listing), *TINY)
    mark = f"{os.getpid()}-{time.monotonic_ns()}"
    driver = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=_env(**{RUN_MARK: mark}),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        first = driver.stdout.readline()  # printed once the first video is committed
        assert first.strip().endswith(corpus[0].name), first
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver ...
        driver.wait(30)
        _kill_run(mark)  # ... and the Ray instance it started, all of it dead before the library is opened
    lib = Library.open(lib_dir)  # opening repairs: staged leftovers of the dead run are deleted
    committed = lib.videos()
    assert 1 <= len(committed) < len(corpus)
    assert lib.check().ok, lib.check().problems

    rerun = subprocess.run(cmd, cwd=tmp_path, env=_env(), text=True, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    lines = rerun.stdout.strip().splitlines()
    assert len(lines) == len(corpus)
    skipped = [ln for ln in lines if ln.endswith("(already in the library)")]
    assert sorted(ln.split()[0] for ln in skipped) == sorted(r.id for r in committed)
    _same_library(Library.open(lib_dir), reference)


def test_stage_then_commit_is_add_and_a_bad_staged_folder_is_refused(tmp_path, corpus, tiny_encoder, reference):
    lib = Library.open(tmp_path / "lib")
    staged = stage_video(corpus[0], lib.root, tiny_encoder, rate_hz=lib.settings.rate_hz)
    assert isinstance(staged, StagedVideo) and (staged.dir / MANIFEST).is_file()
    assert lib.videos() == []  # staging never touches the catalog
    again = StagedVideo.load(staged.dir)
    assert again == staged
    record = lib.commit_staged(staged)
    assert not staged.dir.exists()
    want = next(r for r in reference.videos() if r.sha256 == record.sha256)
    np.testing.assert_array_equal(lib.features(record.id), reference.features(want.id))
    assert (lib.root / record.media_path).is_file() and lib.check().ok
    # The bytes are in: a worker told so skips the file without decoding it.
    assert stage_video(corpus[0], lib.root, tiny_encoder, rate_hz=1.875, skip=frozenset({record.sha256})) == (
        record.sha256
    )

    broken = stage_video(corpus[1], lib.root, tiny_encoder, rate_hz=lib.settings.rate_hz, copy_media=False)
    with open(broken.features_path, "r+b") as f:
        f.truncate(200)
    with pytest.raises(LibraryError, match="feature file"):
        lib.commit_staged(broken)
    assert len(lib.videos()) == 1 and lib.check().ok is False  # the broken folder is a leftover ...
    lib.repair()
    assert lib.check().ok and [p for p in staging_root(lib.root).iterdir() if p.name != STAGING_LOCK] == []


def test_a_bad_file_stages_nothing_and_repair_spares_a_running_drivers_staging(tmp_path, tiny_encoder):
    lib = Library.open(tmp_path / "lib")
    with pytest.raises(InvalidVideo):
        stage_video(write_random_bytes(tmp_path / "noise.mp4"), lib.root, tiny_encoder, rate_hz=1.875)
    staging = staging_root(lib.root)
    assert not staging.exists() or list(staging.iterdir()) == []
    (staging / "0123456789abcdef-deadbeef").mkdir(parents=True)  # a worker's folder, half written
    lock = FileLock(staging / STAGING_LOCK)
    assert lock.try_acquire()
    try:
        assert lib.check().ok  # a live driver may still commit it
    finally:
        lock.release()
    assert any("leftover staged video" in p for p in lib.repair().problems)
    assert [p.name for p in staging.iterdir() if p.name != STAGING_LOCK] == []


def test_without_ray_the_error_says_how_to_install_it(tmp_path, monkeypatch, corpus, tiny_spec):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ClusterUnavailable, match=r"pip install -e \"\.\[ray\]\""):
        index_on_cluster(Library.open(tmp_path / "lib"), corpus[:1], tiny_spec)


def test_a_list_file_reads_paths_relative_to_itself(tmp_path):
    (tmp_path / "sub").mkdir()
    listing = tmp_path / "sub" / "list.txt"
    listing.write_text("# corpus\n\na.mp4\n  /data/b.mp4  \nnested/c.mp4\n")
    assert read_list(listing) == [tmp_path / "sub" / "a.mp4", Path("/data/b.mp4"), tmp_path / "sub" / "nested/c.mp4"]
    with pytest.raises(LibraryError, match="cannot read the list"):
        read_list(tmp_path / "missing.txt")


def test_index_with_nothing_to_index_says_so(tmp_path):
    out = subprocess.run(
        _cli("index", "--library", str(tmp_path / "lib")), env=_env(), text=True, capture_output=True, timeout=120
    )
    assert out.returncode != 0 and "nothing to index" in out.stderr


def test_exported_features_train_as_a_per_video_folder_of_the_librarys_encoder(tmp_path, reference):
    from indexing.feature_export import SIDECAR, export_features
    from training.features import DirectoryClipFeatures, LibraryClipFeatures
    from training.nlq import Clip

    out = export_features(reference, tmp_path / "features")
    assert out.videos == len(reference.videos()) and (tmp_path / "features" / SIDECAR).is_file()
    folder = DirectoryClipFeatures(tmp_path / "features")
    assert folder.key == reference.settings.encoder_key and folder.rate_hz == reference.settings.rate_hz
    clip = Clip(clip_uid="c1", video_uid="walk3", video_start_sec=3.0, video_end_sec=19.0)
    a, b = folder.get(clip), LibraryClipFeatures(reference).get(clip)
    np.testing.assert_array_equal(a.features, np.asarray(b.features, np.float32))
    with open(tmp_path / "features" / "walk3.npy", "r+b") as f:  # a copy: the library's file is untouched
        f.truncate(10)
    assert reference.check().ok
