"""Teacher outputs from the shipped ladder, written into crop caches for distillation.

Why: the larger variants (``smile_l``, ``smile_m``) rank smiles better than the default
``smile_s`` on every test set, and the training mix has ~24k faces without emotion votes
(SMILEsmileD crops, MTFL photos). Their averaged outputs give the student graded soft
targets on every row: a smile probability instead of one noisy bit, an intensity and an
8-class emotion distribution on the photos FER+ never labelled (``train fit
--distill-weight``, see ``duchenne.train.losses.distill_loss``).

The teacher sees each crop as inference does (the ``SmileModel`` path, mirror averaged):
smile is the calibrated probability, intensity the graph's sigmoid output, and emotion the
softmax of the raw logits (the distribution the nets were trained to produce, before any
class-prior correction, so the student's logits stay on the scale its export calibrates).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from duchenne.analysis.crop_format import CropFormat
from duchenne.models.smile import SmileModel, softmax
from duchenne.train.data import cache_path, load_cache, update_cache
from duchenne.train.warmstart import file_provenance


def teacher_outputs(
    models: Sequence[SmileModel], images: np.ndarray, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """The models' mean outputs on cache crops (N, S, S) or (N, S, S, 3): ``teacher``
    (N, 8) emotion probabilities, ``teacher_smile`` (N,) and ``teacher_intensity`` (N,).

    Raises:
        ValueError: no model, or a model whose input side differs from the crops'.
    """
    if not models:
        raise ValueError("teacher_outputs needs at least one model")
    side = int(images.shape[1])
    smile, intensity, emotion = [], [], []
    for model in models:
        if model.input_size != side:
            raise ValueError(
                f"teacher {model.name} takes {model.input_size} px crops, the cache has {side} px"
            )
        raw = model.raw_outputs(images, batch_size)
        logit = raw["smile_logit"] / model.temperature + model.smile_bias
        smile.append(1.0 / (1.0 + np.exp(-logit)))
        intensity.append(raw["intensity"])
        emotion.append(softmax(raw["emotion_logits"]))
    return {
        "teacher": np.mean(emotion, axis=0).astype(np.float32),
        "teacher_smile": np.mean(smile, axis=0).astype(np.float32),
        "teacher_intensity": np.mean(intensity, axis=0).astype(np.float32),
    }


def teach_caches(
    cache_dir: str | Path,
    names: Sequence[str],
    teachers: Sequence[str | Path],
    threads: int | None = None,
) -> list[dict[str, object]]:
    """Write the ``teachers``' mean outputs into each named cache (replacing any earlier
    teacher, e.g. face-api's), with the teacher files' names and sha256 in the cache's
    metadata; returns one summary row per cache."""
    models = [SmileModel(t, threads=threads, flip=True) for t in teachers]
    provenance = [file_provenance(m.model.path) for m in models]
    rows = []
    for name in names:
        path = cache_path(cache_dir, name)
        crops = load_cache(path)
        for model in models:  # a teacher sees the crops it was trained on, or it guesses
            framing = CropFormat.of_model(model).framing
            if framing != crops.framing:
                raise ValueError(
                    f"teacher {model.name} takes crops framed {framing}"
                    f", the cache {name} holds {crops.framing}"
                )
        arrays = teacher_outputs(models, crops.images)
        update_cache(path, arrays, meta={"teacher": provenance})
        rows.append({
            "cache": str(path),
            "rows": len(crops),
            "teachers": [m.name for m in models],
            "mean_smile": float(arrays["teacher_smile"].mean()),
            "mean_emotion": [round(float(v), 3) for v in arrays["teacher"].mean(0)],
        })  # fmt: skip
    return rows
