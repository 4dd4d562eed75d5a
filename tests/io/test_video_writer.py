"""Annotated videos browsers play: H.264 MP4 / VP9 WebM through PyAV, clear fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from duchenne.io import video_writer
from duchenne.io.video_writer import VideoWriter, browser_playable

av = pytest.importorskip("av", reason="browser-playable output needs the 'video' extra (PyAV)")


def _frames(n: int = 12, size: tuple[int, int] = (97, 64)):
    h, w = size
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : (i * 7) % w] = (200, 80, 40)
        yield frame


def _codec_of(path) -> tuple[str, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, frames


@pytest.mark.parametrize(("suffix", "codecs"), [(".mp4", {"h264"}), (".webm", {"vp9", "vp8"})])
def test_browser_codecs(tmp_path, suffix, codecs) -> None:
    path = tmp_path / f"out{suffix}"
    with VideoWriter(path, fps=10) as writer:
        for frame in _frames():  # odd width: yuv420p needs even sides
            writer.write(frame)
    codec, frames = _codec_of(path)
    assert codec in codecs and frames == 12
    assert browser_playable(suffix)
    assert not list(tmp_path.glob(".*partial*"))


def test_mp4_moov_atom_first_for_streaming(tmp_path) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=25) as writer:
        for frame in _frames(5):
            writer.write(frame)
    data = path.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: plays while loading


def test_without_pyav_mp4_falls_back_with_a_clear_warning(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(video_writer, "pyav_codec", lambda suffix: None)
    path = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING), VideoWriter(path, fps=10) as writer:
        for frame in _frames(3):
            writer.write(frame)
    assert writer.codec == "mp4v"
    assert "web browsers do not play" in caplog.text and "duchenne[video]" in caplog.text
    assert not browser_playable(".mp4") and browser_playable(".webm")


def test_failure_leaves_no_file(tmp_path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, fps=10) as writer:
        writer.write(next(_frames()))
        raise RuntimeError("boom")
    assert not path.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="must end in"):
        VideoWriter(tmp_path / "out.gif", fps=10)


#: 6 frames at 30 fps, then 4 at 5 fps, from 10 s on (a clip cut out of a longer source)
VFR_TIMES = [10 + i / 30 for i in range(6)] + [10.2 + 0.2 * i for i in range(1, 5)]


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_frames_keep_their_times(tmp_path, suffix) -> None:
    """A variable-rate source was written at one constant rate (its average), so parts
    of the annotated video played too slowly or too fast; each frame now keeps its time
    (less the first one's: the video starts at 0)."""
    path = tmp_path / f"out{suffix}"
    with VideoWriter(path, fps=15) as writer:
        for frame, t in zip(_frames(len(VFR_TIMES)), VFR_TIMES, strict=True):
            writer.write(frame, t)
    with av.open(str(path)) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    assert times == pytest.approx([t - 10 for t in VFR_TIMES], abs=1e-3)


def test_opencv_repeats_or_drops_frames_to_keep_their_times(tmp_path, monkeypatch) -> None:
    """OpenCV writes a constant rate: a frame fills the output frames up to the next
    frame's time, or is dropped when the next falls in the same output frame."""
    monkeypatch.setattr(video_writer, "pyav_codec", lambda suffix: None)
    path = tmp_path / "out.avi"
    levels = (0, 60, 120, 180, 240)
    with VideoWriter(path, fps=10) as writer:
        for level, t in zip(levels, (5.0, 5.1, 5.2, 5.22, 6.0), strict=True):
            writer.write(np.full((24, 32, 3), level, np.uint8), t)
    with av.open(str(path)) as container:
        shown = [int(f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]
    nearest = [min(range(len(levels)), key=lambda i: abs(levels[i] - v)) for v in shown]
    assert nearest == [0, 1, 3, 3, 3, 3, 3, 3, 3, 3, 4]  # 5.2 s dropped, 5.22 s held to 6 s


@pytest.mark.parametrize("suffix", video_writer.SUFFIXES)
@pytest.mark.parametrize("pyav", [True, False], ids=["pyav", "opencv"])
def test_odd_sizes_grow_to_even_in_every_container(tmp_path, monkeypatch, suffix, pyav) -> None:
    """yuv420p needs even sides, so 33x25 was written 34x26, but OpenCV's MJPEG ``.avi``
    rounded down to 32x24; every container now gets 34x26."""
    if not pyav:
        monkeypatch.setattr(video_writer, "pyav_codec", lambda suffix: None)
    path = tmp_path / f"out{suffix}"
    with VideoWriter(path, fps=10) as writer:
        for frame in _frames(3, (25, 33)):
            writer.write(frame)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (34, 26)
