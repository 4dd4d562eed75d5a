"""``POST /v1/analyze`` and ``/v1/analyze/batch``: results, options, errors and limits."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from .conftest import SlowAnalyzer, require_server_deps

require_server_deps()

from duchenne.server.routes.analyze import wants_jpeg  # noqa: E402
from duchenne.server.schemas import BatchResult, ErrorResponse, FacesResult  # noqa: E402


def assert_error(response, status: int, kind: str | None = None) -> dict:
    """A clean JSON error: the status, the documented body, the error class if given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = ErrorResponse.model_validate(response.json()).error
    assert body.status == status and body.message
    if kind is not None:
        assert body.type == kind, body
    return response.json()["error"]


def png_bytes(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, "PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- results


def test_raw_body_gives_the_same_document_as_the_python_api(client, analyzer, demo_jpeg):
    response = client.post("/v1/analyze", content=demo_jpeg, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200
    doc = response.json()
    FacesResult.model_validate(doc)
    assert doc == analyzer.analyze(demo_jpeg).to_dict()
    assert len(doc["faces"]) == 1 and doc["image"]["width"] == 512


def test_multipart_upload_records_the_file_name(client, demo_jpeg):
    response = client.post("/v1/analyze", files={"file": ("me.jpg", demo_jpeg, "image/jpeg")})
    assert response.status_code == 200
    doc = response.json()
    assert doc["image"]["source"] == "me.jpg"
    assert doc["faces"][0]["box"]["x2"] > doc["faces"][0]["box"]["x1"]


def test_query_options_mirror_the_python_api(client, analyzer, demo_jpeg):
    detect_only = client.post("/v1/analyze?stages=detect", content=demo_jpeg).json()
    assert "geometry" not in detect_only["faces"][0]
    with_points = client.post("/v1/analyze?landmarks=true", content=demo_jpeg).json()
    assert np.asarray(with_points["faces"][0]["landmarks"]).shape == (468, 3)
    none = client.post("/v1/analyze?min_face_size=5000", content=demo_jpeg).json()
    assert none["faces"] == []
    crop = client.post("/v1/analyze?crop=true", content=demo_jpeg).json()
    assert crop["faces"][0]["box"] == {"x1": 0.0, "y1": 0.0, "x2": 512.0, "y2": 512.0}
    assert crop["image"]["crop_mode"] is True


def test_blendshapes_on_request_only(make_client, client, full_analyzer, demo_jpeg):
    """A service that loaded the opt-in stage (as ``duchenne serve`` does) gives it to the
    requests that name it; one that did not answers without it instead of failing."""
    full = make_client(full_analyzer)
    query = "/v1/analyze?stages=detect,landmarks,blendshapes,smile"
    assert "blendshapes" not in full.post("/v1/analyze", content=demo_jpeg).json()["faces"][0]
    doc = full.post(query, content=demo_jpeg).json()
    FacesResult.model_validate(doc)  # the OpenAPI schema names the field it answers with
    face = doc["faces"][0]
    assert len(face["blendshapes"]) == 52 and face["blendshapes"]["mouthSmileLeft"] > 0.5
    plain = client.post(query, content=demo_jpeg)
    assert plain.status_code == 200 and "blendshapes" not in plain.json()["faces"][0]


def test_max_faces_keeps_the_best_faces(client, demo_jpeg):
    from duchenne import data
    from duchenne.io.image import encode_image

    face = data.astronaut()
    twice = encode_image(np.concatenate([face, face[:, ::-1]], axis=1))
    assert len(client.post("/v1/analyze", content=twice).json()["faces"]) == 2
    assert len(client.post("/v1/analyze?max_faces=1", content=twice).json()["faces"]) == 1


@pytest.mark.parametrize(
    ("accept", "query"), [("image/jpeg", ""), ("*/*", "?draw=true"), ("image/jpeg, */*;q=0.5", "")]
)
def test_annotated_jpeg_on_request(client, demo_jpeg, accept, query):
    response = client.post(f"/v1/analyze{query}", content=demo_jpeg, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-faces"] == "1"
    assert Image.open(io.BytesIO(response.content)).size == (512, 512)


@pytest.mark.parametrize(
    ("accept", "draw", "jpeg"),
    [
        (None, False, False),
        ("*/*", False, False),
        ("application/json", False, False),
        ("image/jpeg", False, True),
        ("application/json;q=0.9, image/jpeg", False, True),
        ("image/jpeg;q=0.1, application/json", False, False),
        ("image/jpeg;q=oops", False, False),
        ("text/html", True, True),
    ],
)
def test_content_negotiation(accept, draw, jpeg):
    assert wants_jpeg(accept, draw) is jpeg


def test_batch_keeps_order_and_reports_bad_images(client, demo_jpeg, small_jpeg):
    files = [
        ("files", ("a.jpg", demo_jpeg, "image/jpeg")),
        ("files", ("bad.jpg", b"not an image at all", "image/jpeg")),
        ("files", ("small.jpg", small_jpeg, "image/jpeg")),
        ("files", ("empty.jpg", b"", "image/jpeg")),
    ]
    response = client.post("/v1/analyze/batch", files=files)
    assert response.status_code == 200
    results = BatchResult.model_validate(response.json()).results
    assert [r.image.source for r in results] == ["a.jpg", "bad.jpg", "small.jpg", "empty.jpg"]
    assert len(results[0].faces) == 1 and results[0].error is None
    assert results[1].error.type == "ImageLoadError"
    assert results[2].faces == []
    assert results[3].error.type == "EmptyUpload"


def test_batch_shares_analysis_calls(make_client, small_jpeg):
    fake = SlowAnalyzer()
    fake.gate = threading.Event()
    client = make_client(fake, workers=1, batch_max_size=8)
    files = [("files", (f"{i}.jpg", small_jpeg, "image/jpeg")) for i in range(6)]
    threading.Timer(0.3, fake.gate.set).start()  # let the images queue up behind the first
    response = client.post("/v1/analyze/batch", files=files)
    assert response.status_code == 200
    assert sum(fake.calls) == 6 and len(fake.calls) < 6


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"", 422, "EmptyUpload"),
        (b"hello, not a picture", 422, "ImageLoadError"),
        (b"/etc/passwd", 422, "ImageLoadError"),  # a path is just bytes: never opened
        (b"https://example.com/cat.jpg", 422, "ImageLoadError"),  # a URL is never fetched
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, 422, "ImageLoadError"),  # truncated JPEG
        (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", 415, "UnsupportedFormatError"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", 415, "UnsupportedFormatError"),
    ],
)
def test_bad_uploads_get_clean_4xx(client, body, status, kind):
    assert_error(client.post("/v1/analyze", content=body), status, kind)


