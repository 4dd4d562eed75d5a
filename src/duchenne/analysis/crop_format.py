"""The format of a model's face crop: side, colour and framing.

Its own module (not ``crops``) because the Analyzer needs it to cut a model's crops, and
``crops`` (cache building) uses the Analyzer: one direction of import each way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from duchenne.face.align import AlignConfig
from duchenne.models.smile import FRAMING_BOUNDS

CROP_SIZE = 48

FRAMINGS: dict[str, tuple[float, float]] = {
    "face": (AlignConfig.iod_fraction, AlignConfig.eye_y),
    "tight": (0.45, 0.24),
    "lower": (0.52, 0.10),
}
"""Named framings of a crop, as (inter-ocular distance, eye-midpoint height), fractions of
the side. ``face``: the canonical template, forehead to chin like FER2013's crops (every
shipped model); ``tight``: brows to chin, 1.25x closer; ``lower``: the
eyes at the top edge, the mouth and cheeks filling the crop, 1.44x closer. Why closer
framings exist: a smile is decided mostly by the mouth and cheeks, and at 48 px the
``face`` framing spends most pixels on forehead, hair and background (see MODEL_CARD.md,
*Crop format*)."""


@dataclass(frozen=True)
class CropFormat:
    """Side, colour and framing of the crops a cache holds: the input a net trained on it
    takes.

    The first contract was 48 px grey in the ``face`` framing; larger or RGB crops let the
    larger variants see teeth, crow's feet and skin colour (the canvas of a grey dataset
    image is grey in all three channels, so FER+/SMILEsmileD crops stay grey in an RGB
    cache), and a closer framing (``FRAMINGS``) gives the mouth more pixels at the same
    cost. The framing travels in each model's ONNX metadata (``duchenne.iod_fraction``,
    ``duchenne.eye_y``), so the Analyzer and ``duchenne evaluate`` cut every model's crops
    the way it was trained.
    """

    size: int = CROP_SIZE
    colour: bool = False
    iod_fraction: float = AlignConfig.iod_fraction
    eye_y: float = AlignConfig.eye_y

    def __post_init__(self) -> None:
        # any side a model takes (a 44 px file is cut 44 px); the caches' multiple-of-8
        # rule is the trainer's (train.options.crop_size)
        if self.size < 16:
            raise ValueError(f"crop size must be >= 16, got {self.size}")
        for name, (low, high) in FRAMING_BOUNDS.items():  # the bounds a model file may carry
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {getattr(self, name)}")

    @classmethod
    def named(
        cls, size: int = CROP_SIZE, colour: bool = False, framing: str = "face"
    ) -> CropFormat:
        """The format with one of the ``FRAMINGS`` by name."""
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {sorted(FRAMINGS)}, got {framing!r}")
        iod_fraction, eye_y = FRAMINGS[framing]
        return cls(size, colour, iod_fraction, eye_y)

    @classmethod
    def of_model(cls, model: Any) -> CropFormat:
        """The crops a ``SmileModel`` takes (its side, channels and framing metadata)."""
        return cls(model.input_size, model.channels == 3, **model.framing)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one crop: (S, S) grey or (S, S, 3) RGB."""
        return (self.size, self.size, 3) if self.colour else (self.size, self.size)

    @property
    def framing(self) -> dict[str, float]:
        """The framing fields (as a model's ``framing`` and a cache's metadata hold them)."""
        return {"iod_fraction": self.iod_fraction, "eye_y": self.eye_y}

    def align_config(self) -> AlignConfig:
        """The aligner's geometry for these crops."""
        return AlignConfig(size=self.size, iod_fraction=self.iod_fraction, eye_y=self.eye_y)
