"""The smile stage through the service, on the hand-built smile ONNX of ``tests/conftest.py``:
smile fields appear, a smile-free stage list drops them, and images that share a
micro-batch (one smile-model call) get exactly the results they get alone."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

from duchenne import data
from duchenne.analysis.analyzer import Analyzer
from duchenne.io.image import encode_image

from .conftest import require_server_deps

require_server_deps()

from duchenne.server.schemas import FacesResult  # noqa: E402


@pytest.fixture(scope="module")
def smile_analyzer(tiny_smile_onnx) -> Analyzer:
    return Analyzer(threads=1, smile_model=tiny_smile_onnx)


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    face = data.astronaut()
    return [
        encode_image(face),
        encode_image(face[:, ::-1]),
        encode_image(np.concatenate([face, face[:, ::-1]], axis=1)),
    ]


def test_smile_fields_and_models(make_client, smile_analyzer, photos):
    client = make_client(smile_analyzer)
    doc = client.post("/v1/analyze", content=photos[0]).json()
    FacesResult.model_validate(doc)
    face = doc["faces"][0]
    assert {"smile", "smiling", "smile_score", "top_emotion", "emotions"} <= set(face)
    assert 1.0 <= face["smile_score"] <= 10.0
    name = smile_analyzer.smile_model.name
    assert doc["image"]["models"]["smile"] == name
    models = client.get("/v1/models").json()
    assert models["smile_available"] and models["active"]["smile"] == name
    plain = client.post("/v1/analyze?stages=detect,landmarks", content=photos[0]).json()
    assert "smile" not in plain["faces"][0] and "geometry" not in plain["faces"][0]
    assert "smile" not in plain["image"]["models"]


def test_shared_batches_match_single_analysis(make_client, smile_analyzer, photos):
    alone = [smile_analyzer.analyze(p).to_dict() for p in photos]
    client = make_client(smile_analyzer, workers=1, batch_max_size=8, batch_max_wait_ms=200)
    results: dict[int, dict] = {}

    def post(i: int) -> None:
        results[i] = client.post("/v1/analyze", content=photos[i % 3]).json()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(6):
        assert results[i] == alone[i % 3]
    metrics = client.get("/metrics").text
    calls = re.search(r"^duchenne_batch_size_count (\d+)$", metrics, re.M)
    assert calls and int(calls.group(1)) < 6  # some images shared a call
