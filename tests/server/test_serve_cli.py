"""``duchenne serve``: flags become ``Settings``; bad values fail with one line, no traceback;
a SIGTERM or Ctrl-C stops it gracefully with exit status 0."""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from duchenne.cli.main import build_parser, main
from duchenne.cli.serve import settings_from

from .conftest import require_server_deps, start_server, write_video

require_server_deps()

from duchenne.server.settings import Settings  # noqa: E402


def parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("DUCHENNE_PORT", "9001")
    monkeypatch.setenv("DUCHENNE_MAX_QUEUE", "7")
    settings = settings_from(parse("--host", "0.0.0.0", "--workers", "3", "--no-batching"))
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9001, 3)
    assert settings.batching is False and settings.max_queue == 7
    assert settings_from(parse("--port", "8123")).port == 8123
    assert settings_from(parse("--processes", "2")).processes == 2
    assert Settings().processes == 0  # threads unless asked


def test_defaults_are_safe():
    settings = Settings()
    assert settings.host == "127.0.0.1"  # not reachable from other machines by default
    assert settings.api_key_value is None and settings.cors_origin_list == []
    assert settings.max_body_bytes < settings.max_video_bytes


def test_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("DUCHENNE_API_KEY", "k1")
    monkeypatch.setenv("DUCHENNE_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()
    assert settings.api_key_value == "k1" and "k1" not in repr(settings)
    assert settings.cors_origin_list == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    ("flag", "value", "need"),
    [
        ("--port", "-1", "in [0, 65535]"),
        ("--port", "70000", "in [0, 65535]"),
        ("--workers", "0", "in [1, 64]"),
        ("--processes", "-2", "in [0, 64]"),
    ],
)
def test_bad_number_flags_are_usage_errors(flag, value, need, capsys):
    """Refused by argparse (io.argtypes), before the server extra is even imported."""
    with pytest.raises(SystemExit) as exit_:
        main(["serve", flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be {need}, got {value}" in err and "Traceback" not in err


def test_number_flags_have_the_bounds_of_their_settings():
    """The flags' argparse bounds repeat ``Settings``': a value one accepts the other does."""
    for name in ("port", "workers", "processes"):
        metadata = Settings.model_fields[name].metadata
        low = next(m.ge for m in metadata if hasattr(m, "ge"))
        high = next(m.le for m in metadata if hasattr(m, "le"))
        for value in (low, high):
            assert getattr(settings_from(parse(f"--{name}", str(value))), name) == value
        for value in (low - 1, high + 1):
            with pytest.raises(SystemExit):
                parse(f"--{name}", str(value))


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("DUCHENNE_PORT", "-1", "port"),
        ("DUCHENNE_PORT", "70000", "port"),
        ("DUCHENNE_WORKERS", "0", "workers"),
        ("DUCHENNE_PROCESSES", "-2", "processes"),
        ("DUCHENNE_MAX_BODY_BYTES", "abc", "max_body_bytes"),
        ("DUCHENNE_BATCHING", "maybe", "batching"),
        ("DUCHENNE_REQUEST_TIMEOUT_S", "inf", "request_timeout_s"),  # a request never timed out
    ],
)
def test_invalid_environment_values_fail_cleanly(variable, value, field, monkeypatch, capsys):
    """One line naming the variable and its value, exit status 2, before the socket binds."""
    monkeypatch.setattr(
        "duchenne.cli.serve.listen_socket", lambda *_: pytest.fail("bound a socket")
    )
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"duchenne serve: invalid {field} ({variable}={value!r}): ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_emotion_prior_setting_reaches_the_analyzer(monkeypatch, capsys):
    from duchenne.server.engine import analyzer_config

    assert analyzer_config(Settings()).emotion_prior == "balanced"
    monkeypatch.setenv("DUCHENNE_EMOTION_PRIOR", "natural")
    assert analyzer_config(settings_from(parse())).emotion_prior == "natural"
    flag = settings_from(parse("--emotion-prior", "1,1,1,1,1,1,1,2"))
    assert analyzer_config(flag).emotion_prior[-1] == pytest.approx(2 / 9)
    assert main(["serve", "--emotion-prior", "posed"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("duchenne serve: invalid emotion_prior (--emotion-prior='posed'): ")


def test_unknown_model_fails_before_serving(capsys):
    assert main(["serve", "--model", "no_such_model", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "UnknownModelError" in err and "Traceback" not in err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--workers", "--processes", "--model", "--no-batching"):
        assert flag in out


@pytest.fixture
def serve(tmp_path):
    """``serve(**env)`` -> (process, url, log) of a started ``duchenne serve``; stopped
    after as a user would (SIGTERM; SIGKILL only if it hangs), so it removes its job
    folder: a killed server left an empty /tmp/duchenne-jobs-* behind on every run."""
    procs = []
    temp = tmp_path / "tmp"  # the servers' TMPDIR, where their job folders go
    temp.mkdir()

    def start(**env: str):
        log = tmp_path / f"server{len(procs)}.log"
        proc, url = start_server(log, TMPDIR=str(temp), **env)
        procs.append(proc)
        return proc, url, log

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert not list(temp.glob("duchenne-jobs-*")), "a server left its job folder behind"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_graceful_stop_exits_0(serve, sig):
    """uvicorn raises the signal again after its clean shutdown (exit 143); serve does not."""
    proc, _, log = serve(DUCHENNE_WORKERS="1")
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 0, log.read_text()
    text = log.read_text()
    assert "Application shutdown complete" in text and "Traceback" not in text


def test_sigterm_lets_the_request_in_flight_finish(serve, small_jpeg):
    """A request whose body is still to come when SIGTERM arrives is answered, then exit 0."""
    proc, url, log = serve(DUCHENNE_WORKERS="1")
    port = int(url.rsplit(":", 1)[1])
    head = (
        "POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(small_jpeg)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode())
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):  # the handler is reading the body
            interim += conn.recv(1)
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:  # shutdown has begun once new connections are refused
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline, "the server kept accepting connections"
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()  # still waiting for our request
        conn.sendall(small_jpeg)
        response = b""
        while chunk := conn.recv(65536):  # the server closes the connection after it
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 OK\r\n"), response[:500]
    assert b'"faces"' in response
    assert proc.wait(timeout=30) == 0, log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_help_lists_every_setting_with_its_variable(capsys):
    """Generated from ``Settings``: THREADS, BATCH_MAX_*, JOB_DIR and SHUTDOWN_TIMEOUT_S
    were missing although docs/server.md said every limit is listed."""
    from pathlib import Path

    from duchenne.server.settings import Settings

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    docs = (Path(__file__).parents[2] / "docs" / "server.md").read_text()
    for name, field in Settings.model_fields.items():
        variable = f"DUCHENNE_{name.upper()}"
        line = next((ln for ln in out.splitlines() if ln.strip().startswith(variable + "=")), "")
        assert line and field.description and line.endswith(field.description), (name, line)
        assert variable in docs, f"{variable} missing from docs/server.md"
    for name in ("max_header_bytes", "max_queue", "threads", "batch_max_size", "workers"):
        default = Settings.model_fields[name].get_default(call_default_factory=True)
        assert f"DUCHENNE_{name.upper()}={default}:" in out
    for shown in ("DUCHENNE_JOB_DIR=unset:", "DUCHENNE_BATCHING=true:", "DUCHENNE_DETECTOR=auto:"):
        assert shown in out
    assert "| `DUCHENNE_MODEL`, `DUCHENNE_DETECTOR` | default smile model, `auto` |" in docs


def test_port_0_banner_names_the_bound_port(tmp_path):
    """The banner said http://127.0.0.1:0/ (printed before uvicorn bound a random port)."""
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "DUCHENNE_API_KEY": "", "DUCHENNE_WORKERS": "1"}
    cmd = [sys.executable, "-m", "duchenne.cli.main", "serve", "--port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if not line or line.startswith("duchenne: dashboard"):
                break
        match = re.match(r"duchenne: dashboard http://127\.0\.0\.1:(\d+)/ ", lines[-1])
        assert match, "".join(lines)
        port = int(match.group(1))
        assert port != 0 and "/docs" in lines[-1] and f":{port}/docs" in lines[-1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200  # the banner is printed once the service answers
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_port_in_use_fails_in_one_line_before_the_models_load(monkeypatch, capsys):
    """It printed the banner, loaded the models, then failed (exit 3) with uvicorn's log."""
    import duchenne.server.engine as engine

    def no_models(settings):
        raise AssertionError("the models were loaded for a port that is in use")

    monkeypatch.setattr(engine, "build_analyzer", no_models)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dashboard" not in err, err
    assert err.startswith(f"duchenne serve: cannot listen on 127.0.0.1:{port}: "), err
    assert "in use" in err


def test_transport_guards_and_client_aborts(serve, small_jpeg):
    """On the real server: a 16 MB header is refused with 431 after a few kilobytes, a
    connection that never finishes its headers gets 408, and a client that disconnects
    mid-upload is counted as 499 with one log line (it was a 500 with two tracebacks)."""
    _, url, log = serve(DUCHENNE_WORKERS="1", DUCHENNE_HEADER_TIMEOUT_S="1")
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent, answer = 0, b""
        t0 = time.perf_counter()
        try:
            while sent < 16 * 2**20 and b"\r\n\r\n" not in answer:
                conn.sendall(b"a" * 65536)
                sent += 65536
                if select.select([conn], [], [], 0)[0]:
                    answer += conn.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        refused_after = time.perf_counter() - t0
        with contextlib.suppress(OSError):
            answer += conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:300]
    assert sent < 4 * 2**20, sent
    print(f"16 MB header: 431 after {sent // 1024} KiB sent, {refused_after * 1000:.1f} ms")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        # over the default 64 KiB in one write: the read that ends the block counts too
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n")
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:300]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        head = (
            "POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(small_jpeg) * 10}\r\n\r\n"
        )
        conn.sendall(head.encode() + small_jpeg)
        time.sleep(0.3)  # the handler is waiting for the rest of the body
    deadline = time.monotonic() + 10
    while True:
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        if 'route="/v1/analyze",status="499"} 1' in metrics or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 'route="/v1/analyze",status="499"} 1' in metrics, metrics
    assert 'status="500"' not in metrics
    rejected = "duchenne_rejected_total{reason="
    assert f'{rejected}"header_too_large",route="unmatched"}} 2' in metrics, metrics
    assert f'{rejected}"header_timeout",route="unmatched"}} 1' in metrics, metrics
    text = log.read_text()
    assert text.count("client closed the connection") == 1 and "Traceback" not in text, text


def test_a_client_gone_before_the_job_id_leaves_no_job(serve, tmp_path):
    """A client that closes its connection once its whole video is sent -- a dashboard tab
    closed before the answer with the job id came -- left a job that nobody could cancel
    and that held a job place to its end (3 of 3 ran to "done"). The job is dropped and
    the request counted as 499 with one log line."""
    _, url, log = serve()
    port = int(url.rsplit(":", 1)[1])
    video = write_video(tmp_path / "clip.avi", frames=30, size=240).read_bytes()
    head = (
        "POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(video)}\r\n\r\n"
    )
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(head.encode() + video)  # and closes without reading the answer
    answered = ('route="/v1/videos",status="499"}', 'route="/v1/videos",status="202"}')
    deadline = time.monotonic() + 30
    while True:
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        counts = [
            int(float(line.rsplit(" ", 1)[1]))
            for line in metrics.splitlines()
            if line.startswith("duchenne_http_requests_total")
            and line.split(" ")[0].endswith(answered)
        ]
        if sum(counts) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 'route="/v1/videos",status="499"} 3' in metrics, metrics
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
        assert sum(json.load(resp)["jobs"].values()) == 0
    text = log.read_text()
    assert text.count("client closed the connection") == 3 and "Traceback" not in text, text


def test_host_setting_says_loopback_is_the_default_not_the_rule(capsys):
    """``DUCHENNE_HOST=127.0.0.1: interface to listen on (loopback only)`` read as if no
    other interface were allowed, while docs/server.md's own example binds 0.0.0.0."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("DUCHENNE_HOST="))
    assert "default is loopback only" in line and "0.0.0.0" in line
