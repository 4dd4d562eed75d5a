"""End to end: the real server (``duchenne serve``, uvicorn) driven by headless Chromium.

Skips unless Debian's ``chromium`` (``/usr/bin/chromium``, or ``DUCHENNE_CHROMIUM``) and the
PyPI ``playwright`` package are installed; Playwright's own browser download is never used.
Screenshots go to ``artifacts/server/`` (git-ignored) and the test's tmp folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from duchenne import data
from duchenne.models.registry import default_smile_model

from .conftest import require_server_deps, start_server, write_video

require_server_deps()

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DUCHENNE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]

if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DUCHENNE_CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the e2e test needs the PyPI 'playwright' package"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``duchenne serve`` on 127.0.0.1:<free port>; stopped with SIGTERM (graceful, exit 0)."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc, url = start_server(log)
    yield url
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    assert "Application shutdown complete" in log.read_text()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + FAKE_CAMERA)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    """Screenshot into the test's tmp folder and ``artifacts/server/`` (git-ignored)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    folder = REPO / "artifacts" / "server"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, folder / name)
    return shot


def _answer_photos_with_mock_faces(page) -> None:
    """Every photo the dashboard sends gets ``MOCK_FACES`` at once."""
    page.route(
        "**/v1/analyze*",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(MOCK_FACES)
        ),
    )


