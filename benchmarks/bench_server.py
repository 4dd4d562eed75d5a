"""Load benchmark of the REST service: ``POST /v1/analyze`` at rising concurrency.

Starts ``duchenne serve`` on 127.0.0.1 (a free port) once per server mode -- micro-batching
on or off, analysis in threads or in worker processes, detector (auto by default),
requests for all stages or for the fast ``stages=detect,smile`` path --
sends a bounded number of requests of one 640x480 one-face JPEG at each
concurrency level (bounded in count and time), and prints requests/s, p50/p99 latency,
refusals (429/503, the intended overload answer), errors (anything else) and the RSS of
the server with its worker processes before and after. The client is a few lines of raw HTTP/1.1 over keep-alive asyncio
connections, so it costs the shared CPU as little as possible.

    python benchmarks/bench_server.py [--levels 1,4,16,64] [--requests 400] [--readme]
    python benchmarks/bench_server.py --modes on,on+p2,on+p2+short   # mode = tokens joined by +
    python benchmarks/bench_server.py --url http://127.0.0.1:8000   # an already running server

Only loopback addresses are accepted: this is a benchmark, not a load-testing tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_note, markdown_table, update_readme  # noqa: E402
from duchenne.io.image import encode_image  # noqa: E402
from sample_images import one_face_640x480  # noqa: E402

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HEADER = [
    "server mode",
    "concurrency",
    "requests",
    "ok",
    "refused 429/503",
    "errors",
    "req/s",
    "p50 ms",
    "p99 ms",
    "RSS before MB",
    "RSS after MB",
]


@dataclass
class LevelResult:
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.failures

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def refused(self) -> int:
        return self.statuses.get(429, 0) + self.statuses.get(503, 0)

    @property
    def errors(self) -> int:
        return self.sent - self.ok - self.refused


# --------------------------------------------------------------------------- the client


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> int:
    """Send one request on a keep-alive connection; returns the status code."""
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run_level(
    host: str,
    port: int,
    body: bytes,
    concurrency: int,
    total: int,
    max_seconds: float,
    path: str = "/v1/analyze",
) -> LevelResult:
    """``concurrency`` connections sending until ``total`` requests or ``max_seconds``."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    result = LevelResult(concurrency)
    remaining = total
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal remaining
        reader = writer = None
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                status = await _request(reader, writer, head, body)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.latencies.append((time.perf_counter() - t0) * 1000)
            except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError):
                result.failures += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of ``pid`` and its child processes in MB (Linux), None when unknown."""
    if pid is None:
        return None
    total = 0.0
    for proc in [pid, *child_pids(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            if proc == pid:
                return None
    return total


def child_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (worker processes, their helpers), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass(frozen=True)
class ServerMode:
    """How one server of the benchmark is started (parsed from e.g. ``on+p2+short``)."""

    batching: bool = True
    processes: int = 0
    detector: str = "auto"
    no_mesh: bool = False  # requests ask for stages=detect,smile (keypoint-aligned crops)

    @classmethod
    def parse(cls, spec: str) -> ServerMode:
        tokens = [t.strip() for t in spec.split("+") if t.strip()]
        mode = cls()
        for token in tokens:
            if token in ("on", "off"):
                mode = replace(mode, batching=token == "on")
            elif token in ("auto", "full", "short"):
                mode = replace(mode, detector=token)
            elif token == "nomesh":
                mode = replace(mode, no_mesh=True)
            elif token.startswith("p") and token[1:].isdigit():
                mode = replace(mode, processes=int(token[1:]))
            else:
                raise SystemExit(f"unknown server mode token {token!r} in {spec!r}")
        return mode

    def label(self, workers: int) -> str:
        where = f"{self.processes} processes" if self.processes else f"{workers} threads"
        text = f"batching {'on' if self.batching else 'off'}, {where}"
        text += f", {self.detector}-range detector" if self.detector != "auto" else ""
        return text + (", `stages=detect,smile`" if self.no_mesh else "")

    @property
    def path(self) -> str:
        return "/v1/analyze?stages=detect,smile" if self.no_mesh else "/v1/analyze"

    def env(self) -> dict[str, str]:
        return {
            "DUCHENNE_BATCHING": "1" if self.batching else "0",
            "DUCHENNE_PROCESSES": str(self.processes),
            "DUCHENNE_DETECTOR": self.detector,
        }


def wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if json.load(resp).get("status") == "ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not become healthy")


def start_server(port: int, mode: ServerMode, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, **extra_env, **mode.env()}
    cmd = [sys.executable, "-m", "duchenne.cli.main", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- ceiling


def _analyze_for(body: bytes, seconds: float, detector: str) -> tuple[int, float]:
    """Decode + ``analyze_batch`` of ``body`` in a loop for ``seconds``; (images, seconds)."""
    from duchenne.analysis.analyzer import Analyzer
    from duchenne.io.image import load_image

    analyzer = Analyzer(threads=1, detector=detector)
    analyzer.analyze_batch([load_image(body)])
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        analyzer.analyze_batch([load_image(body)])
        n += 1
    return n, time.perf_counter() - t0


def ceiling(body: bytes, workers: int, processes: bool, detector: str = "auto") -> float:
    """Images/s of decode + ``Analyzer.analyze_batch`` in ``workers`` threads or processes,
    no HTTP: the most the service could answer on this machine in that mode."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    pool_type = ProcessPoolExecutor if processes else ThreadPoolExecutor
    with pool_type(workers) as pool:
        runs = list(pool.map(_analyze_for, [body] * workers, [8.0] * workers, [detector] * workers))
    return sum(n for n, _ in runs) / max(s for _, s in runs)


