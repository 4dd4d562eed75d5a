"""Health, models, metrics, OpenAPI, auth, CORS, the error mapping, dashboard files, shutdown."""

from __future__ import annotations

import re
import threading
from html.parser import HTMLParser

import pytest

from duchenne import errors

from .conftest import SlowAnalyzer, require_server_deps

require_server_deps()

from duchenne.server.handlers import ERROR_STATUS, status_for  # noqa: E402
from duchenne.server.schemas import Health, ModelsInfo  # noqa: E402

from .test_analyze import assert_error  # noqa: E402

ENDPOINTS = {
    ("post", "/v1/analyze"),
    ("post", "/v1/analyze/batch"),
    ("post", "/v1/videos"),
    ("get", "/v1/videos/{job_id}"),
    ("get", "/v1/videos/{job_id}/frames"),
    ("delete", "/v1/videos/{job_id}"),
    ("get", "/v1/models"),
    ("get", "/healthz"),
    ("get", "/metrics"),
}


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    health = Health.model_validate(response.json())
    assert health.status == "ok" and health.queue == 0


def test_healthz_reports_shutdown_with_503(client):
    client.app.state.closing = True
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "shutting down"


def test_models_lists_active_and_shipped_models(client):
    info = ModelsInfo.model_validate(client.get("/v1/models").json())
    assert info.active["detector"] == "face_detection_short_range + face_detection_full_range"
    assert "face_landmark" in {m["name"] for m in info.available}
    assert info.smile_available == ("smile" in info.active)


def test_metrics_in_prometheus_text_format(client, demo_jpeg):
    client.post("/v1/analyze", content=demo_jpeg)
    client.post("/v1/analyze", content=b"junk")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'duchenne_http_requests_total{method="POST",route="/v1/analyze",status="200"} 1' in text
    assert 'duchenne_http_requests_total{method="POST",route="/v1/analyze",status="422"} 1' in text
    assert re.search(r'duchenne_http_request_duration_seconds_count\{route="/v1/analyze"\} 2', text)
    assert "duchenne_queue_depth 0" in text
    assert "duchenne_images_analyzed_total 1" in text
    assert "duchenne_faces_detected_total 1" in text
    assert 'duchenne_video_jobs{state="running"} 0' in text
    for line in text.splitlines():  # every sample line: name{labels} value
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{.*\})? [0-9.e+Inf-]+", line), line


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_refusals_are_counted_under_their_route_and_reason(make_client, small_jpeg, tmp_path):
    """503s from admission and 413s from Content-Length are answered before routing; they
    were counted as route="unmatched", and duchenne_rejected_total never moved."""
    from .conftest import write_video

    fake = SlowAnalyzer()
    fake.gate = threading.Event()
    client = make_client(
        fake,
        workers=1,
        max_queue=2,
        refuse_delay_s=0,
        max_body_bytes=4096,
        max_jobs=1,
        max_queued_jobs=0,
    )
    statuses: list[int] = []

    def post() -> None:
        statuses.append(client.post("/v1/analyze", content=small_jpeg).status_code)

    admitted = [threading.Thread(target=post) for _ in range(2)]
    for thread in admitted:
        thread.start()
    for _ in range(500):  # until both hold the two queue places
        if client.get("/healthz").json()["queue"] == 2:
            break
        threading.Event().wait(0.01)
    refused = [threading.Thread(target=post) for _ in range(10)]
    for thread in refused:
        thread.start()
    for thread in refused:
        thread.join(10)
    fake.gate.set()
    for thread in admitted:
        thread.join(10)
    assert sorted(statuses) == [200] * 2 + [503] * 10
    assert client.post("/v1/analyze", content=b"x" * 5000).status_code == 413  # by length

    def chunks():
        yield b"y" * 3000
        yield b"y" * 3000

    assert client.post("/v1/analyze", content=chunks()).status_code == 413  # while streaming
    assert (
        client.post("/v1/analyze/batch", files=[("files", ("a", b"z" * 5000))]).status_code == 413
    )
    assert client.get("/no/such/route").status_code == 404

    text = client.get("/metrics").text
    requests = "duchenne_http_requests_total"
    assert metric(text, requests, method="POST", route="/v1/analyze", status="503") == 10
    assert metric(text, requests, method="POST", route="/v1/analyze", status="413") == 2
    assert metric(text, requests, method="POST", route="/v1/analyze/batch", status="413") == 1
    unmatched = [line for line in text.splitlines() if line.startswith(requests + "{")]
    unmatched = [line for line in unmatched if 'route="unmatched"' in line]
    assert unmatched == [f'{requests}{{method="GET",route="unmatched",status="404"}} 1']
    rejected = "duchenne_rejected_total"
    assert metric(text, rejected, reason="queue_full", route="/v1/analyze") == 10
    assert metric(text, rejected, reason="body_too_large", route="/v1/analyze") == 2
    assert metric(text, rejected, reason="body_too_large", route="/v1/analyze/batch") == 1

    clip = write_video(tmp_path / "clip.avi", frames=3)

    class Done:
        def to_dict(self) -> dict:
            return {}

    def held_job(*args) -> Done:  # holds the only job place until the gate opens
        fake.gate.wait(10)
        return Done()

    client.app.state.jobs.run_video = held_job
    fake.gate.clear()
    assert client.post("/v1/videos", content=clip.read_bytes()).status_code == 202
    assert client.post("/v1/videos", content=clip.read_bytes()).status_code == 429
    fake.gate.set()
    text = client.get("/metrics").text
    assert metric(text, rejected, reason="too_many_jobs", route="/v1/videos") == 1
    assert metric(text, requests, method="POST", route="/v1/videos", status="429") == 1


