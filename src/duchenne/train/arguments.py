"""``duchenne train``'s arguments: every subcommand's flags, their help and defaults.

Apart from the handlers (``duchenne.train.cli``) so that each file holds one concept, and
so that ``duchenne --help`` builds the parser without importing torch.
"""

from __future__ import annotations

import argparse
from typing import Any

from duchenne.analysis.crop_format import FRAMINGS
from duchenne.io.argtypes import (
    finite_non_negative,
    int_range,
    non_negative_int,
    positive_int,
    positive_number,
    unit_interval_below_one,
)
from duchenne.train import LADDER
from duchenne.train.options import crop_size

DEFAULT_CACHE = "cache/crops"
DEFAULT_REPORTS = "artifacts/train"
DEFAULT_DATA_ROOT = "../shared/datasets"
_CACHE_HELP = f"folder of the crop caches (default {DEFAULT_CACHE})"
_OUT_HELP = f"folder of checkpoints and run reports (default {DEFAULT_REPORTS})"
_ONNX_DIR_HELP = (
    "where the ONNX files go (default: the package's assets for the shipped recipe,"
    " artifacts/models for other runs)"
)
_REGISTER_HELP = "add or replace the entry in the package's models.json"


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` command (with its subcommands) to a main CLI's subparsers."""
    parser = subparsers.add_parser(
        "train", help="train/export the smile & emotion models (needs torch)"
    )
    sub = parser.add_subparsers(dest="train_command", required=True)
    _add_crops(sub)
    _add_pack(sub)
    _add_teach(sub)
    _add_fit(sub)
    _add_export(sub)
    _add_ladder(sub)
    return parser


def _add_crops(sub: Any) -> None:
    p = sub.add_parser("crops", help="build the aligned crops cache")
    p.add_argument(
        "--data-root",
        default=DEFAULT_DATA_ROOT,
        help=f"folder holding the datasets (default {DEFAULT_DATA_ROOT})",
    )
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, help=_CACHE_HELP)
    p.add_argument(
        "--datasets",
        nargs="+",
        default=["ferplus", "smilesmiled", "mtfl"],
        help="datasets to crop (default: ferplus smilesmiled mtfl)",
    )
    p.add_argument(
        "--splits",
        nargs="+",
        default=None,
        help="default: every split of each dataset (any case: Test = test)",
    )
    p.add_argument(
        "--mode",
        choices=["pipeline", "resize"],
        default="pipeline",
        help="pipeline: the project's detector, landmarks and aligner (default); resize: the"
        " whole image as the crop",
    )
    p.add_argument("--processes", type=positive_int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--limit", type=positive_int, default=None, help="first N samples only (debugging)"
    )
    p.add_argument(
        "--crop-size",
        type=crop_size,
        default=48,
        help="crop side in px, a multiple of 8 >= 16 (default 48)",
    )
    p.add_argument(
        "--colour", action="store_true", help="keep RGB crops (a colour net trains on them)"
    )
    p.add_argument(
        "--framing",
        choices=sorted(FRAMINGS),
        default="face",
        help="how close the crop is cut: face (forehead to chin, the canonical template; "
        "default), "
        "tight (brows to chin) or lower (mouth and cheeks; eyes at the top edge); "
        "the exported model records it and the Analyzer cuts its crops the same way",
    )
    p.add_argument(
        "--recut-from",
        metavar="DIR",
        default=None,
        help="cut the caches in DIR again in this format (--crop-size, --colour, --framing) "
        "from the eyes they stored, into --cache-dir: no face pipeline, same faces in the "
        "same rows, labels and teacher outputs kept (every row: not with --limit)",
    )
    p.add_argument(
        "--tune", action="store_true", help="search the canvas for detection rate and exit"
    )


def _add_pack(sub: Any) -> None:
    p = sub.add_parser("pack", help="WebP-packed copies of caches (to carry to a GPU machine)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, help=_CACHE_HELP)
    p.add_argument(
        "--out", default="cache/pack", help="folder of the packed copies (default cache/pack)"
    )
    p.add_argument(
        "--sets",
        nargs="+",
        default=["ferplus_train", "ferplus_valid", "smilesmiled_train", "mtfl_train", "mtfl_calib"],
        help="caches to pack (default: the training and selection caches)",
    )
    p.add_argument(
        "--quality", type=int_range(1, 100), default=100, help="WebP quality (default 100)"
    )


def _add_teach(sub: Any) -> None:
    p = sub.add_parser(
        "teach", help="write shipped models' outputs into caches (distillation targets)"
    )
    p.add_argument(
        "--teacher",
        action="append",
        required=True,
        help="a registered model name or .onnx file; repeat to average several",
    )
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, help=_CACHE_HELP)
    p.add_argument(
        "--sets",
        default="ferplus_train+smilesmiled_train+mtfl_train",
        help="'+'-joined caches to write into (default: the training mix)",
    )
    p.add_argument(
        "--threads", type=positive_int, default=None, help="onnxruntime threads (default: all)"
    )


def _add_common_fit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, help=_CACHE_HELP)
    p.add_argument(
        "--fer-only", action="store_true", help="train on FER+ Train only (cross-dataset report)"
    )
    p.add_argument(
        "--train-sets",
        default=None,
        help="'+'-joined caches to train on (default: ferplus_train+smilesmiled_train+mtfl_train);"
        " a run on another mix is named after it (smile_s_ferplus+mtfl, unless --run-name),"
        " exported beside, never registered (e.g. leave-one-dataset-out)",
    )
    p.add_argument(
        "--valid-set",
        default=None,
        help="'+'-joined selection/calibration caches (default ferplus_valid+mtfl_calib)",
    )
    p.add_argument("--run-name", default=None, help="name of the run's files (default: the net)")
    p.add_argument(
        "--oversample",
        default=None,
        help="'+'-joined CACHE=N: visit that cache's rows N times per epoch"
        " (default mtfl_train=2, when the run trains on mtfl_train)",
    )
    p.add_argument(
        "--emotion-balance",
        type=finite_non_negative,
        default=None,
        help="emotion class weights = class share ** -x (0 off, 1 inverse frequency; default 0.5)",
    )
    p.add_argument(
        "--augment-skip",
        default=None,
        help="'+'-joined augmentation steps to leave out (see duchenne.train.data.AUGMENT_STEPS)",
    )
    p.add_argument(
        "--distill-weight",
        type=finite_non_negative,
        default=None,
        help="weight of the distillation terms on rows with teacher outputs (caches given"
        " them by 'train teach' or scripts/faceapi_reference.py; default 0: off)",
    )
    p.add_argument(
        "--init",
        default=None,
        help="warm start (fine-tuning): a checkpoint of the net (.pt), an exported ONNX file"
        " or a registered model name such as smile_l (BatchNorm rebuilt from training crops)",
    )
    p.add_argument(
        "--init-resize",
        action="store_true",
        help="let an ONNX --init start a run on crops of another side (progressive resizing:"
        " a 96 px run from a 48 px file)",
    )
    p.add_argument(
        "--warmup-epochs", type=finite_non_negative, default=None, help="LR warm-up (default 2)"
    )
    p.add_argument(
        "--ema-decay",
        type=unit_interval_below_one,
        default=None,
        help="EMA of the weights (default 0.999; a short fine-tune wants ~0.995)",
    )
    p.add_argument(
        "--epochs",
        type=non_negative_int,
        default=None,
        help="epochs to run (default 60; 0: as many as fit --time-budget)",
    )
    p.add_argument("--batch-size", type=positive_int, default=None, help="(default 256)")
    p.add_argument(
        "--lr", type=positive_number, default=None, help="peak learning rate (default 0.002)"
    )
    p.add_argument(
        "--patience",
        type=positive_int,
        default=None,
        help="epochs without a better validation score before stopping (default 25)",
    )
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument(
        "--threads", type=positive_int, default=None, help="torch CPU threads (default: all)"
    )
    p.add_argument(
        "--time-budget", type=positive_number, default=None, help="seconds per net; best epoch kept"
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="train on N rows only (a smoke run: files named <net>_limitN, never shipped)",
    )
    p.add_argument("--out", default=DEFAULT_REPORTS, help=_OUT_HELP)
    p.add_argument(
        "--onnx-dir",
        default=None,
        help=_ONNX_DIR_HELP,
    )
    p.add_argument(
        "--no-export", action="store_true", help="checkpoint only (e.g. on a GPU machine)"
    )
    p.add_argument("--register", action="store_true", help=_REGISTER_HELP)


def _add_fit(sub: Any) -> None:
    p = sub.add_parser("fit", help="train one net")
    p.add_argument("--net", required=True, choices=LADDER, help="the variant to train")
    _add_common_fit(p)


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="calibrate + export + report from a checkpoint")
    p.add_argument("checkpoints", nargs="+", help="checkpoints (.pt) written by fit")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, help=_CACHE_HELP)
    p.add_argument("--out", default=DEFAULT_REPORTS, help=_OUT_HELP)
    p.add_argument("--onnx-dir", default=None, help=_ONNX_DIR_HELP)
    p.add_argument("--register", action="store_true", help=_REGISTER_HELP)
    p.add_argument("--default", default=None, help="also mark this variant as the default")
    p.add_argument(
        "--ship-as",
        default=None,
        help="export a named run of the shipped recipe (e.g. a fine-tune, --run-name"
        " smile_l_ft) as the ladder variant of its net; one checkpoint only",
    )


def _add_ladder(sub: Any) -> None:
    p = sub.add_parser("ladder", help="fit + export several nets in turn")
    p.add_argument("--nets", nargs="+", choices=LADDER, help="default: the whole ladder")
    p.add_argument("--fer-only-net", choices=LADDER, help="also train this net on FER+ only")
    p.add_argument("--default", default=None, help="mark this variant as the default")
    _add_common_fit(p)