def test_truncated_real_jpeg(client, demo_jpeg):
    assert_error(client.post("/v1/analyze", content=demo_jpeg[: len(demo_jpeg) // 2]), 422)


@pytest.mark.parametrize(
    "query",
    [
        "stages=detect,nose",
        "stages=",
        "stages=,",
        "max_faces=0",
        "max_faces=abc",
        "min_face_size=-1",
        "crop=maybe",
    ],
)
def test_bad_query_values_are_422(client, demo_jpeg, query):
    body = assert_error(client.post(f"/v1/analyze?{query}", content=demo_jpeg), 422)
    assert body["type"] == "ValidationError"
    if query.startswith("stages="):  # an empty list once meant detection only, silently
        assert body["message"].startswith("stages: ")


@pytest.mark.parametrize("name", ["smile_threshold", "min_face_size"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_as_such(client, demo_jpeg, name, value):
    """``nan`` was refused with "should be less than or equal to 1", which it is not."""
    body = assert_error(client.post(f"/v1/analyze?{name}={value}", content=demo_jpeg), 422)
    assert body["message"] == f"query.{name}: Input should be a finite number"


def test_unknown_query_parameters_are_refused_not_ignored(client, demo_jpeg):
    response = client.post("/v1/analyze?path=/etc/passwd&url=http://x/y.jpg", content=demo_jpeg)
    assert_error(response, 422, "UnknownParameter")
    assert "path, url" in response.json()["error"]["message"]
    typo = client.post("/v1/analyze?max_face=1", content=demo_jpeg)
    assert_error(typo, 422, "UnknownParameter")
    assert "max_faces" in typo.json()["error"]["message"]  # names what is accepted


def test_format_jpeg_answers_the_drawing_and_format_json_wins_over_accept(client, demo_jpeg):
    jpeg = client.post("/v1/analyze?format=jpeg", content=demo_jpeg)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.content[:2] == b"\xff\xd8"
    as_json = client.post(
        "/v1/analyze?format=json", content=demo_jpeg, headers={"Accept": "image/jpeg"}
    )
    assert as_json.headers["content-type"].startswith("application/json")
    bad = client.post("/v1/analyze?format=png", content=demo_jpeg)
    assert bad.status_code == 422


def test_smile_threshold_decides_smiling(client, demo_jpeg):
    def smiling_at(threshold: float) -> dict:
        response = client.post(f"/v1/analyze?smile_threshold={threshold}", content=demo_jpeg)
        doc = response.json()
        assert doc["image"]["smile_threshold"] == threshold
        return doc["faces"][0]

    face = smiling_at(0.0)
    if "smile" in face:  # a smile model ships
        assert face["smiling"] is True
        p = face["smile"]
        if p < 0.99:
            assert smiling_at(round(p + 0.005, 4))["smiling"] is False
        if p > 0.01:
            assert smiling_at(round(p - 0.005, 4))["smiling"] is True
    assert client.post("/v1/analyze?smile_threshold=2", content=demo_jpeg).status_code == 422


def test_emotion_prior_per_request_shares_the_models(client, demo_jpeg):
    docs = {}
    for prior in ("natural", "balanced"):
        response = client.post(f"/v1/analyze?emotion_prior={prior}", content=demo_jpeg)
        assert response.status_code == 200
        docs[prior] = response.json()
        assert docs[prior]["image"]["emotion_prior"] == prior
    default = client.post("/v1/analyze", content=demo_jpeg).json()
    assert default["image"]["emotion_prior"] == "balanced"  # the service's default
    faces = [d["faces"][0] for d in (*docs.values(), default)]
    if "emotions" in faces[0]:  # a smile model ships: only the emotions move
        assert faces[0]["smile"] == faces[1]["smile"]
        assert faces[1]["emotions"] == faces[2]["emotions"]
    bad = client.post("/v1/analyze?emotion_prior=posed", content=demo_jpeg)
    assert bad.status_code == 422 and "emotion_prior" in bad.json()["error"]["message"]


def test_a_text_upload_is_named_by_its_file_name(client):
    response = client.post("/v1/analyze", files={"file": ("notes.txt", b"hello, not a picture")})
    assert_error(response, 422, "ImageLoadError")
    message = response.json()["error"]["message"]
    assert message.startswith("upload 'notes.txt':") and "<bytes>" not in message
    raw = client.post("/v1/analyze", content=b"hello, not a picture")
    assert raw.json()["error"]["message"].startswith("the upload:")


def test_admission_refuses_before_reading_the_body():
    """Under overload, analysis requests beyond the capacity are answered 503 without a
    single body byte read (reading bodies that were then refused collapsed throughput)."""
    import asyncio

    from duchenne.server.middleware import AdmissionMiddleware

    release = asyncio.Event()
    reads: dict[int, int] = {}

    async def app(scope, receive, send):
        await release.wait()
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = AdmissionMiddleware(app, frozenset({"/v1/analyze"}), capacity=2)

    async def request(i: int, path: str = "/v1/analyze") -> int:
        scope = {"type": "http", "method": "POST", "path": path, "headers": []}
        status = []

        async def receive():
            reads[i] = reads.get(i, 0) + 1
            return {"type": "http.request", "body": b"x" * 1000, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await guard(scope, receive, send)
        return status[0]

    async def main():
        first = [asyncio.create_task(request(i)) for i in range(2)]
        await asyncio.sleep(0.01)
        assert guard.in_flight == 2
        refused = await request(2)
        other = asyncio.create_task(request(3, "/healthz"))  # other routes are not counted
        await asyncio.sleep(0.01)
        release.set()
        done = await asyncio.gather(*first, other)
        return refused, done, await request(4)

    refused, done, later = asyncio.run(main())
    assert refused == 503 and 2 not in reads  # refused without reading its body
    assert done == [200, 200, 200] and later == 200 and guard.in_flight == 0


def test_refusals_are_paced_by_an_idle_wait(monkeypatch):
    """Clients that retry at once get their 503 only after ``refuse_delay_s``."""
    import asyncio

    from duchenne.server import middleware

    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def app(scope, receive, send):  # pragma: no cover - never admitted
        raise AssertionError("a request over the capacity reached the app")

    guard = middleware.AdmissionMiddleware(app, frozenset({"/v1/analyze"}), 0, 0.25)
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():  # pragma: no cover - the body is never read
        raise AssertionError("the refused body was read")

    monkeypatch.setattr(middleware.asyncio, "sleep", fake_sleep)
    scope = {"type": "http", "method": "POST", "path": "/v1/analyze", "headers": []}
    asyncio.run(guard(scope, receive, send))
    assert waits == [0.25] and sent[0]["status"] == 503


def test_multipart_without_a_file_part(client):
    response = client.post("/v1/analyze", files={"file": (None, "just text")})
    assert_error(response, 422, "MissingFile")
    form = client.post("/v1/analyze", data={"file": "just text"})  # urlencoded = raw bytes
    assert_error(form, 422, "ImageLoadError")
    bad = client.post(
        "/v1/analyze",
        content=b"--xyz\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert 400 <= bad.status_code < 500


def test_multipart_with_two_files_is_refused(client, small_jpeg):
    files = [("file", ("a.jpg", small_jpeg)), ("file", ("b.jpg", small_jpeg))]
    body = assert_error(client.post("/v1/analyze", files=files), 413, "TooManyFiles")
    assert body["message"] == "at most 1 file per request"  # was "1 files"


def test_batch_limits(make_client, small_jpeg):
    client = make_client(max_batch_images=2)
    files = [("files", (f"{i}.jpg", small_jpeg)) for i in range(3)]
    body = assert_error(client.post("/v1/analyze/batch", files=files), 413, "TooManyFiles")
    assert body["message"] == "at most 2 files per request"
    many = [("files", (f"{i}.jpg", small_jpeg)) for i in range(40)]
    assert_error(client.post("/v1/analyze/batch", files=many), 413, "TooManyFiles")
    raw = client.post("/v1/analyze/batch", content=small_jpeg)
    assert_error(raw, 415, "UnsupportedMediaType")
    no_file = client.post("/v1/analyze/batch", files={"x": (None, "y")})
    assert_error(no_file, 422, "MissingFile")


# ----------------------------------------------------------------------------- limits


def test_body_over_the_limit_is_413(make_client, demo_jpeg):
    client = make_client(max_body_bytes=10_000)
    assert_error(client.post("/v1/analyze", content=demo_jpeg), 413, "PayloadTooLarge")
    multipart = client.post("/v1/analyze", files={"file": ("a.jpg", demo_jpeg)})
    assert_error(multipart, 413, "PayloadTooLarge")


def test_streamed_body_without_length_is_cut_at_the_limit(make_client, demo_jpeg):
    client = make_client(max_body_bytes=10_000)

    def chunks():
        for i in range(0, len(demo_jpeg), 4096):
            yield demo_jpeg[i : i + 4096]

    assert_error(client.post("/v1/analyze", content=chunks()), 413, "PayloadTooLarge")


def test_too_many_pixels_is_413_before_decoding(make_client):
    client = make_client(max_pixels=10_000)
    assert_error(client.post("/v1/analyze", content=png_bytes(200, 100)), 413, "ImageTooLargeError")
    assert client.post("/v1/analyze", content=png_bytes(50, 50)).status_code == 200


def test_full_queue_answers_503_with_retry_after(make_client, small_jpeg):
    fake = SlowAnalyzer()
    fake.gate = threading.Event()
    client = make_client(fake, workers=1, max_queue=1)
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(client.post("/v1/analyze", content=small_jpeg).status_code)
    )
    first.start()
    for _ in range(200):  # wait until the first image occupies the only queue place
        if client.get("/healthz").json()["queue"] == 1:
            break
        threading.Event().wait(0.01)
    decoded = []
    engine = client.app.state.engine
    original = engine.decode
    engine.decode = lambda data: decoded.append(1) or original(data)
    busy = client.post("/v1/analyze", content=small_jpeg)
    assert_error(busy, 503, "QueueFullError")
    assert busy.headers["retry-after"] == "1"
    assert decoded == []  # refused before decoding
    batch = client.post("/v1/analyze/batch", files=[("files", ("a.jpg", small_jpeg))])
    assert_error(batch, 503, "QueueFullError")
    fake.gate.set()
    first.join(10)
    assert results == [200]


def test_slow_requests_time_out_with_503(make_client, small_jpeg):
    fake = SlowAnalyzer(delay=1.0)
    client = make_client(fake, request_timeout_s=0.2)
    assert_error(client.post("/v1/analyze", content=small_jpeg), 503, "Timeout")


def test_unbatched_mode_gives_the_same_result(make_client, client, demo_jpeg):
    plain = make_client(batching=False)
    a = client.post("/v1/analyze", content=demo_jpeg).json()
    b = plain.post("/v1/analyze", content=demo_jpeg).json()
    assert a == b


def test_concurrent_requests_are_micro_batched(make_client, small_jpeg):
    fake = SlowAnalyzer()
    fake.gate = threading.Event()
    client = make_client(fake, workers=1, batch_max_size=16, batch_max_wait_ms=50)
    codes: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: codes.append(client.post("/v1/analyze", content=small_jpeg).status_code)
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    threading.Timer(0.5, fake.gate.set).start()
    for t in threads:
        t.join(10)
    assert codes == [200] * 8
    assert sum(fake.calls) == 8 and max(fake.calls) > 1


def test_a_pipeline_bug_on_one_batch_image_keeps_the_others(make_client, demo_jpeg, monkeypatch):
    """One image hitting a bug is that entry's InternalError (details logged, not sent);
    the other images of the request are answered (the whole request used to be a 500)."""
    from duchenne.analysis.analyzer import Analyzer

    buf = io.BytesIO()
    Image.fromarray(np.full((300, 200, 3), 90, np.uint8)).save(buf, "PNG")
    real = Analyzer.faces_in

    def faces_in(self, image):
        if image.shape[:2] == (300, 200):
            raise RuntimeError("simulated OpenCV assertion /secret/path")
        return real(self, image)

    monkeypatch.setattr(Analyzer, "faces_in", faces_in)
    client = make_client()
    files = [("files", ("a.jpg", demo_jpeg)), ("files", ("odd.png", buf.getvalue()))]
    response = client.post("/v1/analyze/batch", files=files)
    assert response.status_code == 200, response.text
    good, bad = response.json()["results"]
    assert good["faces"] and bad["error"]["type"] == "InternalError"
    assert "secret" not in response.text
    single = client.post("/v1/analyze", content=buf.getvalue())
    assert_error(single, 500, "InternalError")
    assert "secret" not in single.text
