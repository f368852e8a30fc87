"""A checkpoint published once and installed by every user: served over HTTP on this machine (loopback), fetched
as encoder weights are, checked (manifest checksums, a card that matches the weights, weights that load)
before anything is installed; and the default mode fetches a configured one on first use."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest
import torch
from media import write_video
from tiny import TINY_KEY

from app.cli import main
from app.service import EgoRecall
from app.settings import Settings
from checkpoints import CheckpointMetadata, FeatureEncoderInfo, TextEncoderInfo, list_checkpoints, save_checkpoint
from checkpoints.files import sha256_file
from checkpoints.release import MANIFEST_FILE, ReleaseError, install, publish
from models.registry import build_localizer

SMALL_VSLNET = {"video_dim": 64, "query_dim": 64, "dim": 32, "num_heads": 4, "max_positions": 64, "dropout": 0.0}


def stored_checkpoint(folder, name="tiny-vslnet", key=TINY_KEY, dim=64):
    torch.manual_seed(0)
    model = build_localizer("vslnet", {**SMALL_VSLNET, "video_dim": dim})
    meta = CheckpointMetadata(
        feature_encoder=FeatureEncoderInfo(key, dim, 1.875),
        text_encoder=TextEncoderInfo("egorecall-tiny", "none", TINY_KEY, 64),
        stage="test",
        metrics={"R@1@0.3": 12.5},
    )
    return save_checkpoint(folder, model, meta, name=name)


@pytest.fixture()
def server(tmp_path):
    """A static file server for ``tmp_path / "www"`` on 127.0.0.1 (and one path that answers with a page)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            if self.path.startswith("/page/"):
                body = b"<!DOCTYPE html><html><body>Download our model!</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_publish_then_fetch_over_http(tmp_path, server, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EGORECALL_OFFLINE", raising=False)
    www, url = server
    stored_checkpoint(tmp_path / "mine")
    args = ["checkpoints", "publish", "tiny-vslnet", "--dir", str(tmp_path / "mine"), "--out", str(www)]
    assert main([*args, "--licence", "CC-BY-4.0", "--data", "synthetic-home-2027", "--eval-file", "nlq_val.json"]) == 0
    card = json.loads((www / "tiny-vslnet" / "card.json").read_text())
    assert card["licence"] == "CC-BY-4.0" and card["metrics"] == {"R@1@0.3": 12.5}
    assert card["weights_sha256"] == sha256_file(www / "tiny-vslnet" / "model.safetensors")
    users = tmp_path / "users-checkpoints"
    capsys.readouterr()
    assert main(["checkpoints", "fetch", f"{url}/tiny-vslnet/", "--dir", str(users)]) == 0
    assert "installed tiny-vslnet" in capsys.readouterr().out
    (info,) = list_checkpoints(users)
    assert info.name == "tiny-vslnet" and info.metrics == {"R@1@0.3": 12.5}
    assert not [p for p in users.iterdir() if p.name.startswith(".")]  # no temporary folder left
    # again: the same release is already there; by its manifest URL too
    assert install(f"{url}/tiny-vslnet/{MANIFEST_FILE}", users) == users / "tiny-vslnet"


@pytest.mark.parametrize("damage", ["page", "weights", "card", "missing", "offline"])
def test_bad_releases_install_nothing(tmp_path, server, monkeypatch, damage):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EGORECALL_OFFLINE", raising=False)
    www, url = server
    stored_checkpoint(tmp_path / "mine")
    release = publish("tiny-vslnet", www, licence="CC-BY-4.0", training_data=["x"], directory=tmp_path / "mine")
    source, words = f"{url}/tiny-vslnet/", ""
    if damage == "page":
        source, words = f"{url}/page/tiny-vslnet/", "web page"
    elif damage == "weights":  # truncated on the server: no longer what the manifest says
        data = (release / "model.safetensors").read_bytes()
        (release / "model.safetensors").write_bytes(data[: len(data) // 2])
        words = "stopped after"
    elif damage == "card":  # a card that describes other weights (its manifest entry made to match)
        card = json.loads((release / "card.json").read_text())
        card["weights_sha256"] = "0" * 64
        (release / "card.json").write_text(json.dumps(card))
        manifest = json.loads((release / MANIFEST_FILE).read_text())
        manifest["files"]["card.json"] = {"sha256": sha256_file(release / "card.json"), "size": None}
        (release / MANIFEST_FILE).write_text(json.dumps(manifest))
        words = "other weights"
    elif damage == "missing":
        source, words = f"{url}/nothing-here/", "cannot download"
    else:
        monkeypatch.setenv("EGORECALL_OFFLINE", "1")
        words = "downloads are off"
    users = tmp_path / "users"
    with pytest.raises(Exception, match=words) as err:
        install(source, users)
    assert isinstance(err.value, ReleaseError) or "Download" in type(err.value).__name__
    assert not users.exists() or not list(users.iterdir())  # nothing installed, no leftovers


def test_auto_fetches_the_default_checkpoint_on_first_use(tmp_path, server, tiny_encoder, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EGORECALL_OFFLINE", raising=False)
    www, url = server
    stored_checkpoint(tmp_path / "team")
    publish("tiny-vslnet", www, licence="CC-BY-4.0", training_data=["x"], directory=tmp_path / "team")
    stored_checkpoint(tmp_path / "team", name="vitb-vslnet", key="ViT-B-16/openai", dim=512)
    publish("vitb-vslnet", www, licence="CC-BY-4.0", training_data=["x"], directory=tmp_path / "team")
    video = write_video(tmp_path / "walk.mp4", seconds=3, fps=10, width=64, height=48)

    def service(lib: str, source: str) -> EgoRecall:
        s = EgoRecall(Settings(library=tmp_path / lib, device="cpu", default_checkpoint=source), encoder=tiny_encoder)
        assert all(r.ok for r in s.index([video]))
        return s

    good = service("lib", f"{url}/tiny-vslnet/")
    answer = good.ask("where did I put my keys", clips=False)
    assert answer.mode == "fused:tiny-vslnet" and not answer.warnings
    assert [c.name for c in list_checkpoints(good.settings.checkpoints_dir)] == ["tiny-vslnet"]
    # a default checkpoint of another encoder's features is refused with the reason; auto answers zero-shot
    other = service("lib2", f"{url}/vitb-vslnet/")
    answer = other.ask("where did I put my keys", clips=False)
    assert answer.mode == "zeroshot" and "ViT-B-16/openai" in answer.warnings[0]
    assert not list_checkpoints(other.settings.checkpoints_dir)
