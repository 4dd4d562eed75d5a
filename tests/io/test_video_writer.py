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
