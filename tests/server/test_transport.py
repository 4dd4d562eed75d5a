"""The HTTP transport guards of ``duchenne serve`` on a real loopback uvicorn server:
over-long headers get 431 at once, slow or silent connections are closed, and ordinary
requests (large bodies, keep-alive) are untouched."""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from .conftest import free_port, require_server_deps

require_server_deps()

import uvicorn  # noqa: E402

from duchenne.server.transport import guarded_protocol  # noqa: E402

MAX_HEADER = 8192
HEADER_TIMEOUT = 0.5


async def echo_app(scope, receive, send) -> None:
    """Answers with the number of body bytes received."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    port = free_port()
    config = uvicorn.Config(
        echo_app,
        host="127.0.0.1",
        port=port,
        http=guarded_protocol(MAX_HEADER, HEADER_TIMEOUT),
        lifespan="off",
        log_level="warning",
        timeout_keep_alive=5,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def read_answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout``)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def test_huge_header_is_refused_with_431_before_it_is_read(server) -> None:
    """16 MB of header: the answer comes after the first kilobytes, not after 16 MB."""
    sock = socket.create_connection(server)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent, answer = 0, b""
    filler = b"a" * 65536
    try:
        while sent < 16 * 2**20 and not answer:
            sock.sendall(filler)
            sent += len(filler)
            if select.select([sock], [], [], 0)[0]:
                answer = sock.recv(65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer += read_answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"RequestHeaderFieldsTooLarge" in answer and b"connection: close" in answer
    assert sent < 4 * 2**20  # refused long before the header ended
    conn = http.client.HTTPConnection(*server, timeout=5)  # the server is fine
    conn.request("POST", "/", body=b"x" * 10)
    assert conn.getresponse().read() == b"10"


def test_slow_headers_get_408_and_silent_connections_are_closed(server) -> None:
    slow = socket.create_connection(server)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    silent = socket.create_connection(server)
    t0 = time.monotonic()
    answer = read_answer(slow)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert read_answer(silent) == b""  # closed without a word
    assert time.monotonic() - t0 < 4.5  # i.e. not held until read_answer's own timeout
    slow.close()
    silent.close()


def test_ordinary_requests_pass(server) -> None:
    """Bodies far larger than the header limit, arriving with their headers in one read,
    and several requests on one keep-alive connection are not mistaken for headers."""
    conn = http.client.HTTPConnection(*server, timeout=5)
    for size in (0, 3 * 2**20, 100_000, 1):
        conn.request("POST", "/", body=b"z" * size, headers={"X-Fill": "b" * (MAX_HEADER // 2)})
        response = conn.getresponse()
        assert response.status == 200 and response.read() == str(size).encode()
    raw = socket.create_connection(server)  # pipelined: two requests in one write
    one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n" + b"q" * 70000
    raw.sendall(one + one.replace(b"Host: x", b"Host: x\r\nConnection: close"))
    answer = read_answer(raw)
    raw.close()
    assert answer.count(b"HTTP/1.1 200 ") == 2 and answer.count(b"70000") == 2


def header_block(size: int, target: bytes = b"/") -> bytes:
    """A GET whose header block (request line to blank line) is exactly ``size`` bytes."""
    head = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nX-Fill: "
    end = b"\r\n\r\n"
    return head + b"f" * (size - len(head) - len(end)) + end


def send_in(sock: socket.socket, data: bytes, step: int | None) -> None:
    """All of ``data`` in one ``sendall``, or ``step`` bytes per write (separate reads)."""
    if step is None:
        sock.sendall(data)
        return
    for i in range(0, len(data), step):
        try:
            sock.sendall(data[i : i + step])
        except (BrokenPipeError, ConnectionResetError):
            return  # refused part way: the answer is waiting
        time.sleep(0.002)  # let the server read each piece on its own


@pytest.mark.parametrize("step", [None, 700], ids=["one-read", "small-reads"])
def test_header_limit_holds_however_the_block_is_split(server, step) -> None:
    """The read that completes the block counts too: 100 000 bytes sent in one write
    (once answered 200) and a block one byte over the limit get 431; exactly the limit
    passes."""
    for size, status in ((100_000, 431), (MAX_HEADER + 1, 431), (MAX_HEADER, 200)):
        sock = socket.create_connection(server)
        send_in(sock, header_block(size), step)
        answer = read_answer(sock, timeout=3)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 %d " % status), (size, answer[:120])
        if status == 431:
            assert b"RequestHeaderFieldsTooLarge" in answer


def test_oversized_pipelined_request_after_a_body_gets_431_in_order(server) -> None:
    """A second request that starts after the first one's body, in the same read, is
    checked when its headers complete; its 431 follows the first request's answer."""
    first = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    raw = socket.create_connection(server)
    raw.sendall(first + header_block(3 * MAX_HEADER))
    answer = read_answer(raw)
    raw.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 431 " in answer
    first_answer = answer[: answer.index(b"HTTP/1.1 431 ")]
    assert first_answer.endswith(b"\r\n5\r\n0\r\n\r\n")  # the echo of 5 bytes, complete