# --------------------------------------------------------------------------- driver


def measure(
    host: str,
    port: int,
    pid: int | None,
    label: str,
    body: bytes,
    levels: list[int],
    total: int,
    max_seconds: float,
    path: str = "/v1/analyze",
) -> list[list[object]]:
    """One table row per concurrency level."""
    asyncio.run(run_level(host, port, body, 2, 20, 30, path))  # warm-up: sessions, caches, pools
    rows: list[list[object]] = []
    for level in levels:
        before = rss_mb(pid)
        res = asyncio.run(run_level(host, port, body, level, total, max_seconds, path))
        after = rss_mb(pid)
        lat = np.array(res.latencies) if res.latencies else np.array([np.nan])
        rows.append(
            [
                label,
                level,
                res.sent,
                res.ok,
                res.refused,
                res.errors,
                round(res.ok / res.seconds, 1) if res.seconds else 0.0,
                round(float(np.percentile(lat, 50)), 1),
                round(float(np.percentile(lat, 99)), 1),
                "-" if before is None else round(before),
                "-" if after is None else round(after),
            ]
        )
        print(markdown_table(HEADER, rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="measure this running server (loopback only)")
    parser.add_argument("--levels", default="1,4,8,16,64", help="comma-separated concurrencies")
    parser.add_argument("--requests", type=int, default=400, help="requests per level (max)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time per level (max)")
    parser.add_argument(
        "--modes",
        default="on,off,on+p2,on+nomesh,on+short+nomesh",
        help="server modes, comma-separated; a mode joins tokens with +: on|off (batching), "
        "pN (N worker processes), auto|full|short (detector; auto is the default), nomesh (requests ask for "
        "stages=detect,smile: no Face Mesh)",
    )
    parser.add_argument("--workers", type=int, default=None, help="server inference threads")
    parser.add_argument("--readme", action="store_true", help="write the bench-server block")
    args = parser.parse_args(argv)
    levels = [int(v) for v in args.levels.split(",") if v.strip()]
    total = max(1, min(args.requests, 5000))
    workers = args.workers or os.cpu_count() or 1
    modes = [ServerMode.parse(m) for m in args.modes.split(",") if m.strip()]
    body = encode_image(one_face_640x480(), "jpeg", 90)

    rows: list[list[object]] = []
    if args.url:
        parts = urlsplit(args.url)
        if parts.hostname not in LOOPBACK:
            raise SystemExit("bench_server only drives servers on 127.0.0.1 / localhost")
        wait_healthy(args.url.rstrip("/"))
        rows += measure(
            parts.hostname, parts.port or 80, None, "server", body, levels, total, args.seconds
        )
    else:
        extra = {"DUCHENNE_WORKERS": str(workers)}
        for mode in modes:
            port = free_port()
            proc = start_server(port, mode, extra)
            try:
                wait_healthy(f"http://127.0.0.1:{port}")
                label = mode.label(workers)
                rows += measure(
                    "127.0.0.1", port, proc.pid, label, body, levels, total, args.seconds, mode.path
                )
            finally:
                stop_server(proc)
    note = machine_note().format(script="benchmarks/bench_server.py")
    bounds = []
    for detector in sorted({m.detector for m in modes}):
        for processes in (False, True):
            best = ceiling(body, workers, processes, detector)
            kind = f"{workers} {'processes' if processes else 'threads'}, {detector} detector"
            print(f"ceiling ({kind}): {best:.1f} images/s", file=sys.stderr)
            bounds.append(f"{best:.1f} images/s ({kind})")
    note += (
        " Ceiling without HTTP (decode + `analyze_batch` of the same JPEG in a loop, "
        "no server): " + "; ".join(bounds) + ". The load client shares the same cores."
    )
    text = (
        "Load test of `POST /v1/analyze` with one 640x480 one-face JPEG "
        f"(at most {total} requests and {args.seconds:g} s per level; 429/503 are the "
        "intended overload answers, errors are anything else).\n\n"
        + markdown_table(HEADER, rows)
        + "\n\n"
        + note
    )
    print(text)
    if args.readme:
        update_readme("bench-server", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
