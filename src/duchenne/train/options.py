"""The ``train`` command line's option checks: the ``--crop-size`` type, the ``--oversample``
parser, the missing-cache check and the checks of options taken together, run before any
data is loaded (the number types are ``duchenne.io.argtypes``, shared with every other
command).

Why apart from ``cli``: a bad option must be a usage error (one line, exit status 2)
before a cache is read or an epoch is spent; ``fit`` and ``ladder`` share the rules.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from duchenne.analysis.crop_format import CropFormat
from duchenne.io.argtypes import positive_int


def crop_size(text: str) -> int:
    """argparse type: ``--crop-size`` of a training cache: a side ``CropFormat`` accepts
    (>= 16) that is also a multiple of 8, so that the JPEG-artefact augmentation (8x8
    blocks) and the nets' stride-2 stages divide it. A bad side used to pass the parser
    and fail as a ValueError (exit 1)."""
    try:
        size = CropFormat(size=positive_int(text)).size
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size % 8:
        raise argparse.ArgumentTypeError(f"a cache's crop size must be a multiple of 8, got {size}")
    return size


def missing_caches(cache_dir: str | Path, names: Iterable[str]) -> str | None:
    """What to say when some of the named caches (``<dataset>_<split>``) are not in
    ``cache_dir``: the missing files and the ``train crops`` line that makes them; None
    when all are there.

    Why before any work: a missing cache used to surface as a FileNotFoundError after the
    other caches were loaded (or other splits re-cut), without saying how to make it.
    """
    from duchenne.train.data import cache_path

    missing = [n for n in dict.fromkeys(names) if not cache_path(cache_dir, n).is_file()]
    if not missing:
        return None
    files = ", ".join(str(cache_path(cache_dir, n)) for n in missing)
    pairs = [n.rpartition("_")[::2] for n in missing if "_" in n]  # (dataset, split)
    if not pairs:
        return f"no cache {files}: `duchenne train crops` makes <dataset>_<split> caches"
    datasets = " ".join(dict.fromkeys(d for d, _ in pairs))
    splits = " ".join(dict.fromkeys(s for _, s in pairs))
    return (
        f"no cache {files}: make it with"
        f" `duchenne train crops --cache-dir {cache_dir} --datasets {datasets} --splits {splits}`"
    )


def full_caches_in_the_way(cache_dir: str | Path, names: Iterable[str], limit: int) -> str | None:
    """What to say when ``train crops --limit`` would write over full caches; None if not.

    Why: a smoke run's ``--limit 8`` cache has the full cache's name, so it replaced the
    hours-long ``ferplus_train`` in the default ``cache/crops`` (a ``fit`` then trained on 8
    rows without a word). A cache made with ``--limit`` records it and may be replaced.
    """
    import numpy as np

    from duchenne.train.data import cache_path

    full = []
    for name in dict.fromkeys(names):
        path = cache_path(cache_dir, name)
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=True) as z:  # reads the meta member only
            meta = json.loads(str(z["meta"]))
        if all(m.get("limit") is None for m in meta) and sum(m["n"] for m in meta) > limit:
            full.append(str(path))
    if not full:
        return None
    return (
        f"--limit {limit} would replace the full cache {', '.join(full)}: give another --cache-dir"
    )


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
    is loaded (so a typo costs no epochs); None when nothing is. Last: a cache the run
    would read that is not there."""
    from duchenne.train.data import AUGMENT_STEPS, set_names
    from duchenne.train.loop import ALL_SOURCES, FER_ONLY, VALID_MIX

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
    sets = FER_ONLY if args.fer_only else set_names(args.train_sets or "+".join(ALL_SOURCES))
    if args.oversample is not None:
        try:
            pairs = parse_oversample(args.oversample)
        except ValueError as exc:
            return str(exc)
        unknown = [name for name, _ in pairs if name not in sets]
        if unknown:  # a misspelt name used to oversample nothing, silently
            return (
                f"--oversample {', '.join(unknown)}: not a training cache of this run"
                f" ({'+'.join(sets)})"
            )
    fer_only_net = FER_ONLY if getattr(args, "fer_only_net", None) else ()  # ladder only
    valid = set_names(args.valid_set or VALID_MIX)
    return missing_caches(args.cache_dir, [*sets, *fer_only_net, *valid])


def crop_jobs(
    datasets: Sequence[str], splits: Sequence[str] | None, known: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """The ``(dataset, split)`` caches ``train crops`` builds, in the order asked.

    Names match case-insensitively where that is unambiguous (``--splits Test`` is FER+'s
    ``test``, as ``evaluate`` spells it). Without ``splits`` every split of each dataset;
    with them, each dataset gets the named splits it has, and a split that none of the
    named datasets has is an error (it used to be skipped, building nothing).

    Args:
        datasets: ``--datasets`` values.
        splits: ``--splits`` values, or None for every split.
        known: dataset -> its splits (``duchenne.train.crops.DATASET_SPLITS``).

    Raises:
        ValueError: an unknown or ambiguous dataset or split; the message lists the
            valid names.
    """
    names = [_match(d, list(known), "dataset", "") for d in datasets]
    names = list(dict.fromkeys(names))
    if splits is None:
        return [(d, s) for d in names for s in known[d]]
    offered = list(dict.fromkeys(s for d in names for s in known[d]))
    where = f" of {', '.join(names)}"
    wanted = list(dict.fromkeys(_match(s, offered, "split", where) for s in splits))
    return [(d, s) for d in names for s in wanted if s in known[d]]


def _match(name: str, choices: Sequence[str], kind: str, where: str) -> str:
    """``name`` itself, else the one choice equal to it ignoring case."""
    if name in choices:
        return name
    found = [c for c in choices if c.casefold() == name.casefold()]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{kind} {name!r} matches several {kind}s{where}: {', '.join(found)}")
    raise ValueError(f"unknown {kind} {name!r}; the {kind}s{where} are: {', '.join(choices)}")
