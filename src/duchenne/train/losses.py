"""The training losses of the three heads, and distillation from a teacher.

Losses, per batch:
    smile: BCE-with-logits on the 0/1 smile label, positive class weighted
        (``data.smile_pos_weight``) - every sample.
    intensity: BCE-with-logits against the happiness vote fraction (a soft target in
        [0, 1]; the graph's sigmoid turns the logit into the fraction) - FER+ rows only.
    emotion: soft cross-entropy against the normalised 8-emotion vote distribution
        (FER+ "probability distribution" training) - FER+ rows only.
    distill (``TrainConfig.distill_weight`` > 0): a teacher's outputs as soft targets, on
        the rows that carry them (``distill_loss``): soft cross-entropy of the emotion
        head over the classes the teacher can say (``CropSet.teacher``; face-api, written
        by ``scripts/faceapi_reference.py``, cannot say contempt: NaN), and BCE of the smile
        and intensity heads against the teacher's smile probability and intensity
        (``CropSet.teacher_smile`` / ``teacher_intensity``; the larger shipped variants,
        written by ``duchenne train teach``). The point: rows without votes (SMILEsmileD,
        MTFL photos) get emotion and intensity targets, and every row gets the teacher's
        graded smile belief instead of one noisy bit.
SMILEsmileD and MTFL rows have no votes, so their intensity/emotion terms are masked out.
The emotion term is class-weighted (``data.emotion_class_weights``) so rare classes do not
collapse into ``neutral``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the rows where ``mask`` holds (0 when none does)."""
    m = mask.float()
    return (values * m).sum() / m.sum().clamp_min(1.0)


def multitask_loss(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    targets: dict[str, torch.Tensor],
    pos_weight: torch.Tensor,
    weights: tuple[float, float, float],
    class_weights: torch.Tensor | None = None,
    distill_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the three head losses (emotion/intensity masked to FER+ rows), plus
    ``distill_weight`` times the distillation term on rows with teacher probabilities.

    ``class_weights`` (8,) scale each emotion's term of the soft cross-entropy.
    """
    smile, intensity, emotion = (o.float() for o in outputs)
    mask = targets["has_votes"]
    l_smile = F.binary_cross_entropy_with_logits(
        smile[:, 0], targets["label"], pos_weight=pos_weight
    )
    l_int = masked_mean(
        F.binary_cross_entropy_with_logits(intensity[:, 0], targets["intensity"], reduction="none"),
        mask,
    )
    votes = targets["votes"] if class_weights is None else targets["votes"] * class_weights
    l_emo = masked_mean(-(votes * F.log_softmax(emotion, dim=1)).sum(1), mask)
    total = weights[0] * l_smile + weights[1] * l_int + weights[2] * l_emo
    parts = {"smile": l_smile.detach(), "intensity": l_int.detach(), "emotion": l_emo.detach()}
    if distill_weight > 0 and "teacher" in targets:
        terms = distill_loss((smile, intensity, emotion), targets)
        total = total + distill_weight * sum(terms.values())
        parts |= {k: v.detach() for k, v in terms.items()}
    return total, parts


DISTILL_PARTS = ("distill", "distill_smile", "distill_intensity")
"""Loss parts of the distillation term (emotion, smile, intensity), as logged per epoch."""


def distill_loss(
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], targets: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The distillation terms, each masked to the rows whose teacher gives that output.

    emotion (``distill``): soft cross-entropy over the classes the teacher can say: a
    class it cannot say (NaN: face-api's contempt) is left out of the student's softmax
    rather than pushed to zero. Rows with an all-zero teacher have none. smile /
    intensity: BCE-with-logits against the teacher's probability and intensity (NaN: none).
    """
    smile, intensity, emotion = outputs
    known = torch.isfinite(targets["teacher"])
    teacher = torch.nan_to_num(targets["teacher"])
    logp = F.log_softmax(emotion.masked_fill(~known, -1e4), dim=1)
    target = teacher / teacher.sum(1, keepdim=True).clamp_min(1e-8)
    terms = {"distill": masked_mean(-(target * logp).sum(1), teacher.sum(1) > 0)}
    for part, output, key in (
        ("distill_smile", smile, "teacher_smile"),
        ("distill_intensity", intensity, "teacher_intensity"),
    ):
        soft = targets.get(key)
        if soft is None:
            continue
        has = torch.isfinite(soft)
        bce = F.binary_cross_entropy_with_logits(
            output[:, 0], torch.nan_to_num(soft), reduction="none"
        )
        terms[part] = masked_mean(bce, has)
    return terms
