"""When each video was recorded: read from the container (MP4/MKV creation_time, QuickTime's creationdate with
its zone), from camera and phone file names, else the file's time -- stored with its source, listed by day,
settable by hand; untrustworthy times are passed over with a note; old libraries are migrated."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone

import pytest
from media import write_video

from app.cli import main
from indexing.library import Library
from indexing.probe import probe
from indexing.recording_time import InvalidTime, from_file_name, parse_user_time, recording_time, short_time

DEC3_0714Z = datetime(2026, 12, 3, 7, 14, tzinfo=timezone.utc).timestamp()


def small(path, **kw):
    return write_video(path, seconds=1.2, fps=10, width=64, height=48, **kw)


@pytest.mark.parametrize(
    "name,tags,source,tz",
    [
        ("walk.mp4", {"creation_time": "2026-12-03T07:14:00.000000Z"}, "container", None),
        ("walk.mkv", {"creation_time": "2026-12-03T07:14:00Z"}, "container", None),
        ("walk.mov", {"com.apple.quicktime.creationdate": "2026-12-03T08:14:00+0100"}, "quicktime", 60),
    ],
)
def test_the_container_says_when(tmp_path, name, tags, source, tz):
    info = probe(small(tmp_path / name, metadata=tags))
    assert (info.recorded_at, info.recorded_source, info.recorded_tz) == (DEC3_0714Z, source, tz)
    assert short_time(info.recorded_at, 60) == "Thu 3 Dec, 08:14"


def test_file_names_of_cameras_and_phones(tmp_path):
    for name in ("VID_20261203_081400.mp4", "PXL_20261203_081400123.mp4", "20261203_081400.mp4"):
        want = datetime(2026, 12, 3, 8, 14).astimezone()  # local time of this machine
        assert from_file_name(name) == want, name
        info = probe(small(tmp_path / name))
        assert (info.recorded_at, info.recorded_source) == (want.timestamp(), "file name")
    assert from_file_name("GH010123.mp4") is None and from_file_name("kitchen.mp4") is None


def test_untrusted_times_fall_back_and_say_why(tmp_path):
    unset = small(tmp_path / "VID_20261203_081400.mp4", metadata={"creation_time": "1985-01-01T00:00:00Z"})
    info = probe(unset)
    assert info.recorded_source == "file name" and "not trusted" in info.recorded_note
    future = small(tmp_path / "clip.mp4", metadata={"creation_time": "2099-01-01T00:00:00Z"})
    os.utime(future, (DEC3_0714Z, DEC3_0714Z))
    info = probe(future)
    assert (info.recorded_source, info.recorded_at) == ("file time", DEC3_0714Z) and "not trusted" in info.recorded_note
    got = recording_time(tmp_path / "x.mp4", {"creation_time": "garbage"}, now=DEC3_0714Z)
    assert got.source == "file time" and "unreadable" in got.note


def test_user_times():
    assert parse_user_time("2026-12-03T08:14+01:00").at == DEC3_0714Z
    assert parse_user_time("2026-12-03T08:14").at == datetime(2026, 12, 3, 8, 14).astimezone().timestamp()
    for bad in ("", "tomorrow-ish", "2026-13-40T99:00", "1985-01-01T10:00", "2999-01-01T00:00"):
        with pytest.raises(InvalidTime):
            parse_user_time(bad)


def test_the_library_keeps_lists_by_day_and_sets_times(tmp_path, tiny_encoder, capsys):
    lib = tmp_path / "lib"
    a = small(tmp_path / "VID_20261203_081400.mp4")
    b = small(tmp_path / "late.mp4", metadata={"creation_time": "2026-12-04T19:30:00Z"}, seed=1)
    library = Library.open(lib)
    ra = library.add(a, tiny_encoder)
    rb = library.add(b, tiny_encoder)
    assert ra.recorded_source == "file name" and rb.recorded_source == "container"
    assert main(["library", "list", "--library", str(lib)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Thu 3 Dec 2026" and "08:14" in out[1] and "(file name)" in out[1]
    assert out[2].startswith("Fri 4 Dec 2026") and "(container)" in out[3]
    # set by hand; a time that cannot be read is one clear line and changes nothing
    assert main(["library", "set-time", rb.id, "2026-12-05T09:00", "--library", str(lib)]) == 0
    assert "Sat 5 Dec, 09:00 (set by you)" in capsys.readouterr().out
    assert main(["library", "set-time", rb.id, "next tuesday", "--library", str(lib)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "YYYY-MM-DD" in err and err.count("\n") == 1
    assert Library.open(lib).get(rb.id).recorded_source == "user"


def test_a_library_from_before_recording_times_is_migrated(tmp_path, tiny_encoder):
    lib = tmp_path / "lib"
    rec = Library.open(lib).add(small(tmp_path / "a.mp4"), tiny_encoder)
    con = sqlite3.connect(lib / "library.sqlite")
    for column in ("recorded_at", "recorded_tz", "recorded_source"):
        con.execute(f"ALTER TABLE videos DROP COLUMN {column}")
    con.execute("UPDATE settings SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    again = Library.open(lib).get(rec.id)
    assert again.recorded_source == "added" and again.recorded_at == again.added_at
