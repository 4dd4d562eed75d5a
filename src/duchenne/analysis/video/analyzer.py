"""Entry points: :class:`VideoAnalyzer` (reusable) and :func:`analyze_video` (one call)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.authenticity_classifier import AuthenticityClassifier
from duchenne.analysis.video.face_stage import TrackingFaceStage
from duchenne.analysis.video.options import VideoOptions, frame_feature_names
from duchenne.analysis.video.results import VideoResult
from duchenne.analysis.video.session import VideoSession, template_row
from duchenne.errors import DuchenneError, VideoDecodeError
from duchenne.faces import DEFAULT_SMILE_THRESHOLD, Faces
from duchenne.io.frames import array_rate
from duchenne.io.sinks import RecordWriter
from duchenne.io.video import Frame, Sampling, VideoInfo, VideoReader, iter_frames
from duchenne.models.smile import parse_emotion_prior

# the package's logger (not this module's): log records keep the name they had when the
# package was one module
logger = logging.getLogger(__package__)


class VideoAnalyzer:
    """Analyse videos with one set of models and options (the sessions are reused).

    Args:
        analyzer: a :class:`~duchenne.analysis.analyzer.Analyzer` (None = a default one).
        options: :class:`VideoOptions`.
        stage: replace the face stage (image -> ``Faces``), e.g. in tests.
        classifier: a trained authenticity model (path to its JSON, or the object).

    Example:
        >>> result = VideoAnalyzer().analyze("clip.mp4", output="frames.csv")  # doctest: +SKIP
        >>> [(t.track_id, len(t.episodes)) for t in result.tracks]  # doctest: +SKIP
    """

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        options: VideoOptions | None = None,
        *,
        stage: Callable[[np.ndarray], Faces] | None = None,
        classifier: AuthenticityClassifier | str | os.PathLike[str] | None = None,
    ) -> None:
        self.options = options or VideoOptions()
        if stage is None:
            if analyzer is None:
                analyzer = Analyzer()
            stage = TrackingFaceStage(
                analyzer, self.options.detect_every, self.options.min_presence
            )
        self.analyzer = analyzer
        self.stage = stage
        self.classifier, self.classifier_info = _load_classifier(classifier)
        trained_on = (self.classifier_info or {}).get("frame_features")
        if self.classifier is not None and self.classifier.kind == "fusion" and trained_on:
            if tuple(trained_on) != self.feature_names:
                raise DuchenneError(
                    f"{self.classifier_info.get('path', 'the classifier')}: trained on per-frame "
                    f"features {trained_on}, but this analyzer gives {list(self.feature_names)} "
                    "(a smile model present at training time and not now, or the reverse)"
                )
            self._check_emotion_prior()

    def _check_emotion_prior(self) -> None:
        """A fusion model reads the emotion probabilities, which the emotion prior moves:
        one trained under another prior would get inputs it never saw."""
        extraction = (self.classifier_info or {}).get("extraction") or {}
        if "emotion_prior" not in extraction or self.analyzer is None:
            return  # recorded since train-authenticity stored it; older models: unknown
        trained = parse_emotion_prior(extraction["emotion_prior"])
        ours = self.analyzer.config.emotion_prior
        same = (
            trained == ours
            if isinstance(trained, str) or isinstance(ours, str)
            else bool(np.allclose(trained, ours))
        )
        if not same:
            raise DuchenneError(
                f"{self.classifier_info.get('path', 'the classifier')}: trained with emotion "
                f"prior {trained!r}, but this analyzer uses {ours!r}; analyse with that prior "
                "(--emotion-prior) or retrain"
            )

    @property
    def with_smile(self) -> bool:
        """Whether a smile model runs (it decides the per-frame feature vector)."""
        return bool(getattr(self.stage, "with_smile", False))

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the per-frame feature vector (:func:`frame_feature_names`)."""
        return frame_feature_names(self.with_smile)

    def analyze(
        self,
        source: Any,
        *,
        output: str | os.PathLike[str] | RecordWriter | None = None,
        format: str | None = None,
        draw: str | os.PathLike[str] | None = None,
        plot_dir: str | os.PathLike[str] | None = None,
        best_dir: str | os.PathLike[str] | None = None,
        every: int = 1,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        source_fps: float | None = None,
        on_error: str = "raise",
        callback: Callable[[Frame, Faces], None] | None = None,
        prefetch: int = 2,
        progress: bool = False,
    ) -> VideoResult:
        """Analyse one video; see :func:`analyze_video` for the arguments."""
        if on_error not in ("raise", "return"):
            raise ValueError("on_error must be 'raise' or 'return'")
        sampling = Sampling(every=every, fps=fps, start=start, end=end, max_frames=max_frames)
        reader, info, source_rate = _open(source, source_fps)
        rate = sampling.effective_fps(source_rate) or 30.0
        if hasattr(self.stage, "reset"):
            self.stage.reset()
        own_writer = output is not None and not hasattr(output, "write")
        geometry, smile_threshold = self._geometry, self._smile_threshold
        writer = (
            RecordWriter(
                output,  # type: ignore[arg-type]
                format,
                keep_partial=True,
                row_group_size=2000,
                template=self.frame_template(),
            )
            if own_writer
            else output
        )
        session = VideoSession(
            self.stage,
            rate,
            self.options,
            geometry=geometry,
            with_smile=self.with_smile,
            writer=writer,
            draw=draw,
            plot_dir=plot_dir,
            best_dir=best_dir,
            classifier=self.classifier,
            classifier_info=self.classifier_info,
            source=_source_label(source, info),
            info=info,
            models=self.analyzer.model_names if self.analyzer is not None else {},
            smile_threshold=smile_threshold,
            sampling=sampling.describe(source_rate),
        )
        frames = iter_frames(
            reader if reader is not None else source,
            sampling=sampling,
            source_fps=source_fps,
            prefetch=prefetch,
        )
        try:
            result, error = self._run(session, frames, callback, progress, info)
        except BaseException:
            session.abort()
            if own_writer:
                writer.abort()  # type: ignore[union-attr]
            raise
        finally:
            frames.close()  # stops the decode thread before the reader is released
            if reader is not None:
                reader.close()
        if own_writer:
            writer.close()  # type: ignore[union-attr]
            result.outputs["frames"] = str(writer.path)  # type: ignore[union-attr]
        if error is not None and on_error == "raise":
            error.result = result  # type: ignore[attr-defined]
            raise error
        return result

    def frame_template(self) -> dict[str, Any] | None:
        """The per-frame table's columns before any face is seen: the header a table of a
        video without faces still gets (``duchenne video`` and the service's CSV share it).
        None: a face stage that cannot say which fields its faces carry; the columns then
        come from the rows."""
        template = getattr(self.stage, "template", None)
        if not callable(template):
            return None
        return template_row(
            template(), geometry=self._geometry, smile_threshold=self._smile_threshold
        )

    @property
    def _geometry(self) -> bool:
        """Whether the rows carry the geometry columns (a custom stage: assume so)."""
        return self.analyzer is None or "geometry" in self.analyzer.stages

    @property
    def _smile_threshold(self) -> float:
        return float(getattr(self.analyzer, "smile_threshold", DEFAULT_SMILE_THRESHOLD))

    def _run(
        self,
        session: VideoSession,
        frames: Iterable[Frame],
        callback: Callable[[Frame, Faces], None] | None,
        progress: bool,
        info: VideoInfo | None,
    ) -> tuple[VideoResult, VideoDecodeError | None]:
        """The frame loop; a decode error ends it with a partial result."""
        from duchenne.io.progress import ProgressBar

        total = None if info is None or info.frame_count is None else info.frame_count
        bar = ProgressBar(total=total, disable=not progress, desc="frames", unit="frame")
        try:
            for frame in frames:
                faces = session.process(frame)
                if callback is not None:
                    callback(frame, faces)
                bar.update(frame.index + 1 - bar.n if total else 1)
        except VideoDecodeError as exc:
            logger.info("%s", exc)
            return session.finish(error=exc), exc
        except KeyboardInterrupt:
            if info is None or not info.is_live:
                raise
            logger.info("stopped by the user")  # a camera ends with Ctrl-C: keep the results
        finally:
            bar.close()
        return session.finish(), None


