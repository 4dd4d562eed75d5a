"""HTTP transport guards below the ASGI app: header size and header time limits.

Why here and not in middleware: both attacks act before a request exists. With httptools
uvicorn has no header size limit, and a header of 256 MB cost 88 s of CPU (the cost grows
quadratically) before any route or API-key check could run; and a connection that sends
its headers at 1 byte/s was held forever, so 1,000 of them (50 with
``DUCHENNE_MAX_CONNECTIONS=40``) made every other client get 503. This protocol (uvicorn's
httptools one plus two limits) answers

* ``431 Request Header Fields Too Large`` as soon as a request's header block passes
  ``max_header_bytes``, however the block is split into reads: each read is counted up
  to the blank line that ends the block *before* it is parsed (the bytes beyond the
  limit are never parsed), and the parsed request line and headers are checked again
  when the block is complete (a pipelined request that starts after a body in the same
  read), and
* ``408 Request Timeout`` when a request's headers are not complete ``header_timeout_s``
  after its first byte, or after the connection opened (a connection that sends nothing
  is closed silently).

Idle keep-alive connections are closed by uvicorn after ``timeout_keep_alive``. Both
answers close the connection and are logged as one warning line; a refusal that follows
a pipelined request still being answered is sent after that answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from duchenne.server.handlers import error_body

logger = logging.getLogger(__name__)

REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
#: the ``reason`` each answer is counted under in ``duchenne_rejected_total``
REJECTION_REASONS = {408: "header_timeout", 431: "header_too_large"}
LINGER_S = 2.0  # how long a refused connection's further input is read and dropped
HEADER_END = b"\r\n\r\n"  # the blank line that ends a header block (llhttp wants CRLF)


def raw_error(status: int, type: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response (JSON body, ``Connection: close``) as bytes."""
    body = json.dumps(error_body(status, type, message)).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def guarded_protocol(
    max_header_bytes: int,
    header_timeout_s: float,
    on_refuse: Callable[[str], None] | None = None,
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class with the two limits (pass it as ``http=``).

    Args:
        max_header_bytes: largest request header block (request line to blank line).
        header_timeout_s: time allowed for a request's headers.
        on_refuse: called with the reason (``header_too_large``, ``header_timeout``) of
            each refusal, e.g. to count it in the service's metrics.

    Raises:
        ImportError: httptools is not installed (it comes with ``duchenne[server]``).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """``HttpToolsProtocol`` + header size (431) and header time (408) limits."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_headers = True  # reading a request's header block (or waiting for one)
            self._header_bytes = 0  # bytes of the current header block received so far
            self._tail = b""  # its last 3 bytes: a blank line may straddle two reads
            self._parsed_bytes = 0  # the block's size as the parser saw it (a lower bound)
            self._lingering = False  # refused: further input is dropped
            self._deferred: tuple[int, str, str] | None = None  # a refusal still to send
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return  # refused: drop what the client still sends, unparsed
            if self._in_headers:
                # the header bytes of this read: all of it, or up to the blank line that
                # ends the block (what follows is a body); counted *before* parsing, so an
                # over-long block is refused unparsed, whether it came in one read or many
                end = (self._tail + data).find(HEADER_END)
                counted = len(data) if end < 0 else end + len(HEADER_END) - len(self._tail)
                self._header_bytes += counted
                if self._header_bytes > max_header_bytes:
                    self._refuse_too_large()
                    return
            super().data_received(data)
            if self._in_headers and not self._lingering:
                self._tail = (self._tail + data)[-(len(HEADER_END) - 1) :]

        # parser callbacks: skipped once refused (the rest of a read is still parsed)
        def on_message_begin(self) -> None:
            if self._lingering:
                return
            self._parsed_bytes = 0
            super().on_message_begin()
            self._arm_header_timer()  # the time limit runs from a request's first byte

        def on_url(self, url: bytes) -> None:
            if self._lingering:
                return
            self._parsed_bytes += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._lingering:
                return
            self._parsed_bytes += len(name) + len(value) + 3  # "name:value\r\n"
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._lingering:
                return
            self._in_headers = False
            self._header_bytes, self._tail = 0, b""
            self._cancel_header_timer()
            # a second check from what the parser saw: catches a block the read-based count
            # could not place (a pipelined request that starts after a body in one read).
            # "GET " + url + " HTTP/1.1\r\n" + headers + "\r\n"
            method = self.parser.get_method()
            size = len(method) + self._parsed_bytes + len(" HTTP/1.1\r\n\r\n") + 1
            if size > max_header_bytes:
                self._refuse_too_large()
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._lingering:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._lingering:
                return
            super().on_message_complete()
            self._in_headers = True  # the next bytes start the next request's headers

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if not self._in_headers or self.transport.is_closing():
                return
            if self._header_bytes == 0 and (self.cycle is None or self.cycle.response_complete):
                self.transport.close()  # opened (or kept alive) and silent: just close
                return
            self._refuse(
                408, "RequestTimeout", f"request headers not received within {header_timeout_s:g} s"
            )

        def _refuse_too_large(self) -> None:
            if self.transport.is_closing():  # already answered (e.g. uvicorn's own 400)
                self._lingering = True
                return
            self._refuse(
                431,
                "RequestHeaderFieldsTooLarge",
                f"request headers exceed {max_header_bytes:,} bytes",
            )

        def _refuse(self, status: int, type: str, message: str) -> None:
            """Answer, then close gracefully: send FIN and drop the client's remaining bytes
            for up to ``LINGER_S`` (closing a socket with unread input sends a reset, which
            can destroy the answer before the client reads it).

            While an earlier request's response is still being produced (pipelining), the
            answer waits for it, so the client gets its answers in request order."""
            self._cancel_header_timer()
            self._lingering = True
            if self.cycle is not None and not self.cycle.response_complete:
                self._deferred = (status, type, message)
                return
            self._answer(status, type, message)

        def _answer(self, status: int, type: str, message: str) -> None:
            peer = "{}:{}".format(*self.client) if self.client else "client"
            logger.warning("%s: %d %s", peer, status, message)
            if on_refuse is not None:
                on_refuse(REJECTION_REASONS.get(status, str(status)))
            self.transport.write(raw_error(status, type, message))
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self.loop.call_later(LINGER_S, self.transport.close)
            else:
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            deferred, self._deferred = self._deferred, None
            if deferred is not None and not self.transport.is_closing():
                self._answer(*deferred)

        def eof_received(self) -> bool | None:
            if self._lingering:
                if self._deferred is None:
                    self.transport.close()  # the client has stopped sending
                return None
            return super().eof_received()

    return GuardedHttpToolsProtocol
