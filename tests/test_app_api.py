"""The app's HTTP API end to end through gradio_client, and what it refuses (files outside the library,
uploads over the limit, files that are not videos)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import av
import httpx
import pytest
from app_fixtures import start_app
from gradio_client import Client, handle_file
from media import write_video

LIMIT = "300kb"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("appapi")
    app = start_app(root / "lib", max_file_size=LIMIT)
    client = Client(app.url, verbose=False)
    videos = [
        write_video(root / "kitchen walk.mp4", seconds=12, seed=1),
        write_video(root / "garden.mp4", seconds=8, seed=2),
    ]
    job = client.predict([handle_file(str(v)) for v in videos], api_name="/index")
    assert job["state"] in ("queued", "running") and len(job["files"]) == 2
    done = app.jobs.wait_index(job["id"], timeout=120)
    assert done.finished and [f.state for f in done.files] == ["indexed", "indexed"], done.to_dict()
    yield {"app": app, "client": client, "root": root}
    app.close()


def test_index_ask_and_download_clips(served):
    client, app = served["client"], served["app"]
    status = client.predict(api_name="/index_status")
    assert not status["busy"] and status["jobs"][0]["files"][0]["state"] == "indexed"
    listed = client.predict(api_name="/videos")
    assert sorted(v["name"] for v in listed) == ["garden.mp4", "kitchen walk.mp4"]
    assert all(v["status"] == "ready" and v["num_rows"] > 0 for v in listed)

    answer = client.predict("someone opens the fridge", api_name="/ask")
    moments = answer["moments"]
    assert len(moments) == 5 and [m["rank"] for m in moments] == [1, 2, 3, 4, 5]
    names = {v["id"]: v for v in listed}
    for m in moments:
        video = names[m["video_id"]]
        assert m["video_name"] == video["name"]
        assert 0 <= m["start"] < m["end"] <= video["duration"] + 1e-6
        r = httpx.get(app.url + m["clip_url"], timeout=30)
        assert r.status_code == 200
        clip = served["root"] / f"clip{m['rank']}.mp4"
        clip.write_bytes(r.content)
        with av.open(str(clip)) as c:
            assert sum(1 for _ in c.decode(video=0)) > 0
        assert httpx.get(app.url + m["thumbnail_url"], timeout=30).content[:2] == b"\xff\xd8"  # JPEG
    assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)

    one = listed[0]["id"]
    scoped = client.predict("a door", one, "zeroshot", 3, api_name="/ask")
    assert len(scoped["moments"]) == 3 and {m["video_id"] for m in scoped["moments"]} == {one}


def test_ask_errors_are_one_line(served):
    client = served["client"]
    with pytest.raises(Exception) as info:
        client.predict("where is it", "no-such-video", api_name="/ask")
    text = str(info.value)
    assert "no-such-video" in text and "Traceback" not in text
    with pytest.raises(Exception, match="(?i)mode|checkpoint"):
        client.predict("where is it", "*", "not-a-model", api_name="/ask")


def test_corrections_through_the_api(served):
    client = served["client"]
    answer = client.predict("a door", api_name="/ask")
    m = answer["moments"][0]
    stored = client.predict(
        m["video_id"],
        answer["question"],
        m["start"],
        m["start"] + 1.0,
        "adjusted",
        "zeroshot",
        m["start"],
        m["end"],
        api_name="/correct",
    )
    assert stored["verdict"] == "adjusted" and stored["video_id"] == m["video_id"]
    with pytest.raises(Exception, match="start before it ends"):
        client.predict(m["video_id"], "a door", 5.0, 5.0, "adjusted", api_name="/correct")
    assert [c["id"] for c in client.predict(api_name="/corrections")] == [stored["id"]]


def test_twenty_concurrent_asks(served):
    client = served["client"]
    questions = [f"where did I leave object {i}" for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda q: client.predict(q, api_name="/ask"), questions))
    assert all(len(a["moments"]) == 5 and a["question"] == q for a, q in zip(answers, questions))


def test_not_a_video_is_refused_with_a_message(served, tmp_path):
    client, app = served["client"], served["app"]
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    job = client.predict([handle_file(str(fake))], api_name="/index")
    done = app.jobs.wait_index(job["id"], timeout=60)
    (f,) = done.files
    assert f.state == "failed" and f.message.startswith("notes.mp4: ") and "Traceback" not in f.message
    assert "notes.mp4" not in [v["name"] for v in client.predict(api_name="/videos")]


def test_upload_over_the_limit_is_refused(served, tmp_path):
    client, app = served["client"], served["app"]
    big = tmp_path / "big.mp4"  # the size is refused before anyone looks at the bytes
    big.write_bytes(os.urandom(400_000))
    with pytest.raises(Exception) as info:
        client.predict([handle_file(str(big))], api_name="/index")
    assert "size" in str(info.value).lower() or "413" in str(info.value)
    assert "big.mp4" not in [v["name"] for v in client.predict(api_name="/videos")]
    r = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.mp4", big.read_bytes(), "video/mp4")})
    assert r.status_code == 413 and "size" in r.text.lower()


SECRET = b"egorecall-secret-content"


@pytest.mark.parametrize(
    "path",
    [
        "../../../../etc/passwd",
        "/etc/passwd",
        "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "{secret}",
        "{media}",
        "{catalog}",
        "{clips}/../../secret.txt",
        "{clips_enc}%2F..%2F..%2Fsecret.txt",
    ],
)
def test_files_outside_the_clips_folder_are_not_served(served, path):
    app, root = served["app"], served["root"]
    secret = root / "secret.txt"
    secret.write_bytes(SECRET)
    lib = app.service.library
    media = lib.media_path(app.service.videos()[0].id)
    clips = app.service.settings.excerpts_dir.resolve()
    catalog = next(p for p in sorted(lib.root.iterdir()) if p.is_file())
    path = path.format(
        secret=secret, media=media, catalog=catalog, clips=clips, clips_enc=str(clips).replace("/", "%2F")
    )
    with httpx.Client(timeout=30) as http:
        for url in (f"{app.url}gradio_api/file={path}", f"{app.url}file={path}"):
            r = http.get(url)
            assert r.status_code in (400, 403, 404), (url, r.status_code)
            assert SECRET not in r.content and b"root:" not in r.content and b"ftypisom" not in r.content[:64]


def test_index_refuses_server_paths_that_were_not_uploaded(served, tmp_path):
    """A client cannot make the app index (and then serve clips of) a file elsewhere on the server: the raw
    HTTP call names a server path instead of uploading the file."""
    app = served["app"]
    elsewhere = write_video(tmp_path / "elsewhere.mp4", seconds=4, seed=5)
    before = len(app.jobs.index_status()["jobs"])
    payload = {"data": [[{"path": str(elsewhere), "orig_name": "elsewhere.mp4", "meta": {"_type": "gradio.FileData"}}]]}
    with httpx.Client(timeout=60) as http:
        r = http.post(app.url + "gradio_api/call/index", json=payload)
        assert r.status_code == 200
        event = r.json()["event_id"]
        stream = http.get(f"{app.url}gradio_api/call/index/{event}").text
    assert "event: error" in stream and "event: complete" not in stream
    assert len(app.jobs.index_status()["jobs"]) == before


def test_remove_through_the_api(served, tmp_path):
    client, app = served["client"], served["app"]
    extra = write_video(tmp_path / "extra.mp4", seconds=4, seed=9)
    job = client.predict([handle_file(str(extra))], api_name="/index")
    (f,) = app.jobs.wait_index(job["id"], timeout=60).files
    assert f.state == "indexed"
    removed = client.predict(f.video_id, api_name="/remove")
    assert removed["name"] == "extra.mp4"
    assert "extra.mp4" not in [v["name"] for v in client.predict(api_name="/videos")]
    with pytest.raises(Exception, match=f.video_id):
        client.predict(f.video_id, api_name="/remove")


def test_train_through_the_api_publishes_a_mode(served, tmp_path):
    """A tiny run on the app's own library: live records, then its checkpoints become answering modes."""
    from training_fixtures import TINY_TEXT, TINY_VSLNET

    from training.nlq_writer import NLQFileBuilder

    client = served["client"]
    builder = NLQFileBuilder()
    for uid, video, duration in (("c1", "kitchen walk", 12.0), ("c2", "garden", 8.0)):
        builder.add_clip(uid, video, 0.0, duration, split="train")
        for i, thing in enumerate(("red ball", "blue cup")):
            builder.add_query(
                uid, f"where is the {thing}?", 1.0 + 3 * i, 2.5 + 3 * i, template="Objects: Where is object X?"
            )
    data = tmp_path / "nlq.json"
    builder.write(data)
    settings = {
        "name": "ui-tiny",
        "device": "cpu",
        "threads": 1,
        "data.train": [str(data)],
        "data.val": str(data),
        "model.config": TINY_VSLNET,
        "text.kind": TINY_TEXT["kind"],
        "text.model": TINY_TEXT["model"],
        "text.pretrained": TINY_TEXT["pretrained"],
        "text.cache_dir": None,
        "optim.steps": 4,
        "optim.batch_size": 4,
        "optim.epochs": None,
        "eval.every": 2,
        "output.log_every": 1,
        "output.tensorboard": False,
    }
    started = client.predict("vslnet_nlq", settings, api_name="/train")
    assert started["name"] == "ui-tiny" and started["state"] in ("running", "finished")
    status = served["app"].jobs.wait_training(120)
    assert status["state"] == "finished", status["message"]
    remote = client.predict(0, api_name="/train_status")
    events = [r["event"] for r in remote["records"]]
    assert events[0] == "start" and "train" in events and "eval" in events and events[-1] == "done"
    modes = {m["name"]: m for m in client.predict(api_name="/modes")}
    assert {"zeroshot", "ui-tiny-best", "ui-tiny-final"} <= set(modes)
    assert "R@1@0.3" in modes["ui-tiny-best"]["metrics"] and "R@1@0.3" in modes["ui-tiny-best"]["label"]
    answer = client.predict("where is the red ball?", "*", "ui-tiny-final", 3, api_name="/ask")
    assert answer["mode"] == "ui-tiny-final" and len(answer["moments"]) == 3
    with pytest.raises(Exception, match="unknown config key"):
        client.predict("vslnet_nlq", {"optim.lrr": 1}, api_name="/train")
