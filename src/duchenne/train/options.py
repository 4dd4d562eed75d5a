"""The ``train`` command line's option checks: the ``--oversample`` parser and the checks
of options taken together, run before any data is loaded (the number types are
``duchenne.io.argtypes``, shared with every other command).

Why apart from ``cli``: a bad option must be a usage error (one line, exit status 2)
before a cache is read or an epoch is spent; ``fit`` and ``ladder`` share the rules.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_oversample(spec: str) -> tuple[tuple[str, int], ...]:
    """``--oversample``'s ``'+'``-joined ``CACHE=N`` pairs (N >= 1).

    Raises:
        ValueError: an item is not ``CACHE=N`` with a whole N >= 1 (``mtfl_train`` alone
            used to fail as ``invalid literal for int()``).
    """
    from duchenne.train.data import set_names

    pairs = []
    for item in set_names(spec):
        name, _, times = item.partition("=")
        if not name or not times.isdigit() or int(times) < 1:
            raise ValueError(f"--oversample {item!r}: give CACHE=N with a whole N >= 1")
        pairs.append((name, int(times)))
    return tuple(pairs)


def fit_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with ``fit``/``ladder``'s options together, checked before any data
    is loaded (so a typo costs no epochs); None when nothing is."""
    from duchenne.train.data import AUGMENT_STEPS, set_names
    from duchenne.train.loop import ALL_SOURCES, FER_ONLY

    skipped = set_names(args.augment_skip or "")
    if unknown_steps := [name for name in skipped if name not in AUGMENT_STEPS]:
        # a misspelt step used to be skipped silently: the run augmented with it
        return (
            f"--augment-skip {', '.join(unknown_steps)}: not an augmentation step"
            f" ({', '.join(AUGMENT_STEPS)})"
        )
    if args.init and Path(args.init).suffix not in ("", ".pt", ".pth", ".onnx"):
        # a .json summary was looked up as a registered model: "unknown model ..."
        return f"--init {args.init}: give a checkpoint (.pt), an ONNX file or a model name"
    if args.init_resize and not args.init:
        return "--init-resize needs --init (the file whose crop side differs)"
    if args.epochs == 0 and not args.time_budget:
        return "--epochs 0 (as many as fit the time) needs --time-budget SECONDS"
    if args.oversample is None:
        return None
    try:
        pairs = parse_oversample(args.oversample)
    except ValueError as exc:
        return str(exc)
    sets = FER_ONLY if args.fer_only else set_names(args.train_sets or "+".join(ALL_SOURCES))
    unknown = [name for name, _ in pairs if name not in sets]
    if unknown:  # a misspelt name used to oversample nothing, silently
        return (
            f"--oversample {', '.join(unknown)}: not a training cache of this run"
            f" ({'+'.join(sets)})"
        )
    return None