def test_dashboard_files_are_counted_under_their_mount(client):
    """Files served by a mount (/static, /docs/static) were counted as route="unmatched",
    mixed with the 404s of unknown paths."""
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs/static/swagger-ui.css").status_code == 200
    assert client.get("/nope").status_code == 404
    text = client.get("/metrics").text
    requests = "duchenne_http_requests_total"
    assert metric(text, requests, method="GET", route="/static", status="200") == 1
    assert metric(text, requests, method="GET", route="/docs/static", status="200") == 1
    assert metric(text, requests, method="GET", route="unmatched", status="200") == 0
    assert metric(text, requests, method="GET", route="unmatched", status="404") == 1


def test_head_answers_like_get_on_the_dashboard_and_health_check(client):
    """HEAD / , /demo.jpg and /healthz answered 405 (HEAD /docs and /static/* worked):
    uptime probes and link checkers that send HEAD saw the service as broken."""
    for path in ("/", "/demo.jpg", "/healthz"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.headers["content-type"] == get.headers["content-type"], path
        assert head.content == b"", path
    client.app.state.closing = True
    assert client.head("/healthz").status_code == 503
    client.app.state.closing = False
    paths = client.get("/openapi.json").json()["paths"]
    assert "head" not in paths["/healthz"]  # the schema lists GET only


def test_every_endpoint_is_documented(client):
    spec = client.get("/openapi.json").json()
    found = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert ENDPOINTS <= found
    analyze = spec["paths"]["/v1/analyze"]["post"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(
        analyze["requestBody"]["content"]
    )
    assert {"200", "413", "415", "422", "503"} <= set(analyze["responses"])
    assert {p["name"] for p in analyze["parameters"]} >= {
        "stages",
        "max_faces",
        "min_face_size",
        "crop",
        "landmarks",
        "draw",
    }
    assert "FacesResult" in spec["components"]["schemas"]
    # a file that is not a video container is refused with 415 (docs/server.md's table)
    assert "415" in spec["paths"]["/v1/videos"]["post"]["responses"]
    assert client.get("/docs").status_code == 200


class AssetLinks(HTMLParser):
    """The ``<script src>`` and ``<link href>`` values of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.scripts.append(values["src"])
        elif tag == "link" and values.get("href"):
            self.links.append(values["href"])


def test_docs_page_loads_swagger_ui_from_the_server_itself(client):
    """``/docs`` works offline: Swagger UI's files come from ``/docs/static``, not a CDN."""
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    assets = AssetLinks()
    assets.feed(page.text)
    assert assets.scripts and assets.links
    kinds = {"js": ("text/javascript", "application/javascript"), "css": ("text/css",)}
    for url in assets.scripts + assets.links:
        assert not re.match(r"(?i)^(https?:)?//", url), f"{url} is not served locally"
        assert url.startswith("/docs/static/"), url
        response = client.get(url)
        assert response.status_code == 200, url
        suffix = url.rsplit(".", 1)[-1]
        if suffix in kinds:
            assert response.headers["content-type"].startswith(kinds[suffix]), url
            assert len(response.content) > 10_000, url  # the real bundle, not a stub
    assert any(u.endswith("/swagger-ui-bundle.js") for u in assets.scripts)
    assert any(u.endswith("/swagger-ui.css") for u in assets.links)


def test_docs_routes_stay_out_of_the_schema_and_need_no_key(make_client, monkeypatch):
    monkeypatch.setenv("DUCHENNE_API_KEY", "s3cret")
    client = make_client()
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc", "/openapi"))]
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert_error(client.get("/redoc"), 404)  # ReDoc would load from a CDN: not served
    assert_error(client.get("/docs/static/../index.html"), 404)


def test_docs_can_be_turned_off(make_client):
    client = make_client(docs=False)
    assert_error(client.get("/docs"), 404)
    assert_error(client.get("/docs/static/swagger-ui-bundle.js"), 404)
    assert_error(client.get("/docs/static/swagger-ui.css"), 404)
    assert_error(client.get("/redoc"), 404)
    assert_error(client.get("/openapi.json"), 404)


def test_unknown_routes_and_methods_answer_json(client):
    assert_error(client.get("/nope"), 404, "NotFound")
    assert_error(client.get("/v1/analyze"), 405, "MethodNotAllowed")


def test_405_allow_names_every_method_of_the_path(client):
    """``PUT /v1/videos/{id}`` said ``Allow: GET`` (Starlette names only the first route
    of the path) although ``DELETE`` is routed there too; RFC 9110 wants them all (HEAD
    with GET)."""
    response = client.put("/v1/videos/abc")
    assert_error(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "DELETE, GET, HEAD"
    assert client.get("/v1/analyze").headers["allow"] == "POST"


def test_api_key(make_client, small_jpeg, monkeypatch):
    monkeypatch.setenv("DUCHENNE_API_KEY", "s3cret")
    client = make_client()
    assert_error(client.post("/v1/analyze", content=small_jpeg), 401, "Unauthorized")
    wrong = client.post("/v1/analyze", content=small_jpeg, headers={"X-API-Key": "nope"})
    assert_error(wrong, 401)
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    ok = client.post("/v1/analyze", content=small_jpeg, headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200
    bearer = client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
    assert bearer.status_code == 200
    assert_error(client.get("/metrics"), 401)
    assert_error(client.get("/v1/videos/abc"), 401)
    assert client.get("/healthz").status_code == 200  # probes need no key
    assert client.get("/").status_code == 200  # the dashboard asks for the key itself


def test_cors_is_off_by_default_and_configurable(client, make_client):
    plain = client.get("/healthz", headers={"Origin": "https://example.org"})
    assert "access-control-allow-origin" not in plain.headers
    cors = make_client(cors_origins="https://example.org")
    allowed = cors.options(
        "/v1/analyze",
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST"},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://example.org"
    other = cors.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_dashboard_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    assert (
        client.get("/static/app.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    assert client.get("/demo.jpg").headers["content-type"] == "image/jpeg"
    assert_error(client.get("/static/../settings.py"), 404)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.ImageTooLargeError("x"), 413),
        (errors.UnsupportedFormatError("x"), 415),
        (errors.ImageLoadError("x"), 422),
        (errors.VideoOpenError("x"), 422),
        (errors.VideoDecodeError("x"), 422),
        (errors.NoFaceDetectedError("x"), 422),
        (errors.UnknownModelError("x"), 404),
        (errors.MissingExtraError("x"), 501),
        (errors.InvalidFacesError("x"), 500),
        (errors.DuchenneError("x"), 400),
        (RuntimeError("x"), 500),
    ],
)
def test_error_classes_map_to_status_codes(exc, status):
    assert status_for(exc) == status


def test_every_duchenne_error_class_has_a_status():
    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.DuchenneError)
    ]
    for cls in classes:
        assert any(issubclass(cls, known) for known in ERROR_STATUS), cls


def test_internal_errors_do_not_leak_details(make_client, small_jpeg):
    class Broken(SlowAnalyzer):
        def analyze_batch(self, images, **kw):
            raise RuntimeError("secret internals /home/user")

    client = make_client(Broken())
    body = assert_error(client.post("/v1/analyze", content=small_jpeg), 500, "InternalError")
    assert "secret" not in body["message"]


def test_shutdown_finishes_in_flight_requests(make_client, small_jpeg):
    fake = SlowAnalyzer()
    fake.gate = threading.Event()
    client = make_client(fake, workers=1)
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(client.post("/v1/analyze", content=small_jpeg).status_code)
    )
    worker.start()
    for _ in range(200):
        if fake.calls:
            break
        threading.Event().wait(0.01)
    threading.Timer(0.3, fake.gate.set).start()
    client.__exit__(None, None, None)  # lifespan shutdown while the request is running
    worker.join(10)
    assert codes == [200]


def test_unexpected_500_closes_the_connection_and_logs_one_traceback(
    make_client, small_jpeg, caplog
):
    """A 500 used to drop the keep-alive connection without saying so (the client's next
    request on it failed with a reset) and was logged with two tracebacks."""

    class Broken(SlowAnalyzer):
        def analyze_batch(self, images, **kw):
            raise RuntimeError("boom")

    client = make_client(Broken())
    with caplog.at_level("ERROR"):
        response = client.post("/v1/analyze", content=small_jpeg)
    assert_error(response, 500, "InternalError")
    assert response.headers["connection"] == "close"
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in caplog.records]
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert 'route="/v1/analyze",status="500"} 1' in metrics


def test_error_answers_are_declared_as_the_json_error_body(make_client, monkeypatch):
    """The schema said what FastAPI assumes, not what the handlers send: the 401 of
    ``/metrics`` as ``text/plain`` (its response class) and the 422 of the video routes as
    FastAPI's ``{"detail": [...]}``; both are ``{"error": {...}}`` JSON (docs/server.md)."""
    monkeypatch.setenv("DUCHENNE_API_KEY", "s3cret")
    client = make_client()
    spec = client.get("/openapi.json").json()
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for code, answer in op["responses"].items():
                if int(code) >= 400 and path != "/healthz":  # its 503 is the Health body
                    assert answer.get("content") == error_body, (method, path, code)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    preview = spec["paths"]["/v1/videos/{job_id}/preview"]["get"]["responses"]["200"]
    assert set(preview["content"]) == {"video/mp4", "video/webm"}  # never JSON
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("application/json")
    assert_error(metrics, 401, "Unauthorized")
    key = {"X-API-Key": "s3cret"}
    assert_error(client.get("/v1/videos/abc?format=xml", headers=key), 422, "ValidationError")
    assert_error(client.delete("/v1/videos/abc?every=2", headers=key), 422)
