"""``bench/bench_questions.py``: how the grammar reads the query texts of an NLQ annotation file (issue 27's
real-question target), run as a user runs it on a file of its format written here (Ego4D's own texts cannot be
committed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_questions.py"


def nlq_file(path: Path, queries: list[dict]) -> Path:
    clip = {"clip_uid": "c1", "annotations": [{"annotation_uid": "a1", "language_queries": queries + [None]}]}
    path.write_text(json.dumps({"version": "v2", "videos": [{"video_uid": "v1", "clips": [clip]}]}))
    return path


def test_shares_read_by_a_rule_and_object_found(tmp_path):
    where_put, put_in, what_x = "Place: Where did I put X?", "Objects: What did I put in X?", "Objects: What X did I Y?"
    path = nlq_file(
        tmp_path / "nlq_val.json",
        [
            {"query": "Where did l put the scissors?", "template": where_put, "slot_x": "scissors"},  # "l" for "I"
            {"query": "what did i put in the drawer", "template": put_in, "slot_x": "drawer"},  # the place
            {"query": "What object did I pick up?", "template": what_x, "slot_x": "object"},  # nothing to find
            {"query": "Where did I put the cups", "template": where_put, "slot_x": "cup"},  # singular of the head
            {"query": "purple zebra", "template": None, "slot_x": "zebra"},  # no rule; the object found anyway?
        ],
    )
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--annotations", str(path), "--json", str(out), "--show", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rep = json.loads(out.read_text())[str(path)]
    assert rep["all"]["queries"] == 5 and rep["all"]["read_by_a_rule"] == 80.0
    assert rep["all"]["with_slot"] == 4  # the placeholder X is not counted as an object to find
    assert rep["templates"][where_put]["object_found"] == 100.0
    assert rep["templates"][put_in]["object_found"] == 100.0
    assert rep["templates"][what_x]["object_found"] is None  # nothing to find: null in the JSON, a dash printed
    assert rep["unread_examples"] == ["purple zebra"]
    assert "purple zebra" in done.stdout


def test_a_file_that_is_not_nlq_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text('{"clips": []}')
    done = subprocess.run([sys.executable, str(BENCH), "--annotations", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "not an NLQ annotation file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_given_by_url_is_fetched_at_run_time_and_a_page_is_refused(tmp_path):
    """Ego4D's files cannot be committed: given as a URL, the file is downloaded into the cache (once) and read;
    an address that answers with a web page is refused in one line, nothing kept; with downloads off (as in
    these tests), the message says so."""
    import functools
    import http.server
    import os
    import threading

    online = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "EGORECALL_OFFLINE")}

    served = tmp_path / "served"
    served.mkdir()
    nlq_file(served / "nlq_val.json", [{"query": "where is my phone", "template": "x", "slot_x": "phone"}])
    (served / "page.json").write_text("<!DOCTYPE html><html><body>sign in to download</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    cache = tmp_path / "cache"
    try:
        offline = subprocess.run(
            [sys.executable, str(BENCH), "--annotations", f"{base}/nlq_val.json", "--cache", str(cache)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**online, "EGORECALL_OFFLINE": "1"},
        )
        assert offline.returncode != 0 and "downloads are off" in offline.stderr and not cache.exists()
        out = tmp_path / "out.json"
        done = subprocess.run(
            [sys.executable, str(BENCH), "--annotations", f"{base}/nlq_val.json", "--cache", str(cache)]
            + ["--json", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            env=online,
        )
        assert done.returncode == 0, done.stderr
        assert (cache / "nlq_val.json").is_file()
        assert json.loads(out.read_text())[str(cache / "nlq_val.json")]["all"]["object_found"] == 100.0
        page = subprocess.run(
            [sys.executable, str(BENCH), "--annotations", f"{base}/page.json", "--cache", str(cache)],
            capture_output=True,
            text=True,
            timeout=300,
            env=online,
        )
        assert page.returncode != 0 and "web page" in page.stderr and "Traceback" not in page.stderr
        assert not (cache / "page.json").exists()
    finally:
        server.shutdown()
