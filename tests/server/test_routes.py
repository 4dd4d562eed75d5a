"""HTTP semantics every route shares: HEAD wherever GET works, and the refusals of a
``Range`` header in the service's JSON error shape."""

from __future__ import annotations

import pytest

from .conftest import require_server_deps, write_video

require_server_deps()

from duchenne.server.jobs import preview_path_for  # noqa: E402

from .test_analyze import assert_error  # noqa: E402
from .test_videos import fake_runner, wait_for  # noqa: E402

#: GET routes kept out of the OpenAPI document (the dashboard and its files)
HIDDEN_GETS = ("/", "/demo.jpg", "/static/app.js", "/static/style.css", "/docs")
#: headers a HEAD must repeat from its GET
SAME_HEADERS = ("content-type", "content-length", "content-disposition", "etag", "accept-ranges")
PREVIEW_BYTES = 5000


def runner_with_preview(path, params, on_progress, table_path):
    """``fake_runner(table=True)`` that also writes a preview where the real runner does."""
    result = fake_runner(table=True)(path, params, on_progress, table_path)
    preview_path_for(table_path).write_bytes(bytes(range(256)) * (PREVIEW_BYTES // 256 + 1))
    return result


@pytest.fixture
def done_job(make_client, tmp_path):
    """A client and the URL of a finished job with a frame table and a preview."""

    def make(**settings):
        client = make_client(**settings)
        client.app.state.jobs.run_video = runner_with_preview
        video = write_video(tmp_path / "clip.avi").read_bytes()
        headers = {"X-API-Key": settings["api_key"]} if "api_key" in settings else {}
        response = client.post("/v1/videos", files={"file": ("clip.avi", video)}, headers=headers)
        url = response.json()["url"]
        wait_for(lambda: client.get(url, headers=headers).json()["status"] == "done")
        return client, url

    return make


def get_paths(client, job_url: str) -> list[str]:
    """Every GET route of the app (the documented ones from the OpenAPI document, a job's
    routes for a finished job, the CSV form too), and the dashboard's."""
    spec = client.get("/openapi.json").json()
    documented = [path for path, ops in spec["paths"].items() if "get" in ops]
    assert "/v1/videos/{job_id}/preview" in documented
    paths = [path.replace("/v1/videos/{job_id}", job_url) for path in documented]
    return [*paths, f"{job_url}/frames?format=csv", f"{job_url}?format=csv", *HIDDEN_GETS]


def test_every_get_route_answers_head_with_the_same_headers(done_job):
    """HEAD on a video job, its frame table and its preview (and /v1/models, /metrics)
    answered 405 ``Allow: GET``: only /, /demo.jpg and /healthz took HEAD. Every GET route
    now answers it with GET's status and headers and no body, and the OpenAPI document
    still lists GET alone."""
    client, url = done_job()
    paths = get_paths(client, url)
    assert len(paths) >= 13
    for path in paths:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, (path, head.status_code)
        assert head.content == b"", path
        for name in SAME_HEADERS:
            if path == "/metrics" and name == "content-length":
                continue  # the counters have counted the GET meanwhile
            assert head.headers.get(name) == get.headers.get(name), (path, name)
        assert head.headers["content-length"].isdigit(), path
    assert client.head(f"{url}/preview").headers["content-length"] == str(
        len(client.get(f"{url}/preview").content)
    )
    spec = client.get("/openapi.json").json()
    assert not [path for path, ops in spec["paths"].items() if "head" in ops]
    allowed = client.put(url).headers["allow"]
    assert allowed == "DELETE, GET, HEAD"


def test_head_is_refused_as_get_is(done_job):
    """The twin HEAD route carries GET's dependencies: the API key, the query check, the
    404 of an unknown job (in the JSON error's headers)."""
    client, url = done_job(api_key="s3cret")
    for path in (url, f"{url}/preview", "/v1/models", "/metrics"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 401, path
        assert head.headers["content-type"] == "application/json", path
        assert head.headers["content-length"] == get.headers["content-length"], path
    key = {"X-API-Key": "s3cret"}
    assert client.head(f"{url}/preview", headers=key).status_code == 200
    assert client.head(f"{url}?formt=csv", headers=key).status_code == 422  # typo refused
    assert client.head("/v1/videos/nope/preview", headers=key).status_code == 404


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_range_past_the_end_is_a_json_416(done_job, method):
    """A Range past the end of the preview got 416 with an empty ``text/plain`` body; it
    is the service's JSON error now, ``Content-Range: bytes */size`` kept (RFC 9110
    section 15.5.17), on the job's files and the dashboard's alike."""
    client, url = done_job()
    size = len(client.get(f"{url}/preview").content)
    assert size >= PREVIEW_BYTES
    for path in (f"{url}/preview", f"{url}/frames?format=csv", "/demo.jpg", "/static/app.js"):
        full = len(client.get(path).content)
        response = client.request(method, path, headers={"Range": f"bytes={full + 10}-"})
        assert response.status_code == 416, path
        assert response.headers["content-range"] == f"bytes */{full}", path
        if method == "GET":
            error = assert_error(response, 416, "RangeNotSatisfiable")
            assert f"{full} bytes" in error["message"] and f"bytes={full + 10}-" in error["message"]
        else:
            assert response.content == b"" and response.headers["content-type"] == (
                "application/json"
            )


def test_a_malformed_range_is_a_json_400_and_good_ranges_still_work(done_job):
    """A malformed Range got 400 with a line of plain text; the ranges a video player asks
    for still get their 206 with the bytes."""
    client, url = done_job()
    path = f"{url}/preview"
    error = assert_error(client.get(path, headers={"Range": "bytes=5-2"}), 400, "MalformedRange")
    assert "bytes=5-2" in error["message"]
    whole = client.get(path).content
    part = client.get(path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(whole)}"
    tail = client.get(path, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == whole[-7:]
    assert client.get(path, headers={"Range": "bytes=0-"}).content == whole
