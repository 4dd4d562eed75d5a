"""The analysis engine behind the routes: one ``Analyzer``, a thread pool and the batcher.

Why a separate object: routes stay thin (parse, call, format) and everything that costs
CPU -- decoding, the face pipeline, drawing, encoding -- runs here, in the pool, never on
the event loop. Per-request options (stages, max faces, minimum face size) are served by
shallow copies of the one ``Analyzer`` that share its onnxruntime sessions (concurrent
``InferenceSession.run`` on one session is thread-safe), so no request builds a model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import ALL_STAGES, STAGES, AnalyzerConfig, normalize_stages
from duchenne.annotate import FaceAnnotator
from duchenne.errors import ImageLoadError
from duchenne.faces import DEFAULT_SMILE_THRESHOLD, Faces
from duchenne.io.image import encode_image, load_image
from duchenne.models.smile import EmotionPrior, parse_emotion_prior
from duchenne.server.batcher import MicroBatcher
from duchenne.server.metrics import Metrics
from duchenne.server.processes import ProcessAnalysis
from duchenne.server.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyzeOptions:
    """Per-request options; equal options share a batch.

    Args:
        stages: stages to run (normalised, e.g. geometry adds landmarks).
        max_faces: keep at most this many faces (highest detector score first).
        min_face_size: drop faces smaller than this many pixels (short box side).
        crop: the image is already a face crop (no detection).
        smile_threshold: P(smile) from which a face counts as smiling.
        emotion_prior: the emotion class prior (None: the service's, ``--emotion-prior``).
    """

    stages: tuple[str, ...] = STAGES
    max_faces: int | None = None
    min_face_size: float = 0.0
    crop: bool = False
    smile_threshold: float = DEFAULT_SMILE_THRESHOLD
    emotion_prior: EmotionPrior | None = None

    @classmethod
    def parse(
        cls,
        stages: str | Sequence[str] | None = None,
        max_faces: int | None = None,
        min_face_size: float = 0.0,
        crop: bool = False,
        smile_threshold: float = DEFAULT_SMILE_THRESHOLD,
        emotion_prior: str | None = None,
    ) -> AnalyzeOptions:
        """Build options from query values; ``ValueError`` names an unknown stage, an empty
        stage list or a bad emotion prior."""
        if stages is None:
            names: Sequence[str] = STAGES
        elif isinstance(stages, str):
            names = [s.strip() for s in stages.split(",") if s.strip()]
        else:
            names = list(stages)
        if not names:  # "stages=" once meant detection only, silently
            raise ValueError(
                f"no stage given; choose from {','.join(ALL_STAGES)} "
                f"(leave stages out for the default, {','.join(STAGES)})"
            )
        return cls(
            normalize_stages(names),
            max_faces,
            float(min_face_size),
            bool(crop),
            float(smile_threshold),
            None if emotion_prior is None else parse_emotion_prior(emotion_prior),
        )

    def config_for(self, analyzer: Analyzer) -> AnalyzerConfig:
        """``analyzer``'s config restricted to these options (a ``dataclasses.replace``).

        The smile stage is dropped when the analyzer has no smile model, and the opt-in
        blendshapes stage when the analyzer did not load it, so such a service still
        answers (faces without those fields) instead of failing.
        """
        missing = {"smile": analyzer.smile_model is None}
        missing["blendshapes"] = getattr(analyzer, "blendshape_stage", None) is None
        stages = [s for s in self.stages if not missing.get(s, False)]
        return replace(
            analyzer.config,
            stages=tuple(stages),
            max_faces=self.max_faces,
            min_face_size=self.min_face_size,
            smile_threshold=self.smile_threshold,
            emotion_prior=self.emotion_prior or analyzer.config.emotion_prior,
        )


def analyzer_config(settings: Settings) -> AnalyzerConfig:
    """The service's ``Analyzer`` options (the same in worker processes): all stages,
    requests pick subsets."""
    return AnalyzerConfig(
        stages=ALL_STAGES,
        detector=settings.detector,
        smile_model=settings.model,
        threads=settings.threads,
        max_pixels=settings.max_pixels,
        device=settings.device,
        emotion_prior=settings.emotion_prior,
    )


def build_analyzer(settings: Settings) -> Analyzer:
    """The service's one ``Analyzer``.

    Raises:
        UnknownModelError: ``settings.model`` names no shipped model or file.
    """
    return Analyzer(analyzer_config(settings))


class Engine:
    """Runs analyses for the service.

    Args:
        settings: the service settings (threads, model, batching, limits).
        metrics: where images, faces and batch sizes are counted.
        analyzer: use this analyzer instead of building one (tests).
    """

    def __init__(
        self, settings: Settings, metrics: Metrics, analyzer: Analyzer | None = None
    ) -> None:
        self.settings, self.metrics = settings, metrics
        self.analyzer = analyzer or build_analyzer(settings)
        self.processes: ProcessAnalysis | None = None
        slots = threads = settings.workers
        if settings.processes:
            self.processes = ProcessAnalysis(settings.processes, analyzer_config(settings))
            # one pool thread waits on each worker process; the rest decode and draw
            slots, threads = settings.processes, settings.processes + settings.workers
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="duchenne-cpu")
        self.batcher: MicroBatcher[AnalyzeOptions, np.ndarray, Faces] = MicroBatcher(
            self._run_batch,
            self.executor,
            slots=slots,
            max_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000.0,
            max_pending=settings.max_queue,
            enabled=settings.batching,
            on_batch=lambda n: self.metrics.batch_size.observe(n),
        )
        self.annotator = FaceAnnotator()
        self._variants: dict[AnalyzerConfig, Analyzer] = {}

    async def start(self) -> None:
        if self.processes is not None:
            pids = await self.run(self.processes.warm_up)
            logger.info("analysis worker processes ready: %s", pids)
        await self.batcher.start()

    async def close(self, timeout: float) -> None:
        """Finish queued and running images, then stop the pools."""
        await self.batcher.close(timeout)
        self.executor.shutdown(wait=True, cancel_futures=False)
        if self.processes is not None:
            self.processes.close()

    # ------------------------------------------------------------------ work in the pool

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` in the CPU pool (decode, draw, encode, video probing)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def decode(self, data: bytes, name: str | None = None) -> np.ndarray:
        """Decode upload bytes (typed ``ImageLoadError``s, pixel limit checked from the header).

        Errors name the upload (its file name, else "the upload"), not ``<bytes>``.
        """
        try:
            return load_image(data, max_pixels=self.settings.max_pixels)
        except ImageLoadError as exc:
            message = str(exc)
            if not message.startswith("<bytes>"):
                raise
            label = f"upload {name!r}" if name else "the upload"
            raise type(exc)(label + message[len("<bytes>") :]) from None

    async def analyze(
        self, image: np.ndarray, options: AnalyzeOptions, *, reserved: bool = False
    ) -> Faces:
        """Analyse one decoded image, micro-batched with concurrent requests.

        Args:
            reserved: the caller holds a queue place (``self.batcher.reserve()``).
        """
        return await self.batcher.submit(options, image, reserved=reserved)

    def annotate_jpeg(self, image: np.ndarray, faces: Faces, quality: int = 85) -> bytes:
        """The image with boxes and labels drawn, as JPEG bytes."""
        return encode_image(self.annotator.annotate(image, faces), "jpeg", quality)

    def variant(self, options: AnalyzeOptions) -> Analyzer:
        """An ``Analyzer`` sharing this one's sessions, restricted to ``options``."""
        config = options.config_for(self.analyzer)
        found = self._variants.get(config)
        if found is None:
            found = self.analyzer.view(config)
            self._variants[config] = found  # a benign race: two equal copies at worst
        return found

    def _run_batch(
        self, options: AnalyzeOptions, images: list[np.ndarray]
    ) -> list[Faces | Exception]:
        """One shared ``analyze_batch`` call (smile crops of all images in one ONNX batch),
        here or in a worker process."""
        if self.processes is not None:
            results = self.processes.run(options.config_for(self.analyzer), options.crop, images)
        else:
            results = self.variant(options).analyze_batch(images, crop=options.crop)
        found = [r for r in results if isinstance(r, Faces)]
        self.metrics.images.inc(len(found))
        self.metrics.faces.inc(sum(len(f) for f in found))
        return results

    # ------------------------------------------------------------------ facts

    def models(self) -> dict[str, Any]:
        """Which models this service runs, and the stages it can offer."""
        smile = self.analyzer.smile_model
        return {
            "models": self.analyzer.model_names,
            "stages": list(self.analyzer.stages),
            "smile_available": smile is not None,
            "detector": self.settings.detector,
        }
