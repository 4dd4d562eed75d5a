"""HTTP transport guards below the ASGI app: header size and header time limits.

Why here and not in middleware: both attacks act before a request exists. With httptools
uvicorn has no header size limit, and a header of 256 MB cost 88 s of CPU (the cost grows
quadratically) before any route or API-key check could run; and a connection that sends
its headers at 1 byte/s was held forever, so 1,000 of them (50 with
``DUCHENNE_MAX_CONNECTIONS=40``) made every other client get 503. This protocol (uvicorn's
httptools one plus two limits) answers

* ``431 Request Header Fields Too Large`` as soon as a request's header block passes
  ``max_header_bytes`` (the bytes beyond are never parsed), and
* ``408 Request Timeout`` when a request's headers are not complete ``header_timeout_s``
  after its first byte, or after the connection opened (a connection that sends nothing
  is closed silently).

Idle keep-alive connections are closed by uvicorn after ``timeout_keep_alive``. Both
answers close the connection and are logged as one warning line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from duchenne.server.handlers import error_body

logger = logging.getLogger(__name__)

REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
LINGER_S = 2.0  # how long a refused connection's further input is read and dropped


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


def guarded_protocol(max_header_bytes: int, header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol class with the two limits (pass it as ``http=``).

    Raises:
        ImportError: httptools is not installed (it comes with ``duchenne[server]``).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """``HttpToolsProtocol`` + header size (431) and header time (408) limits."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_headers = True  # reading a request's header block (or waiting for one)
            self._header_bytes = 0
            self._headers_completed = 0
            self._lingering = False
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
            was_in_headers, completed = self._in_headers, self._headers_completed
            super().data_received(data)
            # count a chunk only when it is all header bytes: it started and ended inside
            # one header block (a chunk that ends a block or a body also carries other bytes)
            if was_in_headers and self._in_headers and completed == self._headers_completed:
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes and not self.transport.is_closing():
                    self._refuse(
                        431,
                        "RequestHeaderFieldsTooLarge",
                        f"request headers exceed {max_header_bytes:,} bytes",
                    )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_header_timer()  # the time limit runs from a request's first byte

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._header_bytes = 0
            self._headers_completed += 1
            self._cancel_header_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
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

        def _refuse(self, status: int, type: str, message: str) -> None:
            """Answer, then close gracefully: send FIN and drop the client's remaining bytes
            for up to ``LINGER_S`` (closing a socket with unread input sends a reset, which
            can destroy the answer before the client reads it)."""
            self._cancel_header_timer()
            peer = "{}:{}".format(*self.client) if self.client else "client"
            logger.warning("%s: %d %s", peer, status, message)
            self.transport.write(raw_error(status, type, message))
            self._lingering = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self.loop.call_later(LINGER_S, self.transport.close)
            else:
                self.transport.close()

        def eof_received(self) -> bool | None:
            if self._lingering:
                self.transport.close()  # the client has stopped sending
                return None
            return super().eof_received()

    return GuardedHttpToolsProtocol