def analyze_video(
    analyzer: Analyzer,
    source: Any,
    *,
    options: VideoOptions | None = None,
    classifier: AuthenticityClassifier | str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> VideoResult:
    """Analyse a video file, camera or frame iterable, streaming (see the module docstring).

    Args:
        analyzer: the :class:`~duchenne.analysis.analyzer.Analyzer` whose models run.
        source: a path, a camera index, a :class:`~duchenne.io.video.VideoReader`, or an
            iterable of RGB frames / :class:`~duchenne.io.video.Frame` (a generator is fine).
        options: :class:`VideoOptions` (``detect_every``, episode settings ...).
        classifier: optional trained authenticity model (JSON path or object) applied to
            every episode (``EpisodeResult.classifier_probability``).
        output: per-frame table (``.csv``, ``.jsonl``, ``.parquet``, ``.json`` or a
            :class:`~duchenne.io.sinks.RecordWriter`); rows are streamed, and on a decode
            error the rows written so far are kept (``keep_partial=True``).
        format: table format when the suffix does not say it.
        draw: annotated output video (``.mp4``, ``.webm``, ``.m4v``, ``.mov``, ``.mkv``,
            ``.avi``).
        plot_dir: one timeline PNG per face (needs matplotlib: ``duchenne[plot]``).
        best_dir: the smiliest frame of each face (a crop around the face), as JPEG.
        every, fps, start, end, max_frames: frame sampling and time range (seconds).
        source_fps: frame rate of a frame iterable (default 30).
        on_error: ``"raise"`` (default): a decode error is raised as ``VideoDecodeError``
            *after* everything analysed before it was finished and written, with the
            partial result as ``exc.result``; ``"return"``: the partial result is returned
            with ``complete=False`` and ``error`` set.
        callback: called with each frame and its faces.
        prefetch: frames decoded ahead in a background thread.
        progress: show a progress bar.

    Returns:
        :class:`VideoResult`: per-face summaries with their smile episodes.

    Raises:
        VideoOpenError: the source cannot be opened or has no decodable frame.
        VideoDecodeError: decoding stopped part way (with ``on_error="raise"``).

    Example:
        >>> from duchenne import Analyzer, analyze_video
        >>> result = analyze_video(Analyzer(), "clip.mp4", output="frames.csv")  # doctest: +SKIP
        >>> result.tracks[0].episodes[0].genuineness.score  # doctest: +SKIP
    """
    return VideoAnalyzer(analyzer, options, classifier=classifier).analyze(source, **kwargs)


def _open(
    source: Any, source_fps: float | None
) -> tuple[VideoReader | None, VideoInfo | None, float]:
    """Open a path/camera source once (for its info); the frame rate of the source
    (0 = a file that does not say)."""
    if isinstance(source, VideoReader):
        return None, source.info, source.info.fps
    if isinstance(source, (str, os.PathLike, int)) and not isinstance(source, bool):
        reader = VideoReader(source)
        return reader, reader.info, reader.info.fps
    return None, None, array_rate(source_fps)


def _source_label(source: Any, info: VideoInfo | None) -> str:
    return info.source if info is not None else "<frames>"


def _load_classifier(
    classifier: AuthenticityClassifier | str | os.PathLike[str] | None,
) -> tuple[AuthenticityClassifier | None, dict[str, Any] | None]:
    """A classifier object and its provenance (``{"path": ...}`` plus what the file records)."""
    if classifier is None:
        return None, None
    if isinstance(classifier, AuthenticityClassifier):
        return classifier, {"kind": classifier.kind, "provenance": "passed in by the caller"}
    import json

    path = Path(classifier)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        model = AuthenticityClassifier.from_dict(content)
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise DuchenneError(f"{path}: not a duchenne authenticity model ({exc})") from None
    except ValueError as exc:  # its own words: another format, or other D-Marker formulas
        raise DuchenneError(f"{path}: {exc}") from None
    info = {"path": str(path), "kind": model.kind, **content.get("provenance", {})}
    return model, info
