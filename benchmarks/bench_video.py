"""End-to-end video analysis speed (frames/s) and peak memory for long videos.

Speed: generated smile clips (the astronaut photo animated as in tests/video_factory.py,
one face, or four faces in a 2x2 grid) are written as MPEG-4 (mp4v)
files and analysed end to end by ``VideoAnalyzer.analyze``: decoding (one background
thread), face tracking with detection every ``detect_every`` frames, smoothing, smile
signals, episodes and D-Markers, and the per-frame rows written to a CSV file. Models are
loaded and warmed up before timing. "threads" is the onnxruntime thread count; the whole
process is pinned to that many CPU cores (``sched_setaffinity``, Linux) and OpenCV to one
thread, so "2 threads" means two cores in total, decoding included.

Memory: peak RSS (``VmHWM``) of a fresh process analysing a 1-minute and a 10-minute video
of one face at 320x240, 30 fps, sampled at 5 fps (``fps=5``: 300 and 3,000 analysed
frames). To keep it cheap the "video" is a frame generator (a 4-second smile cycle repeated,
fed at the analysis rate) rather than a decoded file, with the rows written to CSV and
episodes from the lip-corner signal (``episodes="lip"``: the astronaut smiles in every
frame, so P(smile) alone would give one episode per window); it measures what the
analysis keeps, which is what could grow with length.

    python benchmarks/bench_video.py [--frames 300] [--quick] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from tests.video_factory import SmileProfile, smile_frames, write_video  # noqa: E402

from common import machine_note, markdown_table, update_readme  # noqa: E402

CYCLE = (SmileProfile(start=0.4, onset=0.5, apex=0.6, offset=0.5),)


def _cycle(size: tuple[int, int], faces: int, fps: float, seconds: float = 2.5) -> list[np.ndarray]:
    """One smile cycle of frames: 1 face full-frame, or 4 faces in a 2x2 grid (the right
    column mirrored, each face a quarter cycle later than the previous one)."""
    n = int(round(seconds * fps))
    w, h = size
    if faces == 1:
        return list(smile_frames(CYCLE, fps=fps, n_frames=n, size=(w, h)))
    tile = list(smile_frames(CYCLE, fps=fps, n_frames=n, size=(w // 2, h // 2)))

    def face(i: int, k: int) -> np.ndarray:
        image = tile[(i + k * n // 4) % n]
        return image[:, ::-1] if k % 2 else image

    return [
        np.ascontiguousarray(
            np.concatenate(
                [
                    np.concatenate([face(i, 0), face(i, 1)], 1),
                    np.concatenate([face(i, 2), face(i, 3)], 1),
                ]
            )
        )
        for i in range(n)
    ]


def make_clip(folder: Path, size: tuple[int, int], faces: int, frames: int, fps: float) -> Path:
    """An mp4v file of ``frames`` frames looping one smile cycle."""
    cycle = _cycle(size, faces, fps)
    path = folder / f"{size[0]}x{size[1]}_{faces}faces.mp4"
    write_video(path, (cycle[i % len(cycle)] for i in range(frames)), fps)
    return path


_ALL_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin(cores: int | None) -> None:
    """Pin this process to the first ``cores`` CPUs it was started with (None = all)."""
    if _ALL_CPUS:
        os.sched_setaffinity(0, set(_ALL_CPUS[:cores] if cores else _ALL_CPUS))


def speed_rows(
    folder: Path, frames: int, fps: float, runs: int, models: dict[str, str]
) -> list[list[object]]:
    from duchenne.analysis.analyzer import Analyzer
    from duchenne.analysis.video import VideoAnalyzer, VideoOptions

    configs = [((640, 480), 1), ((640, 480), 4), ((1280, 720), 1), ((1280, 720), 4)]
    clips = {c: make_clip(folder, c[0], c[1], frames, fps) for c in configs}
    rows = []
    for threads in (1, 2):
        _pin(threads)
        analyzer = Analyzer(threads=threads)
        models.update(analyzer.model_names)
        for (size, faces), path in clips.items():
            detect_modes = (10, 1) if (size, faces) == ((640, 480), 1) else (10,)
            for every in detect_modes:
                video = VideoAnalyzer(analyzer, VideoOptions(detect_every=every))
                video.analyze(path, max_frames=20, output=folder / "warm.csv")  # warm-up
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    result = video.analyze(path, output=folder / "rows.csv")
                    times.append(time.perf_counter() - t0)
                best = min(times)
                n = result.frames_analysed
                rows.append(
                    [
                        f"{size[0]}x{size[1]}",
                        faces,
                        threads,
                        every,
                        n,
                        len(result.tracks),
                        round(n / best, 1),
                        round(1000 * best / n, 2),
                    ]
                )
                print("|", " | ".join(map(str, rows[-1])), "|", flush=True)
    _pin(None)
    return rows


def _generator(minutes: float, fps: float) -> Iterator[np.ndarray]:
    cycle = _cycle((320, 240), 1, fps, seconds=4.0)
    for i in range(int(minutes * 60 * fps)):
        yield cycle[i % len(cycle)]


def rss_child(minutes: float) -> None:
    """Run one memory measurement (in a fresh process) and print it as JSON."""
    import tracemalloc

    from duchenne.analysis.analyzer import Analyzer
    from duchenne.analysis.video import VideoAnalyzer, VideoOptions

    analyzer = Analyzer(threads=2)
    # episodes from the lip-corner signal: the astronaut smiles in every frame (P(smile)
    # 0.9997), so the P(smile) runs of the default would be one episode per window cut,
    # while each 4 s cycle of the animated smile is one episode of the lip signal
    video = VideoAnalyzer(analyzer, VideoOptions(episodes="lip"))
    with tempfile.TemporaryDirectory() as tmp:
        video.analyze(_generator(0.1, 5.0), source_fps=5.0, output=Path(tmp) / "w.csv")  # warm
        tracemalloc.start()
        t0 = time.perf_counter()
        result = video.analyze(_generator(minutes, 5.0), source_fps=5.0, output=Path(tmp) / "r.csv")
        seconds = time.perf_counter() - t0
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(
        json.dumps(
            {
                "minutes": minutes,
                "frames": result.frames_analysed,
                "episodes": len(result.episodes),
                "rows": result.rows_written,
                "peak_rss_mb": _peak_rss_mb(),
                "peak_traced_mb": round(traced / 2**20, 2),
                "seconds": round(seconds, 1),
            }
        )
    )


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / scale / 2**20, 1)


def rss_rows(minutes: list[float]) -> list[list[object]]:
    rows = []
    for m in minutes:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(m)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        data = json.loads(out.strip().splitlines()[-1])
        rows.append(
            [
                f"{m:g} min",
                data["frames"],
                data["episodes"],
                data["rows"],
                data["peak_rss_mb"],
                data["peak_traced_mb"],
                data["seconds"],
            ]
        )
        print("|", " | ".join(map(str, rows[-1])), "|", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per speed clip")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per setting (best kept)")
    parser.add_argument("--quick", action="store_true", help="60 frames, 1 run, 0.5/2-min RSS")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    parser.add_argument("--memory-only", action="store_true", help="only the memory table")
    parser.add_argument("--rss-child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.setNumThreads(1)
    if args.rss_child is not None:
        rss_child(args.rss_child)
        return
    frames, runs = (60, 1) if args.quick else (args.frames, args.runs)
    models: dict[str, str] = {}
    speed = []
    if not args.memory_only:
        with tempfile.TemporaryDirectory() as tmp:
            speed = speed_rows(Path(tmp), frames, 30.0, runs, models)
    memory = rss_rows([0.5, 2.0] if args.quick else [1.0, 10.0])
    if args.memory_only:
        print(
            markdown_table(
                ["video", "frames", "episodes", "rows", "RSS MB", "traced MB", "s"], memory
            )
        )
        return
    text = "\n\n".join(
        [
            markdown_table(
                [
                    "video",
                    "faces",
                    "threads (= cores)",
                    "detect every",
                    "frames",
                    "tracks",
                    "fps",
                    "ms/frame",
                ],
                speed,
            ),
            markdown_table(
                [
                    "video (320x240, 30 fps, analysed at 5 fps)",
                    "frames analysed",
                    "episodes",
                    "rows written",
                    "peak RSS (MB)",
                    "peak traced by tracemalloc (MB)",
                    "seconds (with tracemalloc)",
                ],
                memory,
            ),  # fmt: skip
            "Speed: generated 30 fps mp4v clips analysed end to end (decode, tracking, smile "
            "signals, episodes, D-Markers, CSV rows), models: "
            + ", ".join(f"{k} {v}" for k, v in models.items())
            + ("" if "smile" in models else " (no smile model installed: smile stage skipped)")
            + ". Memory: a frame generator stands in for the file, episodes from the lip-corner signal (see the script).",
            machine_note().format(script="benchmarks/bench_video.py")
            + f" OpenCV {cv2.__version__}, numpy {np.__version__}.",
        ]
    )
    print(text)
    if args.readme:
        update_readme("bench-video", text)


if __name__ == "__main__":
    main()
