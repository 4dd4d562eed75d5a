"""Video jobs: the job manager, the ``/v1/videos`` endpoints and their limits.

The HTTP layer and the job pool are tested with a stand-in analysis function, so they
are covered whatever state ``duchenne.analysis.video`` is in; the tests at the end run the
real ``duchenne.analyze_video``.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from duchenne.errors import VideoDecodeError, VideoOpenError
from duchenne.server.jobs import JobManager, TooManyJobsError, probe_video

from .conftest import require_server_deps, write_video

require_server_deps()

from duchenne.server.downloads import file_stem  # noqa: E402
from duchenne.server.schemas import JobCreated, JobStatus  # noqa: E402

from .test_analyze import assert_error  # noqa: E402


class FakeResult:
    def __init__(self, n: int) -> None:
        self.n = n

    def to_dict(self) -> dict:
        return {
            "faces": [{"track_id": 0, "episodes": [{"start_time": 0.1, "end_time": 0.5}]}],
            "frames": [{"t": i / 10, "track_id": 0, "smile_score": 5.0} for i in range(self.n)],
        }

    def to_records(self) -> list[dict]:
        return [{"t": i / 10, "track_id": 0, "emotions": {"happiness": 0.5}} for i in range(self.n)]


def fake_runner(
    gate: threading.Event | None = None, fail: Exception | None = None, table: bool = False
):
    """A stand-in for the analysis: 4 frames of progress, then a result (and a table file)."""

    def run(path: Path, params: dict, on_progress, table_path: Path) -> FakeResult:
        assert path.is_file()
        for i in range(4):
            if gate is not None:
                gate.wait(10)
            on_progress(i + 1)
        if fail is not None:
            raise fail
        if table:
            rows = [{"time": 0.0, "face": 0, "smile": None}, {"time": 0.1, "face": 0, "x": 1}]
            table_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return FakeResult(3)

    return run


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.avi")


@pytest.fixture
def fake_video_client(make_client, monkeypatch):
    """``make(runner, **settings)``: a client whose jobs run ``runner`` instead of analysis."""

    def make(runner, **settings):
        client = make_client(**settings)
        client.app.state.jobs.run_video = runner
        return client

    return make


# ----------------------------------------------------------------------------- job manager


def test_probe_reads_rate_frames_and_size(video):
    probe = probe_video(video)
    assert (probe.width, probe.height, probe.frames) == (160, 160, 12)
    assert probe.seconds == pytest.approx(1.2)


def test_manager_runs_reports_progress_and_deletes_the_upload(tmp_path, video):
    jobs = JobManager(fake_runner(), tmp_path, max_jobs=1, max_queued=1)
    job = jobs.submit(video, {"every": 1}, probe_video(video))
    wait_for(lambda: job.status == "done")
    assert job.progress == 1.0 and job.frames_done == 4 and job.frames_total == 12
    assert not video.exists()
    assert job.public()["result"]["frames"][0]["smile_score"] == 5.0
    assert job.table()[0] == {"t": 0.0, "track_id": 0, "emotions.happiness": 0.5}
    jobs.close(1)


def test_manager_bounds_running_and_queued_jobs(tmp_path, video):
    gate = threading.Event()
    jobs = JobManager(fake_runner(gate), tmp_path, max_jobs=1, max_queued=1)
    probe = probe_video(video)
    first = jobs.submit(video, {}, probe)
    second = jobs.submit(write_video(tmp_path / "b.avi"), {}, probe)
    with pytest.raises(TooManyJobsError):
        jobs.submit(write_video(tmp_path / "c.avi"), {}, probe)
    wait_for(lambda: first.status == "running")
    assert second.status == "queued"
    gate.set()
    wait_for(lambda: second.status == "done")
    jobs.close(1)


def test_manager_failures_cancel_and_expiry(tmp_path, video):
    probe = probe_video(video)
    jobs = JobManager(
        fake_runner(fail=VideoDecodeError("stopped at frame 3")), tmp_path, ttl_s=0.05
    )
    job = jobs.submit(video, {}, probe)
    wait_for(lambda: job.status == "failed")
    assert job.error == {"type": "VideoDecodeError", "message": "stopped at frame 3"}
    time.sleep(0.1)
    assert jobs.get(job.id) is None  # expired
    jobs.close(1)

    gate = threading.Event()
    jobs = JobManager(fake_runner(gate), tmp_path)
    job = jobs.submit(write_video(tmp_path / "b.avi"), {}, probe)
    wait_for(lambda: job.status == "running")
    assert jobs.delete(job.id) and jobs.get(job.id) is None
    gate.set()
    wait_for(lambda: job.status == "cancelled")
    jobs.close(1)


def test_error_messages_name_the_client_file_not_the_server_path(tmp_path, video):
    def cannot_open(path, params, on_progress, table_path):
        raise VideoOpenError(f"{path}: cannot open")

    jobs = JobManager(cannot_open, tmp_path)
    job = jobs.submit(video, {"filename": "mine.avi"}, probe_video(video))
    wait_for(lambda: job.status == "failed")
    assert job.error == {"type": "VideoOpenError", "message": "mine.avi: cannot open"}
    jobs.close(1)


def test_manager_hides_internal_errors(tmp_path, video):
    jobs = JobManager(fake_runner(fail=RuntimeError("/secret/path")), tmp_path)
    job = jobs.submit(video, {}, probe_video(video))
    wait_for(lambda: job.status == "failed")
    assert job.error["type"] == "InternalError" and "secret" not in job.error["message"]
    jobs.close(1)


def test_shutdown_lets_the_running_job_finish(tmp_path, video):
    gate = threading.Event()
    jobs = JobManager(fake_runner(gate), tmp_path, max_jobs=1, max_queued=2)
    probe = probe_video(video)
    running = jobs.submit(video, {}, probe)
    queued = jobs.submit(write_video(tmp_path / "c.avi"), {}, probe)
    wait_for(lambda: running.status == "running")
    threading.Timer(0.2, gate.set).start()
    jobs.close(10)
    assert running.status == "done" and queued.status == "cancelled"


# ----------------------------------------------------------------------------- HTTP layer


def test_upload_poll_and_fetch_csv(fake_video_client, video):
    client = fake_video_client(fake_runner())
    response = client.post("/v1/videos?every=2", files={"file": ("clip.avi", video.read_bytes())})
    assert response.status_code == 202
    created = JobCreated.model_validate(response.json())
    assert response.headers["location"] == created.url == f"/v1/videos/{created.id}"
    wait_for(lambda: client.get(created.url).json()["status"] == "done")
    status = JobStatus.model_validate(client.get(created.url).json())
    assert status.progress == 1.0 and status.params["every"] == 2
    assert status.params["filename"] == "clip.avi" and status.video.frames == 12
    assert status.result["faces"][0]["episodes"]
    table = client.get(f"{created.url}?format=csv")
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == 3 and rows[0]["emotions.happiness"] == "0.5"
    assert client.delete(created.url).status_code == 204
    assert_error(client.get(created.url), 404, "NotFound")
    assert_error(client.delete(created.url), 404, "NotFound")


def test_raw_body_upload(fake_video_client, video):
    client = fake_video_client(fake_runner())
    response = client.post("/v1/videos", content=video.read_bytes())
    assert response.status_code == 202


def test_frame_table_as_json_and_csv(fake_video_client, video):
    client = fake_video_client(fake_runner(table=True))
    url = client.post("/v1/videos", content=video.read_bytes()).json()["url"]
    wait_for(lambda: client.get(url).json()["status"] == "done")
    assert client.get(url).json()["frames_url"] == f"{url}/frames"
    rows = client.get(f"{url}/frames").json()["rows"]
    assert rows == [{"time": 0.0, "face": 0, "smile": None}, {"time": 0.1, "face": 0, "x": 1}]
    table = list(csv.DictReader(io.StringIO(client.get(f"{url}/frames?format=csv").text)))
    assert [r["x"] for r in table] == ["", "1"]
    assert client.get(f"{url}?format=csv").text == client.get(f"{url}/frames?format=csv").text
    job_id = url.rsplit("/", 1)[1]
    disposition = client.get(f"{url}/frames?format=csv").headers["content-disposition"]
    assert disposition == f'attachment; filename="{job_id}.csv"'
    folder = client.app.state.jobs.folder
    assert {p.suffix for p in folder.glob("*-frames.*")} == {".jsonl", ".csv"}
    client.delete(url)
    assert not list(folder.glob("*-frames.*"))  # deleting a job deletes its table and CSV


@pytest.mark.parametrize(
    ("filename", "stem"),
    [
        ("party.mp4", "party"),
        ("my party (1).MP4", "my_party_1"),
        ("clip.final.mov", "clip.final"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip.avi", "clip"),
        ('a"b;c\r\n.mp4', "a_b_c"),
        ("fe\u0302te.mp4", "f\u00eate"),  # macOS: e + combining circumflex
        ("日本語.mp4", "日本語"),
        ("x" * 100 + ".mp4", "x" * 64),
        (".mp4", ""),
        ("--.mp4", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_file_stem_keeps_letters_digits_and_dashes(filename, stem):
    assert file_stem(filename) == stem


def test_downloads_are_named_after_the_upload(fake_video_client, video):
    """Saved results were named by the job id (``3f2a....csv``); they are named after the
    uploaded video, for the dashboard and for ``curl -OJ`` alike."""
    client = fake_video_client(fake_runner(table=True))
    names = {}
    for upload in ("my party.avi", "fête.avi"):
        url = client.post("/v1/videos", files={"file": (upload, video.read_bytes())}).json()["url"]
        wait_for(lambda url=url: client.get(url).json()["status"] == "done")
        names[upload] = [
            client.get(f"{url}{path}").headers["content-disposition"]
            for path in ("", "?format=csv", "/frames", "/frames?format=csv")
        ]
    assert names["my party.avi"] == [
        'inline; filename="my_party_smiles.json"',
        'attachment; filename="my_party.csv"',
        'inline; filename="my_party.json"',
        'attachment; filename="my_party.csv"',
    ]
    assert names["fête.avi"][:2] == [
        "inline; filename*=utf-8''f%C3%AAte_smiles.json",
        "attachment; filename*=utf-8''f%C3%AAte.csv",
    ]


def test_csv_before_done_is_409(fake_video_client, video):
    gate = threading.Event()
    client = fake_video_client(fake_runner(gate))
    url = client.post("/v1/videos", content=video.read_bytes()).json()["url"]
    assert_error(client.get(f"{url}?format=csv"), 409, "NotReady")
    assert_error(client.get(f"{url}/frames"), 409, "NotReady")
    assert client.get(url).json()["status"] in ("queued", "running")
    gate.set()


def test_video_limits_and_bad_uploads(fake_video_client, video, tmp_path):
    gate = threading.Event()
    client = fake_video_client(
        fake_runner(gate), max_jobs=1, max_queued_jobs=0, max_video_seconds=1.0
    )
    long_clip = write_video(tmp_path / "long.avi", frames=20)  # 2 s at 10 fps
    assert_error(client.post("/v1/videos", content=long_clip.read_bytes()), 413, "VideoTooLong")
    assert_error(client.post("/v1/videos", content=b"not a video"), 415, "UnsupportedFormatError")
    playlist = b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n"  # FFmpeg would follow it
    assert_error(client.post("/v1/videos", content=playlist), 415, "UnsupportedFormatError")
    concat = b"ffconcat version 1.0\nfile /etc/passwd\n"
    assert_error(client.post("/v1/videos", content=concat), 415, "UnsupportedFormatError")
    fake_avi = b"RIFF\x00\x10\x00\x00AVI LIST" + b"\x00" * 200
    assert_error(client.post("/v1/videos", content=fake_avi), 422, "VideoOpenError")
    assert_error(client.post("/v1/videos", content=b""), 422, "EmptyUpload")
    assert_error(client.get("/v1/videos?every=0"), 405)
    assert_error(client.post("/v1/videos?every=0", content=b"x"), 422, "ValidationError")
    nan = assert_error(client.post("/v1/videos?smile_threshold=nan", content=b"x"), 422)
    assert nan["message"] == "query.smile_threshold: Input should be a finite number"
    two = [("file", ("a.avi", b"x")), ("file", ("b.avi", b"y"))]
    body = assert_error(client.post("/v1/videos", files=two), 413, "TooManyFiles")
    assert body["message"] == "at most 1 file per request"
    short = write_video(tmp_path / "short.avi", frames=5)
    assert client.post("/v1/videos", content=short.read_bytes()).status_code == 202
    busy = client.post("/v1/videos", content=short.read_bytes())
    assert_error(busy, 429, "TooManyJobsError")
    assert busy.headers["retry-after"]
    gate.set()


def test_video_body_limit(fake_video_client, video):
    client = fake_video_client(fake_runner(), max_video_bytes=2048)
    assert_error(client.post("/v1/videos", content=video.read_bytes()), 413, "PayloadTooLarge")
    assert not list(client.app.state.jobs.folder.glob("upload-*"))


def test_unknown_job_is_404(client):
    assert_error(client.get("/v1/videos/does-not-exist"), 404, "NotFound")


# ----------------------------------------------------------------------------- real analysis


def test_real_video_job_end_to_end(client, video):
    response = client.post("/v1/videos?every=3", files={"file": ("clip.avi", video.read_bytes())})
    assert response.status_code == 202, response.text
    url = response.json()["url"]
    wait_for(lambda: client.get(url).json()["status"] in ("done", "failed"), timeout=120)
    status = client.get(url).json()
    assert status["status"] == "done", status["error"]
    JobStatus.model_validate(status)
    result = status["result"]
    assert "/tmp" not in str(result) and "outputs" not in result  # no server paths leak
    assert result["source"] == "clip.avi"
    assert result["complete"] is True and result["frames_analysed"] == 4  # frames 0,3,6,9
    assert [t["track_id"] for t in result["tracks"]] == [0]
    assert status["progress"] == 1.0 and status["frames_done"] == 4
    rows = client.get(f"{url}/frames").json()["rows"]
    assert len(rows) == 4 and {r["face"] for r in rows} == {0}
    assert [r["frame"] for r in rows] == [0, 3, 6, 9]
    table = client.get(f"{url}?format=csv")
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(table.text)))) == 4
    # the MJPG AVI upload gets an annotated preview a browser plays (H.264 MP4 with PyAV)
    assert status["preview_url"] == f"{url}/preview"
    preview = client.get(status["preview_url"])
    assert preview.status_code == 200 and preview.headers["content-type"] in (
        "video/mp4",
        "video/webm",
    )
    # shown inline, and named after the upload when saved (it had no name at all)
    ext = preview.headers["content-type"].split("/")[1]
    assert preview.headers["content-disposition"] == f'inline; filename="clip_preview.{ext}"'
    if preview.headers["content-type"] == "video/mp4":
        av = pytest.importorskip("av")
        with av.open(io.BytesIO(preview.content)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert sum(1 for _ in container.decode(stream)) == 4
    assert client.get(f"{url}?smile_thresold=0.5").status_code == 422  # typo refused


def test_csv_of_a_video_without_faces_has_the_header_of_duchenne_video(client, analyzer, tmp_path):
    """A video with no face gave the CSV "\\n" (no header row: pandas.read_csv raised
    EmptyDataError); it is now the file ``duchenne video -o frames.csv`` writes."""
    import cv2

    from duchenne.analysis.video import analyze_video

    clip = tmp_path / "grey.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for _ in range(3):
        writer.write(np.full((48, 64, 3), 120, np.uint8))
    writer.release()
    url = client.post("/v1/videos", content=clip.read_bytes()).json()["url"]
    wait_for(lambda: client.get(url).json()["status"] in ("done", "failed"), timeout=60)
    assert client.get(url).json()["status"] == "done"
    assert client.get(f"{url}/frames").json()["rows"] == []
    table = client.get(f"{url}/frames?format=csv")
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    cli = analyze_video(analyzer, clip, output=tmp_path / "cli.csv").outputs["frames"]
    assert table.content == Path(cli).read_bytes()
    header = next(csv.reader(io.StringIO(table.text)))
    assert header[:4] == ["time", "frame", "face", "detected"] and "smile_score" in header


def test_real_video_is_cut_at_the_length_limit(make_client, tmp_path):
    client = make_client(max_video_seconds=0.5)
    clip = write_video(tmp_path / "unknown_length.avi", frames=12)  # 1.2 s, over the limit
    assert_error(client.post("/v1/videos", content=clip.read_bytes()), 413, "VideoTooLong")


def test_video_frame_pixels_are_limited_before_decoding(fake_video_client, tmp_path, monkeypatch):
    """A 2-frame 16384x8640 MP4 was accepted and took the server to 2.6 GB; frames over
    ``max_video_pixels`` are now refused with 413 from the header, before any frame is
    decoded."""
    import cv2

    client = fake_video_client(fake_runner(), max_video_pixels=100 * 100)
    big = write_video(tmp_path / "big.avi", frames=3, size=160)  # 25,600 px per frame
    reads: list[int] = []
    real = cv2.VideoCapture

    class CountingCapture:
        def __init__(self, *args) -> None:
            self._cap = real(*args)

        def read(self, *args):
            reads.append(1)
            return self._cap.read(*args)

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", CountingCapture)
    body = assert_error(client.post("/v1/videos", content=big.read_bytes()), 413)
    assert body["type"] == "ImageTooLargeError" and "160x160" in body["message"]
    assert reads == []  # refused from the header
    assert not list(client.app.state.jobs.folder.glob("upload-*"))
    small = write_video(tmp_path / "small.avi", frames=3, size=96)
    assert client.post("/v1/videos", content=small.read_bytes()).status_code == 202


def test_video_jobs_run_the_default_stages_unless_asked(make_client, full_analyzer, tmp_path):
    """The service loads the opt-in blendshapes for the requests that want them; a video
    job used to run them always (52 ``blendshapes.*`` columns per row). ``stages`` takes
    the values of ``/v1/analyze``; the sampling names the real span and ordinal."""
    client = make_client(full_analyzer)
    clip = write_video(tmp_path / "clip.avi", frames=12, fps=10.0)  # 1.2 s

    def run(query: str) -> tuple[dict, list[dict]]:
        response = client.post(f"/v1/videos{query}", content=clip.read_bytes())
        assert response.status_code == 202, response.text
        url = response.json()["url"]
        wait_for(lambda: client.get(url).json()["status"] in ("done", "failed"), timeout=120)
        status = client.get(url).json()
        assert status["status"] == "done", status["error"]
        return status, client.get(f"{url}/frames").json()["rows"]

    status, rows = run("?every=2")
    assert status["params"]["stages"] == ["detect", "landmarks", "geometry", "smile"]
    assert "blendshapes" not in status["result"]["models"]
    assert len(rows) == 6 and not [k for k in rows[0] if k.startswith("blendshapes.")]
    assert rows[0]["smile_score"] is not None and rows[0]["geometry.mouth_width"] is not None
    assert status["result"]["sampling"] == "every 2nd frame from 0 s to 1.2 s (the whole video)"

    status, rows = run("?stages=detect,blendshapes,smile")
    assert status["params"]["stages"] == ["detect", "landmarks", "blendshapes", "smile"]
    assert "blendshapes" in status["result"]["models"]
    assert len([k for k in rows[0] if k.startswith("blendshapes.")]) == 52
    assert status["result"]["sampling"] == "every frame from 0 s to 1.2 s (the whole video)"

    for bad in ("stages=", "stages=detect,nose"):
        body = assert_error(client.post(f"/v1/videos?{bad}", content=clip.read_bytes()), 422)
        assert body["type"] == "ValidationError" and body["message"].startswith("stages: ")
    assert not list(client.app.state.jobs.folder.glob("upload-*"))  # refused before upload


def test_truncated_video_names_the_client_file_and_the_real_span(client, tmp_path):
    """A video cut in half gave a partial result whose ``error`` named the upload's server
    path (/tmp/duchenne-jobs-.../upload-....video) and whose sampling claimed "from 0 s to
    1.2 s (the whole video)" although decoding stopped at 0.5 s."""
    clip = write_video(tmp_path / "clip.avi", frames=12, fps=10.0)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    response = client.post("/v1/videos", files={"file": ("half.avi", cut.read_bytes())})
    assert response.status_code == 202, response.text
    url = response.json()["url"]
    wait_for(lambda: client.get(url).json()["status"] in ("done", "failed"), timeout=60)
    result = client.get(url).json()["result"]
    assert result["complete"] is False
    assert "half.avi" in result["error"] and "upload-" not in result["error"], result["error"]
    assert str(client.app.state.jobs.folder) not in json.dumps(result)
    last = result["time_range"][1]
    assert result["sampling"] == (
        f"every frame from 0 s to {last:g} s (decoding stopped there: the rest of the video "
        "could not be read)"
    )