def _fake_clip(tmp_path: Path) -> Path:
    """A file the dashboard takes for an MP4 (its answers are mocked: never decoded)."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    return clip


def test_upload_the_demo_photo_shows_boxes_and_scores(server, page, tmp_path):
    page.goto(server + "/")
    assert page.title().startswith("duchenne")
    page.wait_for_selector("#health:has-text('Service ok')")
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#overlay rect.face-box")
    assert page.locator("#overlay rect.face-box").count() == 1
    assert page.locator("#faces li.face-card").count() == 1
    card = page.inner_text("#faces li.face-card")
    assert "#0" in card and "detector" in card
    if default_smile_model() is not None:
        assert "/10" in card
    else:
        assert "no smile score" in card
    assert "Found 1 face in astronaut.jpg" in page.inner_text("#message")
    tag = page.locator("#overlay .tag-text").first
    assert tag.is_visible() and tag.text_content() == "#0"
    assert page.locator("#faces canvas.thumb").count() == 1
    box = page.locator("#overlay rect.face-box").bounding_box()
    image = page.locator("#photo").bounding_box()
    assert image["x"] <= box["x"] and box["x"] + box["width"] <= image["x"] + image["width"]
    shot = save_screenshot(page, tmp_path, "dashboard-photo.png")
    assert shot.stat().st_size > 10_000


def test_api_docs_render_without_internet(server, page, tmp_path):
    """``/docs`` draws Swagger UI with every request to a host other than the server refused."""
    refused: list[str] = []

    def loopback_only(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", loopback_only)
    page.goto(server + "/docs")
    analyze = page.locator(
        ".opblock.opblock-post:has(.opblock-summary-path[data-path='/v1/analyze'])"
    )
    analyze.wait_for(timeout=30_000)
    assert analyze.locator(".opblock-summary-method").inner_text() == "POST"
    assert analyze.locator(".opblock-summary-path").inner_text() == "/v1/analyze"
    assert page.locator(".opblock").count() >= 9  # every endpoint, not just one
    assert not refused, f"/docs asked for outside files: {refused}"
    save_screenshot(page, tmp_path, "docs.png")


def test_keyboard_only_use_and_phone_layout(server, browser, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    page.goto(server + "/")
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert {"file-input", "webcam-button", "demo-button"} <= set(focused)
    page.focus("#demo-button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#overlay rect.face-box")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no horizontal scrolling on a phone-sized screen"
    for control in ("#file-input", "#opt-max-faces", "#opt-every", "#opt-key"):
        assert page.locator(f"label[for='{control[1:]}']").count() == 1, control
    save_screenshot(page, tmp_path, "dashboard-phone.png")
    context.close()


def test_webcam_frames_go_to_the_api(server, page):
    page.goto(server + "/")
    with page.expect_response(lambda r: "/v1/analyze" in r.url and r.status == 200):
        page.click("#webcam-button")
    assert page.get_attribute("#webcam-button", "aria-pressed") == "true"
    assert page.locator("#webcam").is_visible()
    page.click("#webcam-button")
    assert page.get_attribute("#webcam-button", "aria-pressed") == "false"


MOCK_FACES = {
    "image": {"width": 512, "height": 512, "models": {"smile": "smile_s"}},
    "faces": [
        {
            "id": 0,
            "box": {"x1": 170.0, "y1": 60.0, "x2": 280.0, "y2": 175.0},
            "score": 0.95,
            "smile": 0.97,
            "smiling": True,
            "smile_score": 8.4,
            "top_emotion": "happiness",
            "emotions": {
                "neutral": 0.02,
                "happiness": 0.9,
                "surprise": 0.03,
                "sadness": 0.01,
                "anger": 0.01,
                "disgust": 0.01,
                "fear": 0.01,
                "contempt": 0.01,
            },
        }
    ],
}


def test_smile_scores_and_emotion_bars_render(server, page, tmp_path):
    """The rendering of smile fields, with the API answer stubbed (no smile model needed)."""
    _answer_photos_with_mock_faces(page)
    page.goto(server + "/")
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#overlay rect.face-box.smiling")
    assert page.locator("#overlay .tag-text").first.text_content() == "#0"
    card = page.inner_text("#faces li.face-card")
    assert "8.4/10" in card and "smiling" in card and "mostly happiness" in card
    assert page.locator("#faces dl.bars dt").count() == 8
    assert "90%" in page.inner_text("#faces dl.bars")
    save_screenshot(page, tmp_path, "dashboard-smile.png")


def test_video_timeline_with_episodes_and_best_frame(server, page, tmp_path):
    """A video job end to end on the real server, then the chart with stubbed episodes.
    The downloads are named after the video (they were named by the job id)."""
    import cv2
    import numpy as np

    made = tmp_path / "clip.webm"
    face = cv2.resize(data.astronaut(), (256, 256))
    writer = cv2.VideoWriter(str(made), cv2.VideoWriter_fourcc(*"VP80"), 10, (256, 256))
    for i in range(20):
        writer.write(cv2.cvtColor(np.roll(face, i, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    clip = made.rename(tmp_path / "fête party.webm")

    def add_episode(route):
        response = route.fetch()
        job = response.json()
        if job.get("status") == "done":
            job["result"]["tracks"][0]["episodes"] = [
                {"start_time": 0.3, "end_time": 1.2, "peak_time": 0.8}
            ]
        route.fulfill(response=response, body=json.dumps(job))

    def route_job(route):
        if "/frames" in route.request.url:
            route.continue_()
        else:
            add_episode(route)

    page.route("**/v1/videos/*", route_job)
    page.goto(server + "/")
    page.click(".options summary")  # the options panel opens like any <details>
    page.fill("#opt-every", "1")
    page.set_input_files("#file-input", str(clip))
    try:
        page.wait_for_selector(".track svg.chart path.line", timeout=60_000)
    except sync_api.TimeoutError:
        pytest.fail(f"{page.inner_text('#message')!r} {page.inner_text('#video-result')!r}")
    assert page.locator(".track").count() == 1
    assert page.locator(".track svg.chart rect.episode").count() == 1
    assert "1 smile episode" in page.inner_text(".track")
    # drawn: the canvas has the frame's size (an undrawn canvas is 300 px wide)
    page.wait_for_function("document.querySelector('.best-frame canvas')?.width === 256")
    assert page.locator("#downloads").is_visible()
    save_screenshot(page, tmp_path, "dashboard-video.png")
    for link, name in [
        ("#download-json", "fête_party_smiles.json"),
        ("#download-csv", "fête_party.csv"),
    ]:
        with page.expect_download() as saved:
            page.click(link)
        assert saved.value.suggested_filename == name


GROUP = REPO / "tests" / "data" / "solvay_1927.jpg"


@pytest.mark.parametrize(
    ("name", "viewport"),
    [("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})],
)
def test_group_photo_fits_and_links_faces_to_their_rows(server, browser, tmp_path, name, viewport):
    """The 1927 Solvay photo (28 faces): no sideways scroll, every number inside the photo,
    one thumbnail per face, the compact sortable table, and face <-> row highlighting."""
    context = browser.new_context(viewport=viewport, has_touch=name == "phone")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server + "/")
    page.set_input_files("#file-input", str(GROUP))
    page.wait_for_selector("#overlay g.face")
    n = page.locator("#overlay g.face").count()
    assert n >= 20
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    # many faces: the table, one row and one thumbnail per face, in reading order
    assert page.locator("#face-table-wrap").is_visible()
    assert page.locator("#face-table tbody tr").count() == n
    assert page.locator("#face-table canvas.thumb").count() == n
    ids = page.eval_on_selector_all("#face-table tbody th", "els => els.map(e => e.textContent)")
    assert ids == [f"#{i}" for i in range(n)]
    photo = page.locator("#photo").bounding_box()
    for tag in page.locator("#overlay rect.tag").all():
        b = tag.bounding_box()
        assert b["x"] >= photo["x"] - 1 and b["x"] + b["width"] <= photo["x"] + photo["width"] + 1
        assert b["y"] >= photo["y"] - 1 and b["y"] + b["height"] <= photo["y"] + photo["height"] + 1
    # a face on the photo <-> its row
    face = page.locator('#overlay g.face[data-face="5"]')
    if name == "phone":
        face.tap()
    else:
        face.hover()
    assert "active" in page.get_attribute('#face-table tr[data-face="5"]', "class")
    page.locator('#face-table tr[data-face="3"]').hover()
    assert "active" in page.get_attribute('#overlay g.face[data-face="3"]', "class")
    # sortable: by smile score, highest first
    page.click("#face-table th button:has-text('smile')")
    scores = page.eval_on_selector_all(
        "#face-table tbody td:nth-child(3)", "els => els.map(e => parseFloat(e.textContent))"
    )
    if all(s == s for s in scores):  # numbers (a smile model ships)
        assert scores == sorted(scores, reverse=True)
    save_screenshot(page, tmp_path, f"dashboard-group-{name}.png")
    # the cards view: one card and one thumbnail per face, still no sideways scroll
    page.click("#view-cards")
    assert page.locator("#faces li.face-card").count() == n
    assert page.locator("#faces canvas.thumb").count() == n
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    save_screenshot(page, tmp_path, f"dashboard-group-cards-{name}.png")
    context.close()
    assert not errors, errors


def test_tiff_photo_is_shown_as_the_server_draws_it(server, page, tmp_path):
    """Chromium cannot decode TIFF: the dashboard said "Found 1 face" over a broken image
    (naturalWidth 0, the boxes squashed into a 16-pixel strip, blank thumbnails). It now
    shows the server's JPEG drawing (format=jpeg) with the overlay over it."""
    from PIL import Image

    tiff = tmp_path / "astronaut.tif"
    Image.open(data.path("astronaut.jpg")).save(tiff)
    page.goto(server + "/")
    page.wait_for_selector("#health:has-text('Service ok')")
    with page.expect_response(lambda r: "format=jpeg" in r.url and r.status == 200) as drawn:
        page.set_input_files("#file-input", str(tiff))
    assert drawn.value.headers["content-type"] == "image/jpeg"
    page.wait_for_selector("#overlay rect.face-box")
    assert page.evaluate("document.getElementById('photo').naturalWidth") == 512
    message = page.inner_text("#message")
    assert "Found 1 face in astronaut.tif" in message and "server's drawing" in message
    photo = page.locator("#photo").bounding_box()
    overlay = page.locator("#overlay").bounding_box()
    assert photo["height"] > 300 and abs(overlay["height"] - photo["height"]) < 2
    box = page.locator("#overlay rect.face-box").bounding_box()
    assert box["height"] > 50 and photo["y"] <= box["y"] <= photo["y"] + photo["height"]
    lit = page.evaluate(
        """() => { const c = document.querySelector('#faces canvas.thumb');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return d.some((v, i) => i % 4 !== 3 && v > 0); }"""
    )
    assert lit, "the face thumbnail is blank"
    save_screenshot(page, tmp_path, "dashboard-tiff.png")


