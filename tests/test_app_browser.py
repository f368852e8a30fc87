"""The app in a real browser (Debian's chromium through Playwright): upload through the page, watch indexing
finish, ask, and see the answer clips load. With EGORECALL_SCREENSHOT=1 it also refreshes docs/screenshot.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from app_fixtures import start_app
from media import write_video

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture()
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        yield context.new_page()
        context.close()
        browser.close()


def test_upload_ask_and_play_in_the_browser(tmp_path, page):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    videos = [
        write_video(tmp_path / "kitchen.mp4", seconds=12, seed=1),
        write_video(tmp_path / "hallway.mp4", seconds=10, seed=2),
    ]
    app = start_app(tmp_path / "lib", poll_s=0.5)
    try:
        page.goto(app.url)
        page.locator("#er-upload input[type=file]").set_input_files([str(v) for v in videos])
        status = page.locator("#er-index-status")
        for name in ("kitchen.mp4", "hallway.mp4"):
            status.get_by_text(f"{name}: indexed").wait_for(timeout=120_000)
        page.wait_for_function(
            "() => { const t = document.querySelector('#er-videos').innerText;"
            " return t.includes('kitchen.mp4') && t.includes('hallway.mp4') && t.split('ready').length === 3; }",
            timeout=30_000,
        )
        page.screenshot(path=str(shots / "library.png"), full_page=True)

        page.get_by_role("tab", name="Ask").click()
        page.locator("#er-question textarea").fill("where did I leave the red cup")
        page.locator("#er-ask").click()
        page.locator("#er-summary").get_by_text("5 moment(s)").wait_for(timeout=60_000)
        clips = page.locator(".er-clip video")
        clips.nth(4).wait_for(timeout=30_000)
        assert clips.count() == 5
        page.wait_for_function(
            "() => { const v = [...document.querySelectorAll('.er-clip video')];"
            " return v.length === 5 && v.every(e => e.readyState >= 1 && e.duration > 0); }",
            timeout=30_000,
        )
        # Clicking a moment's thumbnail plays it in the player.
        page.locator("#er-gallery button, #er-gallery img").first.click()
        page.wait_for_function(
            "() => { const v = document.querySelector('#er-player video'); return v && v.readyState >= 1; }",
            timeout=30_000,
        )
        page.locator("#er-plot").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "ask.png"), full_page=True)
        assert (shots / "ask.png").stat().st_size > 10_000
        # The clicked moment is the one to correct: mark it right, and the library keeps the correction.
        page.locator("#er-fix").get_by_text("Correct a moment").click()
        page.locator("#er-fix-right").click()
        page.locator("#er-fix-status").get_by_text("marked right").wait_for(timeout=30_000)
        assert [c.verdict for c in app.service.corrections()] == ["right"]
        if os.environ.get("EGORECALL_SCREENSHOT") == "1":
            docs = Path(__file__).resolve().parents[1] / "docs"
            docs.mkdir(exist_ok=True)
            shutil.copyfile(shots / "ask.png", docs / "screenshot.png")
    finally:
        app.close()
