"""Training of the smile/emotion size ladder (needs the ``train`` extra: PyTorch).

Why a separate package: inference runs on onnxruntime alone. Nothing outside
``duchenne.train`` imports it, and this ``__init__`` imports nothing heavy, so
``import duchenne`` never pulls in torch.

Modules:
    nets: the ladder's torch networks (``smile_n``, ``smile_s``, ``smile_m``, ``smile_l``).
    crops: builds the aligned 48x48 crops cache with the project's own face pipeline.
    data: the crops cache as tensors, class balancing and on-device face augmentation.
    loop: the seeded training loop with EMA weights and early stopping on FER+ Valid.
    ladder: temperature scaling on Valid (duchenne.evaluation.metrics), export and registration.
    export: ONNX export with BatchNorm folded, parity check and metadata.
    cli: the ``duchenne train`` subcommand.
"""

from __future__ import annotations

LADDER = ("smile_n", "smile_s", "smile_m", "smile_l")
"""The size ladder, smallest first; names match the shipped ``smile_<size>.onnx`` files."""

__all__ = ["LADDER"]
