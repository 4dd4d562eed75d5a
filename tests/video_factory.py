"""Synthetic smile videos with known timing, made from the bundled public-domain photo.

Why synthetic: tests need videos whose smile onset, apex and offset are known to the frame,
with no external data. We take the astronaut photo (``duchenne.data.astronaut()``), find
its Face Mesh landmarks once, and for every frame move a few control landmarks by a known
time profile:

* AU12 (lip-corner pull): the outer lip corners 61 / 291 move outwards and up;
* AU6 (cheek raise, "Duchenne"): the upper eyelids 159 / 386 move down, the lower eyelids
  145 / 374 up (the eye narrows) and the cheeks 50 / 280 up.

Each control point drags its neighbourhood with a Gaussian fall-off (a smooth radial-basis
displacement field, so the neighbouring landmarks move with it), and the frame is
resampled with ``cv2.remap`` (backward mapping, accurate for displacements small against
the fall-off radius). The photo already shows a slight smile; it is the "rest" face.

The profile is piecewise linear (rest, linear onset ramp, apex plateau, linear offset
ramp, rest), on which duchenne's phase split is exact, so measured phase boundaries can be
compared with the generated ones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from duchenne import data

#: Landmarks moved by each action unit, with (dx, dy) in units of the mouth width (lip) or
#: of the eye gap (lids, cheeks), and the fall-off radius in the same units.
_LIP_CONTROLS = ((61, (-0.16, -0.10), 0.22), (291, (0.16, -0.10), 0.22))
_AU6_CONTROLS = (
    # upper eyelids down (several points of the lid contour, small radius so the lower
    # lid and the eye corners stay put)
    *((i, (0.0, 0.45), 0.35) for i in (160, 159, 158, 387, 386, 385)),
    # lower eyelids up
    *((i, (0.0, -0.25), 0.35) for i in (145, 374)),
    # cheeks up
    (50, (0.0, -0.45), 1.2),
    (280, (0.0, -0.45), 1.2),
)
_FACE_CENTRE = (225.0, 124.0)  # of the astronaut's face in the 512x512 photo


@dataclass(frozen=True)
class SmileProfile:
    """Piecewise-linear smile time profile (seconds).

    Attributes:
        start: onset start (the face is at rest before).
        onset: onset (rise) duration.
        apex: plateau duration.
        offset: offset (fall) duration; the face is at rest after.
        lip: AU12 strength (1 = default corner displacement, 0 = none).
        au6: AU6 strength (eye narrowing and cheek raise; 0 = a "posed" smile without it).
    """

    start: float = 0.6
    onset: float = 0.5
    apex: float = 0.6
    offset: float = 0.6
    lip: float = 1.0
    au6: float = 1.0

    @property
    def apex_start(self) -> float:
        return self.start + self.onset

    @property
    def offset_start(self) -> float:
        return self.apex_start + self.apex

    @property
    def end(self) -> float:
        return self.offset_start + self.offset

    def level(self, t: float) -> float:
        """Smile level in [0, 1] at time ``t``."""
        if t <= self.start or t >= self.end:
            return 0.0
        if t < self.apex_start:
            return (t - self.start) / self.onset
        if t <= self.offset_start:
            return 1.0
        return (self.end - t) / self.offset

    def frames(self, fps: float) -> tuple[int, int, int, int]:
        """Frame indices of onset start, apex start, offset start and offset end."""
        return tuple(
            round(x * fps) for x in (self.start, self.apex_start, self.offset_start, self.end)
        )  # type: ignore[return-value]


@dataclass(frozen=True)
class Template:
    """A rest face image (RGB) and its Face Mesh landmarks (468, 2) in its pixels."""

    image: np.ndarray
    landmarks: np.ndarray

    @property
    def mouth_width(self) -> float:
        return float(np.linalg.norm(self.landmarks[61] - self.landmarks[291]))

    @property
    def eye_gap(self) -> float:
        """Mean upper-to-lower eyelid distance (pixels)."""
        lm = self.landmarks
        return float(0.5 * (np.linalg.norm(lm[159] - lm[145]) + np.linalg.norm(lm[386] - lm[374])))


@functools.lru_cache(maxsize=1)
def _astronaut_landmarks() -> np.ndarray:
    """Face Mesh landmarks (468, 2) of the astronaut photo (computed once per process)."""
    from duchenne.analysis.analyzer import Analyzer

    faces = Analyzer(stages=("detect", "landmarks"), threads=1).analyze(data.astronaut())
    if len(faces) != 1 or faces.landmarks is None:
        raise RuntimeError("the astronaut photo should contain exactly one face")
    return faces.landmarks[0, :, :2].astype(np.float64)


@functools.lru_cache(maxsize=8)
def template(width: int, height: int) -> Template:
    """The astronaut's face cropped around the face to ``width`` x ``height`` (same scale
    on both axes: the crop has the output's aspect ratio, 225 source pixels high)."""
    src = data.astronaut()
    crop_h = 225.0
    crop_w = crop_h * width / height
    x0 = _FACE_CENTRE[0] - crop_w / 2
    y0 = _FACE_CENTRE[1] - crop_h / 2
    scale = height / crop_h
    m = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)
    image = cv2.warpAffine(
        src, m, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT
    )
    lm = _astronaut_landmarks() * scale + np.array([-x0 * scale, -y0 * scale])
    return Template(np.ascontiguousarray(image), lm)


