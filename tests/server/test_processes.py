"""Worker-process mode (``processes=N``): same answers as threads, survives a dead worker."""

from __future__ import annotations

import os
import signal

import pytest

from .conftest import require_server_deps

require_server_deps()


@pytest.fixture
def process_client(make_client):
    return make_client(processes=1)


def worker_pids(client) -> list[int]:
    pool = client.app.state.engine.processes._pool
    return [p.pid for p in pool._processes.values()]


def test_worker_process_gives_the_same_documents_as_threads(process_client, client, demo_jpeg):
    for query in ("", "?stages=detect", "?landmarks=true&max_faces=1"):
        threaded = client.post(f"/v1/analyze{query}", content=demo_jpeg)
        in_worker = process_client.post(f"/v1/analyze{query}", content=demo_jpeg)
        assert in_worker.status_code == threaded.status_code == 200
        assert in_worker.json() == threaded.json()
    assert worker_pids(process_client) and os.getpid() not in worker_pids(process_client)


def test_bad_images_keep_their_errors_in_process_mode(process_client, demo_jpeg, small_jpeg):
    files = [("files", ("a.jpg", demo_jpeg)), ("files", ("cut.jpg", demo_jpeg[:900]))]
    results = process_client.post("/v1/analyze/batch", files=files).json()["results"]
    assert results[0]["faces"] and results[1]["error"]["type"] == "ImageLoadError"
    assert process_client.post("/v1/analyze", content=small_jpeg).json()["faces"] == []


def test_a_killed_worker_fails_one_batch_then_the_pool_recovers(process_client, demo_jpeg):
    assert process_client.post("/v1/analyze", content=demo_jpeg).status_code == 200
    for pid in worker_pids(process_client):
        os.kill(pid, signal.SIGKILL)
    broken = process_client.post("/v1/analyze", content=demo_jpeg)
    assert broken.status_code == 500 and broken.json()["error"]["type"] == "InternalError"
    again = process_client.post("/v1/analyze", content=demo_jpeg)
    assert again.status_code == 200 and again.json()["faces"]


def test_shutdown_stops_the_worker_processes(make_client, demo_jpeg):
    client = make_client(processes=2)
    pids = worker_pids(client)
    assert len(pids) == 2
    client.__exit__(None, None, None)
    for pid in pids:
        with pytest.raises(OSError):  # reaped: no such process
            os.kill(pid, 0)