def fake_video_job(
    page, rows: list[dict], track: dict | None = None, preview: bytes | None = None
) -> None:
    """Answer the dashboard's video upload, job and frame table with a finished job
    (``track`` adds to its one track, ``preview`` is its preview video, a WebM)."""
    job = {
        "id": "j",
        "status": "done",
        "progress": 1.0,
        "frames_done": len(rows),
        "frames_total": len(rows),
        "video": {"fps": 10, "frames": 30, "seconds": 3.0, "width": 64, "height": 64},
        "params": {},
        "error": None,
        "frames_url": "/v1/videos/j/frames",
        "result": {
            "sampling": "every frame from 0 s to 3 s (the whole video)",
            "tracks": [
                {
                    "track_id": 0,
                    "first_time": 0.0,
                    "last_time": 2.9,
                    "episodes": [],
                    **(track or {}),
                }
            ],
        },
    }
    if preview is not None:
        job["preview_url"] = "/v1/videos/j/preview"
        page.route(
            "**/v1/videos/j/preview",
            lambda route: route.fulfill(status=200, content_type="video/webm", body=preview),
        )

    def answer(body, status=200):
        return lambda route: route.fulfill(
            status=status, content_type="application/json", body=json.dumps(body)
        )

    page.route(
        "**/v1/videos?*", answer({"id": "j", "status": "queued", "url": "/v1/videos/j"}, 202)
    )
    page.route("**/v1/videos/j", answer(job))
    page.route("**/v1/videos/j/frames", answer({"rows": rows}))


@pytest.mark.parametrize(
    ("column", "value", "axis"),
    [("smile_score", 1.0, ("1", "10")), ("smile", 0.02, ("0.0", "1.0"))],
    ids=["neutral-score", "probability"],
)
def test_video_chart_axis_is_fixed_by_metric(server, page, tmp_path, column, value, axis):
    """A neutral face (smile score 1.0 all along) was drawn at the top of a 0-1 axis under
    the title "smile score (1-10)": the score now always has the 1-10 axis, and only a
    probability gets 0-1."""
    rows = [{"time": i / 10, "frame": i, "face": 0, column: value} for i in range(30)]
    fake_video_job(page, rows)
    clip = _fake_clip(tmp_path)
    page.goto(server + "/")
    page.set_input_files("#file-input", str(clip))
    page.wait_for_selector(".track svg.chart path.line", state="attached")
    chart = page.locator(".track svg.chart")
    assert (
        chart.locator("text.y-min").text_content(),
        chart.locator("text.y-max").text_content(),
    ) == axis
    path = chart.locator("path.line").get_attribute("d")
    ys = {float(point.split(",")[1]) for point in path[1:].split("L")}
    bottom = float(chart.locator("line.axis").first.get_attribute("y1"))  # the time axis
    top = float(chart.locator("line.axis").nth(1).get_attribute("y1"))
    expected = bottom + (top - bottom) * (value - float(axis[0])) / (
        float(axis[1]) - float(axis[0])
    )
    assert len(ys) == 1 and abs(ys.pop() - expected) < 0.2, (path[:60], expected)


def blendshape_faces() -> dict:
    """``MOCK_FACES`` with the 52-blendshape block the dashboard asks for on photos."""
    names = [f"shape{i:02d}LongerName" for i in range(52)]
    face = {
        **MOCK_FACES["faces"][0],
        "blendshapes": {n: (i % 10) / 10 for i, n in enumerate(names)},
    }
    return {**MOCK_FACES, "faces": [face]}