def test_sampling_names_the_span_and_the_cap():
    from types import SimpleNamespace

    from duchenne.io.frames import ordinal
    from duchenne.server.jobs import describe_sampling

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 103, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "103rd", "111th",
    ]  # fmt: skip
    known = SimpleNamespace(info=SimpleNamespace(duration=3.0, fps=10.0), fps=5.0, last_time=2.8)
    assert describe_sampling(2, 600, known) == "every 2nd frame from 0 s to 3 s (the whole video)"
    unknown = SimpleNamespace(info=SimpleNamespace(duration=None, fps=10.0), fps=10.0)
    capped = describe_sampling(1, 5, SimpleNamespace(**vars(unknown), last_time=4.9))
    assert capped.startswith("every frame from 0 s to 5 s (the service's length limit")
    short = describe_sampling(3, 5, SimpleNamespace(**vars(unknown), last_time=2.1))
    assert (
        short == "every 3rd frame from 0 s to the end of the video (last analysed frame at 2.1 s)"
    )
    broken = SimpleNamespace(info=SimpleNamespace(duration=3.0, fps=10.0), fps=10.0)
    none = describe_sampling(
        1, 600, SimpleNamespace(**vars(broken), complete=False, last_time=None)
    )
    assert none == "every frame (decoding stopped before any frame was analysed)"
