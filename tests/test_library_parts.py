"""The library's parts and its lock rules (indexing.state): writes refuse to run without the write lock, every
writer holds it, and a part reads the library's state it was handed and nothing private of anyone else."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import numpy as np
import pytest
from answer_fixtures import DIM, ColorEncoder
from media import write_video

from indexing.library import Library
from indexing.repairing import CheckReport, Repairer

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["indexing/writing.py", "indexing/searching.py", "indexing/reindexing.py", "indexing/repairing.py"]


@pytest.fixture()
def library(tmp_path) -> Library:
    lib = Library.open(tmp_path / "lib")
    lib.add(write_video(tmp_path / "clip.mp4", seconds=6.0), ColorEncoder())
    return lib


def test_writes_without_the_write_lock_are_refused(library):
    rec = library.videos()[0]
    with pytest.raises(RuntimeError, match="without its write lock"):
        Repairer(library.state).run_locked(CheckReport(), fix=True)
    with pytest.raises(RuntimeError, match="without its write lock"):
        library.state.frames.writable()
    with library.catalog.connect(write=True) as con, pytest.raises(RuntimeError, match="without its write lock"):
        library.state.drop_row(con, rec)
    assert library.videos() == [rec] and library.check().ok  # nothing was touched


def test_check_repair_and_remove_run_under_the_lock(library, monkeypatch):
    seen: list[tuple[str, bool]] = []
    real = Repairer.run_locked

    def spy(self, report, fix):
        seen.append(("repair" if fix else "check", library.state.lock.is_held))
        return real(self, report, fix)

    monkeypatch.setattr(Repairer, "run_locked", spy)
    library.check()
    library.repair()
    real_drop = type(library.state).delete_files
    monkeypatch.setattr(
        type(library.state),
        "delete_files",
        lambda self, rec: seen.append(("remove", self.lock.is_held)) or real_drop(self, rec),
    )
    library.remove(library.videos()[0].id)
    assert seen == [("check", True), ("repair", True), ("remove", True)]
    assert not library.state.lock.is_held


def test_the_lock_is_held_per_thread_and_only_tried_by_readers(library):
    other: dict[str, bool] = {}

    def elsewhere() -> None:
        other["sees_held"] = library.state.lock.is_held
        with library.state.lock.attempt() as held:
            other["got_it"] = held
        other["searched"] = len(library.search(np.ones(DIM, np.float32) / np.sqrt(DIM), k=2)[0]) == 2

    with library.state.lock.held():
        assert library.state.lock.is_held
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(timeout=60)
    assert other == {"sees_held": False, "got_it": False, "searched": True}  # a reader never waits for a writer


def _private_reaches(path: Path) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls``: a part reaching into another object's private state."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


@pytest.mark.parametrize("part", PARTS)
def test_a_part_reads_only_what_it_is_handed(part):
    path = ROOT / part
    text = path.read_text(encoding="utf-8")
    assert "indexing.library" not in text.split('"""', 2)[-1]  # no part imports the front (docstrings aside)
    assert not _private_reaches(path)


def test_the_private_reach_finder_finds_reaches(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f(lib, self):\n    return lib._maps, self._ok, lib.ok\n")
    assert _private_reaches(sample) == ["sample.py:2 ._maps"]