@pytest.mark.parametrize(
    "viewport",
    [{"width": 844, "height": 390}, {"width": 1010, "height": 800}, {"width": 375, "height": 667}],
    ids=["phone-landscape", "beside-the-photo", "phone"],
)
def test_emotion_and_blendshape_bars_keep_their_width(server, browser, viewport):
    """At 844x390 (a phone turned sideways) the face card beside the photo left the
    emotion bars 4 px and the blendshape bars 0 px wide, their values outside the card;
    on phones a late CSS rule squeezed the blendshape bars to 16 px."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    body = json.dumps(blendshape_faces())
    page.route(
        "**/v1/analyze*",
        lambda route: route.fulfill(status=200, content_type="application/json", body=body),
    )
    page.goto(server + "/")
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#faces dl.bars.compact")
    widths = page.eval_on_selector_all(
        "#faces dl.bars:not(details dl) .bar",
        "els => els.map(e => e.getBoundingClientRect().width)",
    )
    assert len(widths) == 8 + 6 and min(widths) >= 40, widths
    card = page.locator("#faces li.face-card").bounding_box()
    rights = page.eval_on_selector_all(
        "#faces .bar-value", "els => els.map(e => e.getBoundingClientRect().right)"
    )
    assert max(rights) <= card["x"] + card["width"], (max(rights), card)
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    context.close()


@pytest.mark.parametrize("width", [375, 320])
def test_video_chart_text_is_readable_on_a_phone(server, browser, tmp_path, width):
    """The timeline was drawn 600 units wide whatever the screen: on a 375 px phone its
    axis labels and title came out 6 px tall. It was then drawn at least 300 units wide,
    so where it has less room (a 320 or 375 px phone) its 11 px text still shrank, to
    8.4 px at 320: it is drawn one unit per screen pixel, and its text keeps its size."""
    context = browser.new_context(viewport={"width": width, "height": 667})
    page = context.new_page()
    fake_video_job(
        page, [{"time": i / 10, "frame": i, "face": 0, "smile_score": 9.5} for i in range(30)]
    )
    clip = _fake_clip(tmp_path)
    page.goto(server + "/")
    page.set_input_files("#file-input", str(clip))
    page.wait_for_selector(".track svg.chart path.line", state="attached")
    heights = page.eval_on_selector_all(
        ".track svg.chart text", "els => els.map(e => e.getBoundingClientRect().height)"
    )
    assert len(heights) == 5 and min(heights) >= 9, heights
    scale = page.eval_on_selector(
        ".track svg.chart", "s => s.getBoundingClientRect().width / s.viewBox.baseVal.width"
    )
    assert scale == pytest.approx(1, abs=0.02)  # 11 px text is 11 px on screen
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    context.close()


#: visible controls a finger taps, with their size in CSS pixels, smaller than 40 px
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'a, button, summary, input:not(.visually-hidden-input), label.button')]
  .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden'
    && e.getBoundingClientRect().right > 0)
  .map((e) => [e.id || e.textContent.trim().slice(0, 24), e.getBoundingClientRect()])
  .filter(([, r]) => r.width < 40 || r.height < 40)
  .map(([name, r]) => `${name}: ${Math.round(r.width)}x${Math.round(r.height)}`)"""


@pytest.mark.parametrize("viewport", [(375, 667), (320, 568)], ids=["375", "320"])
def test_a_phone_user_can_tap_every_control_without_sideways_scrolling(
    server, browser, tmp_path, viewport
):
    """On a 320 px phone the page scrolled sideways (10 px): the photo's caption names
    the models (``face_landmark_478+face_blendshapes``), a word the sections grew to hold.
    And controls were too small for a finger (under 40 px): "Options" (32 px tall), the
    blendshapes' "all 52 coefficients" (19), the table's sort buttons (32 tall, "#" 28
    wide), "Cards"/"Table" (36), the JSON and CSV downloads (19) and the footer links (16).
    The smiliest frame lost 80 px of a 290 px column to a figure's default margins."""
    width, height = viewport
    context = browser.new_context(
        viewport={"width": width, "height": height}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    page.goto(server + "/")
    page.click(".options summary")
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#message:has-text('Found 1 face')")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.evaluate(SMALL_TARGETS)
    faces = {**MOCK_FACES, "faces": [{**MOCK_FACES["faces"][0], "id": i} for i in range(8)]}
    page.route(
        "**/v1/analyze*",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(faces)
        ),
    )
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#face-table tbody tr")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.evaluate(SMALL_TARGETS)  # the sort buttons of the table included
    clip = _grey_webm(tmp_path / "clip.webm")
    rows = [{"time": i / 10, "frame": i, "face": 0, "smile_score": 5.0} for i in range(10)]
    fake_video_job(page, rows, {"best_time": 0.4, "best_frame": 4}, clip.read_bytes())
    page.set_input_files("#file-input", str(clip))
    page.wait_for_function("document.querySelector('.best-frame canvas')?.width === 96")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.evaluate(SMALL_TARGETS)
    figure = page.locator(".best-frame").bounding_box()
    panel = page.locator(".track-body").bounding_box()
    assert figure["width"] >= panel["width"] - 1, (figure, panel)
    context.close()