def render(tpl: Template, lip: float, au6: float) -> np.ndarray:
    """The template warped to AU12 level ``lip`` and AU6 level ``au6`` (RGB uint8)."""
    controls = []
    w, g = tpl.mouth_width, tpl.eye_gap
    for idx, (dx, dy), radius in _LIP_CONTROLS:
        controls.append((tpl.landmarks[idx], np.array([dx, dy]) * w * lip, radius * w))
    for idx, (dx, dy), radius in _AU6_CONTROLS:
        controls.append((tpl.landmarks[idx], np.array([dx, dy]) * g * au6, radius * g))
    controls = [c for c in controls if np.any(np.abs(c[1]) > 1e-3)]
    if not controls:
        return tpl.image.copy()
    h, wd = tpl.image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:wd].astype(np.float32)
    dx = np.zeros((h, wd), np.float32)
    dy = np.zeros((h, wd), np.float32)
    for point, disp, radius in controls:
        cx, cy = point + disp  # the field is centred on the *displaced* point (backward map)
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2.0 * radius * radius))
        dx += weight * np.float32(disp[0])
        dy += weight * np.float32(disp[1])
    return cv2.remap(tpl.image, xs - dx, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def smile_frames(
    profiles: Sequence[SmileProfile],
    *,
    fps: float = 25.0,
    duration: float = 3.0,
    size: tuple[int, int] = (320, 240),
    n_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """RGB frames of one face per profile, side by side (the second face mirrored).

    Args:
        profiles: one :class:`SmileProfile` per face (1 or 2).
        fps: frame rate.
        duration: seconds (ignored when ``n_frames`` is given).
        size: (width, height) of the frame.
        n_frames: exact number of frames.
    """
    if not 1 <= len(profiles) <= 2:
        raise ValueError("one or two faces")
    width, height = size
    tile_w = width // len(profiles)
    tpl = template(tile_w, height)
    total = n_frames if n_frames is not None else int(round(duration * fps))
    for i in range(total):
        t = i / fps
        tiles = []
        for k, prof in enumerate(profiles):
            level = prof.level(t)
            tile = render(tpl, level * prof.lip, level * prof.au6)
            tiles.append(tile[:, ::-1] if k == 1 else tile)
        frame = np.concatenate(tiles, axis=1)
        if frame.shape[1] != width:
            frame = np.pad(frame, ((0, 0), (0, width - frame.shape[1]), (0, 0)), mode="edge")
        yield np.ascontiguousarray(frame)


def write_video(path: Path, frames: Iterator[np.ndarray], fps: float) -> Path:
    """Write RGB frames with OpenCV: MJPG for ``.avi``, mp4v for ``.mp4``.

    AVI files use OpenCV's own MJPEG encoder, which codes every frame alike (FFmpeg's codes
    the first frame differently, a step in the landmarks of an otherwise still face).
    """
    path = Path(path)
    avi = path.suffix.lower() == ".avi"
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if avi else "mp4v"))
    api = cv2.CAP_OPENCV_MJPEG if avi else cv2.CAP_FFMPEG
    writer = None
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), api, fourcc, float(fps), (w, h))
                if not writer.isOpened():
                    raise RuntimeError(f"cannot write {path}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    return path


@dataclass(frozen=True)
class SyntheticVideo:
    """A generated clip and its ground truth."""

    path: Path
    fps: float
    n_frames: int
    profiles: tuple[SmileProfile, ...]
    size: tuple[int, int]


def make_smile_video(
    path: Path,
    profiles: Sequence[SmileProfile] = (SmileProfile(),),
    *,
    fps: float = 25.0,
    duration: float = 3.0,
    size: tuple[int, int] = (320, 240),
) -> SyntheticVideo:
    """Generate and write a smile clip; see :func:`smile_frames`."""
    n = int(round(duration * fps))
    write_video(path, smile_frames(profiles, fps=fps, n_frames=n, size=size), fps)
    return SyntheticVideo(Path(path), fps, n, tuple(profiles), size)


def truncate_file(src: Path, dst: Path, keep: float) -> Path:
    """Copy the first ``keep`` fraction (0..1) of ``src``'s bytes to ``dst`` (a cut download)."""
    content = Path(src).read_bytes()
    Path(dst).write_bytes(content[: int(math.floor(len(content) * keep))])
    return Path(dst)


def cheap_frames(n: int, size: tuple[int, int] = (64, 48)) -> Iterator[np.ndarray]:
    """``n`` tiny frames from a generator (for memory tests whose face stage is faked)."""
    w, h = size
    base = np.zeros((h, w, 3), np.uint8)
    for i in range(n):
        base[0, 0, 0] = i % 256
        yield base


def make_labeled_set(
    root: Path,
    subjects: int = 4,
    folds: int = 2,
    *,
    fps: float = 15.0,
    duration: float = 2.0,
    size: tuple[int, int] = (240, 180),
) -> tuple[Path, Path]:
    """A tiny UvA-NEMO-like dataset: per subject one posed and one spontaneous clip.

    Posed smiles have a fast onset and offset and no AU6; spontaneous ones a slow onset
    and offset with AU6 (the tendencies reported in the literature). Subjects are split
    into ``folds`` subject-independent folds written as ``labels/<k>/train.json`` and
    ``test.json`` (``{"name": 0|1}``, 0 = posed).

    Returns:
        ``(videos_dir, labels_dir)``.
    """
    videos, labels = Path(root) / "videos", Path(root) / "labels"
    videos.mkdir(parents=True, exist_ok=True)
    names: dict[int, dict[str, int]] = {}
    for s in range(subjects):
        jitter = 0.05 * (s % 3)
        clips = {
            f"{s + 1:03d}_deliberate_smile_1": SmileProfile(
                start=0.3 + jitter, onset=0.2, apex=0.5, offset=0.25, au6=0.0
            ),
            f"{s + 1:03d}_spontaneous_smile_1": SmileProfile(
                start=0.2 + jitter, onset=0.6, apex=0.3, offset=0.6, au6=1.0
            ),
        }
        for name, prof in clips.items():
            make_smile_video(videos / f"{name}.avi", [prof], fps=fps, duration=duration, size=size)
        names[s] = {n: int("spontaneous" in n) for n in clips}
    import json

    for k in range(folds):
        test = {n: v for s, d in names.items() if s % folds == k for n, v in d.items()}
        train = {n: v for s, d in names.items() if s % folds != k for n, v in d.items()}
        fold_dir = labels / str(k + 1)
        fold_dir.mkdir(parents=True, exist_ok=True)
        (fold_dir / "train.json").write_text(json.dumps(train))
        (fold_dir / "test.json").write_text(json.dumps(test))
    return videos, labels


_CACHE_DIR: Path | None = None


def cached_video(
    name: str,
    profiles: Sequence[SmileProfile],
    *,
    fps: float = 25.0,
    duration: float = 3.0,
    size: tuple[int, int] = (320, 240),
) -> SyntheticVideo:
    """A generated clip shared by every test of the session (written once, removed at exit)."""
    global _CACHE_DIR
    if _CACHE_DIR is None:
        import atexit
        import shutil
        import tempfile

        _CACHE_DIR = Path(tempfile.mkdtemp(prefix="duchenne-videos-"))
        atexit.register(shutil.rmtree, _CACHE_DIR, True)
    path = _CACHE_DIR / name
    key = (tuple(profiles), fps, duration, size)
    known = _CACHED.get(name)
    if known is not None and known[0] == key:
        return known[1]
    video = make_smile_video(path, profiles, fps=fps, duration=duration, size=size)
    _CACHED[name] = (key, video)
    return video


_CACHED: dict[str, tuple[object, SyntheticVideo]] = {}

#: The standard test clips: one face (Duchenne smile), and two faces smiling at different
#: times (left: slow onset with AU6; right, mirrored: fast onset without AU6).
ONE_FACE = (SmileProfile(start=0.6, onset=0.5, apex=0.6, offset=0.6),)
TWO_FACES = (
    SmileProfile(start=0.3, onset=0.6, apex=0.4, offset=0.6, au6=1.0),
    SmileProfile(start=1.4, onset=0.25, apex=0.5, offset=0.3, au6=0.0),
)


def one_face_clip() -> SyntheticVideo:
    return cached_video("one_face.avi", ONE_FACE)


def two_face_clip() -> SyntheticVideo:
    return cached_video("two_faces.avi", TWO_FACES)


class SyntheticFaceStage:
    """A face stage without models: one face whose lip corners follow a periodic profile.

    For tests of the video bookkeeping (memory bound, windowing) at thousands of frames per
    second: the landmarks are the astronaut's, with the AU12 displacement of
    :func:`render` applied directly to the points.
    """

    with_smile = False

    def __init__(self, profile: SmileProfile, period: float, fps: float = 25.0) -> None:
        self.base = template(320, 240).landmarks
        self.profile, self.period, self.fps = profile, period, fps
        self.width = float(np.linalg.norm(self.base[61] - self.base[291]))
        self.i = 0

    def reset(self) -> None:
        self.i = 0

    def __call__(self, image: np.ndarray):
        from duchenne.faces import Faces

        level = self.profile.level((self.i / self.fps) % self.period)
        self.i += 1
        lm = np.zeros((1, 468, 3), np.float32)
        lm[0, :, :2] = self.base
        for idx, (dx, dy), _ in _LIP_CONTROLS:
            lm[0, idx, :2] += np.array([dx, dy]) * self.width * level
        box = np.concatenate([lm[0, :, :2].min(0), lm[0, :, :2].max(0)])[None]
        return Faces(box, np.ones(1, np.float32), landmarks=lm)