def test_a_refused_photo_does_not_keep_the_previous_result(server, page):
    """After a good photo, a file the server refused left the previous photo's face cards,
    boxes and caption on show, over the broken image of the refused file."""
    answers = iter(
        [(200, MOCK_FACES), (422, {"error": {"status": 422, "message": "not an image"}})]
    )

    def answer(route):
        status, body = next(answers)
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/analyze*", answer)
    page.goto(server + "/")
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#faces li.face-card")
    page.set_input_files(
        "#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    page.wait_for_selector("#message.error")
    assert "Could not analyse notes.txt" in page.inner_text("#message")
    assert page.locator("#photo-result").is_hidden()


def test_a_refused_video_upload_stops_its_progress_bar(server, page):
    """A file the server refused as a video (415) left the progress bar running and the
    note promising "a playable preview ... when the analysis is done"."""
    page.goto(server + "/")
    page.wait_for_selector("#health:has-text('Service ok')")
    page.set_input_files(
        "#file-input", files=[{"name": "fake.mp4", "mimeType": "video/mp4", "buffer": b"hello\n"}]
    )
    page.wait_for_selector("#message.error")
    assert "not a video container" in page.inner_text("#message")
    assert page.inner_text("#video-status") == "Upload refused"
    assert page.get_attribute("#video-progress", "value") is not None  # not indeterminate
    assert page.locator("#video-note").is_hidden()
    assert page.locator("#video-local").is_hidden()


def test_an_option_out_of_range_is_shown_not_sent(server, page, tmp_path):
    """ "Most faces" 5000 went to the server and came back as "query.max_faces: Input
    should be less than or equal to 1000", -3 was quietly taken for "all faces", and
    "every n-th frame" 5000 was refused only after the whole video was uploaded. A value
    its field does not allow is now shown in the form, and nothing is sent."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    _answer_photos_with_mock_faces(page)
    page.goto(server + "/")
    page.click(".options summary")
    for value in ("5000", "-3", "1.5"):
        page.fill("#opt-max-faces", value)
        page.click("#demo-button")
        page.wait_for_selector("#message.error")
        assert page.inner_text("#message").startswith("Most faces: "), value
        assert page.evaluate("document.activeElement.id") == "opt-max-faces"
        page.fill("#opt-max-faces", "")
        page.evaluate("document.getElementById('message').className = 'message'")
    page.fill("#opt-every", "5000")
    page.set_input_files("#file-input", str(_fake_clip(tmp_path)))
    page.wait_for_selector("#message.error")
    assert "every n-th frame" in page.inner_text("#message")
    assert page.locator("#video-result").is_hidden()
    assert not sent
    page.fill("#opt-max-faces", "2")  # a photo does not use the video's option
    page.click("#demo-button")
    page.wait_for_selector("#message:has-text('Found 1 face')")
    assert [urlsplit(url).query for url in sent] == [
        "max_faces=2&stages=detect%2Clandmarks%2Cgeometry%2Cblendshapes%2Csmile"
    ]


def test_a_video_left_for_a_photo_does_not_take_the_message_back(server, page, tmp_path):
    """A photo chosen while a video job ran: the video's poll went on, and when the job
    ended "Finished clip.mp4." replaced the photo's "Found 1 face" (its section hidden)."""
    job = {"status": "running"}
    fake_video_job(page, [{"time": 0.0, "frame": 0, "face": 0, "smile_score": 5.0}])

    def job_status(route):
        body = {
            "id": "j", "status": job["status"], "progress": 0.5, "frames_done": 1,
            "frames_total": 2, "video": {"seconds": 1.0}, "error": None,
            "frames_url": "/v1/videos/j/frames", "result": {"tracks": []},
        }  # fmt: skip
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/videos/j", job_status)
    _answer_photos_with_mock_faces(page)
    clip = _fake_clip(tmp_path)
    page.goto(server + "/")
    with page.expect_request("**/v1/videos/j"):
        page.set_input_files("#file-input", str(clip))
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#message:has-text('Found 1 face')")
    job["status"] = "done"
    page.wait_for_timeout(2500)  # several poll intervals (700 ms)
    assert "Found 1 face in astronaut.jpg" in page.inner_text("#message")
    assert page.locator("#video-result").is_hidden()


DROP = """async (target) => {
  const blob = await (await fetch("/demo.jpg")).blob();
  const files = new DataTransfer();
  files.items.add(new File([blob], "astronaut.jpg", { type: "image/jpeg" }));
  const text = new DataTransfer();
  text.setData("text/plain", "hello");
  const fire = (type, data) => {
    const ev = new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true });
    document.querySelector(target).dispatchEvent(ev);
    return ev.defaultPrevented;
  };
  return [fire("dragover", text), fire("drop", text), fire("dragover", files), fire("drop", files)];
}"""


@pytest.mark.parametrize("target", ["header h1", "#dropzone"])
def test_a_file_dropped_anywhere_is_analysed_not_opened(server, page, target):
    """A file dropped outside the drop zone made the browser open it in place of the
    dashboard (the drop was not cancelled); it is now taken as if dropped on the zone.
    Dragged text is left alone, and a drop on the zone is analysed once."""
    calls: list[str] = []

    def answer(route):
        calls.append(route.request.url)
        route.fulfill(status=200, content_type="application/json", body=json.dumps(MOCK_FACES))

    page.route("**/v1/analyze*", answer)
    page.goto(server + "/")
    text_over, text_drop, file_over, file_drop = page.evaluate(DROP, target)
    assert file_over and file_drop  # the browser does not open the file
    if target != "#dropzone":
        assert not text_over and not text_drop
    page.wait_for_selector("#message:has-text('Found 1 face in astronaut.jpg')")
    page.wait_for_timeout(300)
    assert len(calls) == 1 and page.url.startswith(server)


@pytest.mark.parametrize(
    "viewport", [{"width": 1200, "height": 900}, {"width": 375, "height": 667}]
)
def test_a_tiny_video_is_shown_large_enough_for_its_controls(server, browser, tmp_path, viewport):
    """A 64x48 video was shown 64x48 px, too small for its player controls; it is scaled
    up (aspect ratio kept) without overflowing a 375 px phone."""
    import cv2
    import numpy as np

    clip = tmp_path / "tiny.webm"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"VP80"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    fake_video_job(page, [{"time": 0.0, "frame": 0, "face": 0, "smile_score": 5.0}])
    page.goto(server + "/")
    page.set_input_files("#file-input", str(clip))
    page.wait_for_function("document.querySelector('#video-local').videoWidth === 64")
    box = page.locator("#video-local").bounding_box()
    assert box["width"] >= min(300, viewport["width"] - 80), box
    assert box["width"] / box["height"] == pytest.approx(64 / 48, rel=0.02), box
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    context.close()


def _grey_webm(path: Path, size: int = 96, frames: int = 10) -> Path:
    """A plain grey VP8 WebM Chromium plays (no colour anywhere, so a drawn box shows)."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 10, (size, size))
    for _ in range(frames):
        writer.write(np.full((size, size, 3), 128, np.uint8))
    writer.release()
    return path


#: pixels of the best-frame picture in the box colour app.js draws (#1e8a4c)
BOX_PIXELS = """() => {
  const c = document.querySelector('.best-frame canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - 30) + Math.abs(d[i + 1] - 138) + Math.abs(d[i + 2] - 76) < 40) n++;
  }
  return n;
}"""


@pytest.mark.parametrize("preview", [True, False], ids=["from-the-preview", "from-the-upload"])
def test_the_smiliest_frame_shows_one_set_of_boxes(server, page, tmp_path, preview):
    """The "Smiliest frame" picture was cut from the server's preview, which has every
    face's box and number drawn on it, and then got its face's box drawn again (two boxes,
    a few pixels apart). A frame of the preview is now shown as it is; only a frame of the
    upload itself (no preview came) gets the box drawn."""
    clip = _grey_webm(tmp_path / "clip.webm")
    rows = [
        {"time": i / 10, "frame": i, "face": 0, "smile_score": 2.0 + (i == 4) * 6.0,
         "box.x1": 20.0, "box.y1": 20.0, "box.x2": 70.0, "box.y2": 70.0}
        for i in range(10)
    ]  # fmt: skip
    best = {"best_time": 0.4, "best_frame": 4}
    fake_video_job(page, rows, best, clip.read_bytes() if preview else None)
    page.goto(server + "/")
    page.set_input_files("#file-input", str(clip))
    # drawn: the canvas has the frame's size (300 x 150 is an undrawn canvas's)
    page.wait_for_function("document.querySelector('.best-frame canvas')?.width === 96")
    drawn = page.evaluate(BOX_PIXELS)
    if preview:
        assert drawn == 0, f"{drawn} pixels of a second box on the annotated preview's frame"
    else:
        assert drawn >= 4 * 40, drawn  # the 3 px outline of the 50 px box


def test_a_webcam_option_changed_while_it_runs_is_checked(server, page):
    """With the webcam on, "Most faces" 5000 went out with every frame (each refused by the
    server, "Webcam frame refused: query.max_faces ..."), and -3 was quietly taken for "all
    faces": only the start of the webcam checked the field. Each frame now checks it: the
    reason is shown in the form, no frame leaves with it, and the webcam stays on and goes
    on with the next valid value."""
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(urlsplit(r.url).query) if "/v1/analyze" in r.url else None,
    )
    page.goto(server + "/")
    page.click(".options summary")
    with page.expect_response(lambda r: "/v1/analyze" in r.url and r.status == 200):
        page.click("#webcam-button")
    for value in ("5000", "-3", "1.5"):
        page.fill("#opt-max-faces", value)
        page.wait_for_selector("#message.error")
        assert page.inner_text("#message").startswith("Most faces: "), value
        before = len(sent)
        page.wait_for_timeout(600)  # frames would have left meanwhile
        assert len(sent) == before, sent[before:]
        assert page.get_attribute("#webcam-button", "aria-pressed") == "true"
    with page.expect_request(lambda r: "max_faces=2" in r.url):
        page.fill("#opt-max-faces", "2")
    page.wait_for_selector("#message:not(.error)")
    assert page.inner_text("#message").startswith("Webcam on")
    assert not [q for q in sent if "max_faces" in q and "max_faces=2" not in q], sent
    page.click("#webcam-button")
    assert page.get_attribute("#webcam-button", "aria-pressed") == "false"


def test_a_slow_photo_answer_does_not_replace_the_next_photo(server, page):
    """A photo chosen while the previous one was still being analysed: the older, slower
    answer arrived last and drew its faces (and "Found 3 faces in solvay_1927.jpg") over
    the new photo, whose alt text still named the new file."""
    held = []
    three = {
        "image": {"width": 1600, "height": 1101},
        "faces": [
            {
                "id": i,
                "box": {"x1": 100 * i, "y1": 100, "x2": 100 * i + 50, "y2": 150},
                "score": 0.9,
            }
            for i in range(3)
        ],
    }

    def answer(route):
        if not held:
            held.append(route)  # the first photo's answer waits
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(MOCK_FACES))

    page.route("**/v1/analyze*", answer)
    page.goto(server + "/")
    with page.expect_request("**/v1/analyze*"):
        page.set_input_files("#file-input", str(GROUP))
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#message:has-text('Found 1 face in astronaut.jpg')")
    held[0].fulfill(status=200, content_type="application/json", body=json.dumps(three))
    page.wait_for_timeout(500)
    assert "Found 1 face in astronaut.jpg" in page.inner_text("#message")
    assert page.locator("#overlay rect.face-box").count() == 1
    assert page.inner_text("#photo-caption").startswith("512×512")


def running_video_job(page, deleted: list[str]) -> None:
    """Answer the dashboard's video upload with job ``j``, running until deleted."""
    page.route(
        "**/v1/videos?*",
        lambda route: route.fulfill(
            status=202,
            content_type="application/json",
            body=json.dumps({"id": "j", "status": "queued", "url": "/v1/videos/j"}),
        ),
    )

    def job(route):
        if route.request.method == "DELETE":
            deleted.append(route.request.url)
            route.fulfill(status=204)
            return
        body = {
            "id": "j", "status": "running", "progress": 0.25, "frames_done": 1,
            "frames_total": 4, "video": {"seconds": 1.0}, "error": None,
            "frames_url": "/v1/videos/j/frames",
        }  # fmt: skip
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/videos/j", job)


def test_a_video_job_can_be_cancelled(server, page, tmp_path):
    """The dashboard had no way to stop a video job: it ran to its end on the server,
    holding one of the DUCHENNE_MAX_JOBS places. "Cancel analysis" deletes it."""
    deleted: list[str] = []
    running_video_job(page, deleted)
    clip = _fake_clip(tmp_path)
    page.goto(server + "/")
    assert page.locator("#video-cancel").is_hidden()
    page.set_input_files("#file-input", str(clip))
    page.wait_for_selector("#video-status:has-text('running: 1 of 4 frames')")
    with page.expect_request(lambda r: r.method == "DELETE"):
        page.click("#video-cancel")
    assert deleted == [server + "/v1/videos/j"]
    assert page.inner_text("#message") == "Cancelled clip.mp4."
    assert page.inner_text("#video-status") == "Cancelled"
    assert page.locator("#video-cancel").is_hidden()
    assert page.get_attribute("#video-progress", "value") is not None  # not indeterminate


def test_a_video_left_for_a_photo_is_cancelled_on_the_server(server, page, tmp_path):
    """A photo chosen while a video job ran: the dashboard stopped following the job but
    left it running on the server (the next video waited behind it, or got 429)."""
    deleted: list[str] = []
    running_video_job(page, deleted)
    _answer_photos_with_mock_faces(page)
    clip = _fake_clip(tmp_path)
    page.goto(server + "/")
    page.set_input_files("#file-input", str(clip))
    page.wait_for_selector("#video-status:has-text('running')")
    with page.expect_request(lambda r: r.method == "DELETE"):
        page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#message:has-text('Found 1 face in astronaut.jpg')")
    assert deleted == [server + "/v1/videos/j"]


def test_a_video_upload_left_for_a_photo_is_not_followed(server, page, tmp_path):
    """A photo chosen while a video was still uploading: when the upload's answer came,
    the dashboard started polling that job and "Analysing clip.mp4…" replaced the
    photo's "Found 1 face"."""
    held = []
    polled: list[str] = []
    page.route("**/v1/videos?*", lambda route: held.append(route))
    page.route("**/v1/videos/j", lambda route: polled.append(route.request.url))
    _answer_photos_with_mock_faces(page)
    clip = _fake_clip(tmp_path)
    page.goto(server + "/")
    with page.expect_request("**/v1/videos?*"):
        page.set_input_files("#file-input", str(clip))
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#message:has-text('Found 1 face in astronaut.jpg')")
    with contextlib.suppress(sync_api.Error):  # the dashboard aborted the upload
        held[0].fulfill(
            status=202,
            content_type="application/json",
            body=json.dumps({"id": "j", "status": "queued", "url": "/v1/videos/j"}),
        )
    page.wait_for_timeout(1000)
    assert "Found 1 face in astronaut.jpg" in page.inner_text("#message")
    assert not polled


def api_status(url: str) -> int:
    """The server's own HTTP status for ``GET url`` (asked from here, not by the page)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def polls_see_running(route) -> None:
    """The dashboard's polls of a job see it running, whatever its state on the server (a
    short real job may end before the page is left); other requests reach the server."""
    if route.request.method != "GET":
        route.fallback()
        return
    job_id = route.request.url.rsplit("/", 1)[1]
    body = {
        "id": job_id, "status": "running", "progress": 0.25, "frames_done": 3,
        "frames_total": 12, "video": {"seconds": 1.2}, "error": None,
        "frames_url": f"/v1/videos/{job_id}/frames",
    }  # fmt: skip
    route.fulfill(status=200, content_type="application/json", body=json.dumps(body))


@pytest.mark.parametrize("leave", ["close", "navigate"])
def test_leaving_the_page_cancels_its_video_job(server, page, tmp_path, leave):
    """Closing the tab (or leaving the page) while a video job ran left the job running on
    the server, where it held the one job place (DUCHENNE_MAX_JOBS) and the next user
    waited for a result nobody would read. The page deletes it as it goes (pagehide)."""
    clip = write_video(tmp_path / "party.avi")
    page.route(re.compile(r".*/v1/videos/[^/?]+$"), polls_see_running)
    page.goto(server + "/")
    with page.expect_response("**/v1/videos?*") as created:
        page.set_input_files("#file-input", str(clip))
    url = server + created.value.json()["url"]
    page.wait_for_selector("#video-status:has-text('running')")
    assert api_status(url) == 200
    if leave == "close":
        page.close(run_before_unload=True)
    else:
        page.goto(server + "/healthz")
    deadline = time.monotonic() + 10
    while api_status(url) != 404:
        assert time.monotonic() < deadline, "the job outlived the page"
        time.sleep(0.1)


def test_leaving_the_page_keeps_a_finished_job(server, page, tmp_path):
    """Only an unfinished job is cancelled when the page goes: a finished one stays on the
    server for its time to live (JSON and CSV can still be fetched by its URL)."""
    clip = write_video(tmp_path / "party.avi")
    page.goto(server + "/")
    with page.expect_response("**/v1/videos?*") as created:
        page.set_input_files("#file-input", str(clip))
    url = server + created.value.json()["url"]
    page.wait_for_selector("#message:has-text('Finished party.avi')", timeout=60_000)
    page.close(run_before_unload=True)
    time.sleep(1)  # a DELETE sent on the way out would have arrived by now
    assert api_status(url) == 200
    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5).close()


THUMB_PIXELS = """() => Array.from(document.querySelector('#faces canvas.thumb')
  .getContext('2d').getImageData(0, 0, 96, 96).data)"""


def test_a_face_found_in_a_turned_photo_is_shown_upright(server, page):
    """Faces found in an upside-down or sideways photo (``rotation`` 180, 90, 270) had
    their thumbnails cut straight from the photo, so the card showed the face upside down
    or lying on its side; they are turned upright, and the card says how it was found."""
    face = MOCK_FACES["faces"][0]
    answers = iter([0, 180, 90])

    def answer(route):
        body = {**MOCK_FACES, "faces": [{**face, "rotation": next(answers)}]}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/analyze*", answer)
    page.goto(server + "/")
    thumbs = []
    for fact in ("face detector", "found upside down", "found lying sideways"):
        page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
        page.wait_for_selector(f"#faces li.face-card:has-text('{fact}')")
        if fact == "face detector":
            assert "found " not in page.inner_text("#faces li.face-card")
        thumbs.append(page.evaluate(THUMB_PIXELS))
    import numpy as np

    upright, upside_down, sideways = (np.array(t, np.int16).reshape(96, 96, 4) for t in thumbs)
    assert np.abs(upside_down - upright).mean() > 10  # the photo's own thumbnail is upright
    # the same pixels turned (up to the canvas's resampling): 180 and 90 counter-clockwise
    assert np.abs(upside_down - upright[::-1, ::-1]).mean() < 2
    assert np.abs(sideways - np.rot90(upright, 1)).mean() < 2


CONTRAST = """() => {
  const lum = (c) => {
    const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map((v) => Number(v) / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const opaque = (c) => c && !/^rgba\\(.*,\\s*0\\)$/.test(c) && c !== "transparent";
  const background = (el) => {
    for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor; if (opaque(c)) return c; }
    return "rgb(255, 255, 255)";
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") || !el.checkVisibility()) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join("");
    if (!text) continue;
    const r = ratio(getComputedStyle(el).color, background(el));
    if (r < 4.5) low.push(`${el.tagName}.${el.className} "${text.slice(0, 20)}": ${r.toFixed(2)}`);
  }
  for (const g of document.querySelectorAll("#overlay .face")) { // the numbers on the photo
    const r = ratio(getComputedStyle(g.querySelector(".tag-text")).fill, getComputedStyle(g.querySelector(".tag")).fill);
    if (r < 4.5) low.push(`tag ${g.getAttribute("class")}: ${r.toFixed(2)}`);
  }
  return low;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_key_text_meets_wcag_aa_contrast(server, browser, scheme):
    """Text below 4.5:1 against its background: the smiling scores of the face table
    (14 px, #1e8a4c on white, 4.4:1), the pressed "Stop webcam" button in the dark scheme
    (white on light red, 2.3:1) and the number of the highlighted face on the photo in
    the dark scheme (white on light orange, 1.8:1)."""
    faces = [
        {**MOCK_FACES["faces"][0], "id": i, "smiling": i % 2 == 0, "smile_score": 2.0 + i}
        for i in range(7)
    ]
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.route(
        "**/v1/analyze*",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({**MOCK_FACES, "faces": faces}),
        ),
    )
    page.goto(server + "/")
    page.click(".options summary")
    page.set_input_files("#file-input", str(data.path("astronaut.jpg")))
    page.wait_for_selector("#face-table tbody tr")
    page.hover("#face-table tbody tr")  # its face on the photo is highlighted
    low = page.evaluate(CONTRAST)
    page.click("#view-cards")
    page.hover("#faces li.face-card")
    low += page.evaluate(CONTRAST)
    with page.expect_response(lambda r: "/v1/analyze" in r.url):
        page.click("#webcam-button")
    assert page.get_attribute("#webcam-button", "aria-pressed") == "true"
    low += page.evaluate(CONTRAST)
    page.click("#webcam-button")
    context.close()
    assert not low, low
