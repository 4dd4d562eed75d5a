"""The seeded multi-task training loop (smile + intensity + emotion) with early stopping.

Losses: ``duchenne.train.losses`` (smile, intensity and class-weighted emotion terms,
plus distillation from a teacher). MTFL's in-the-wild photos can be oversampled
(``TrainConfig.oversample``), since they are the domain users' photos come from.

Why EMA weights: with ~40k small images the raw weights are noisy from epoch to epoch;
an exponential moving average is a free ensemble that validates better and makes early
stopping less jumpy. The EMA copy is what gets evaluated, checkpointed and exported.
"""

from __future__ import annotations

import copy
import logging
import math
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from duchenne.train.data import (
    AugmentConfig,
    CropSet,
    DeviceData,
    augment,
    emotion_class_weights,
    load_sets,
    normalize,
    smile_pos_weight,
)
from duchenne.train.losses import DISTILL_PARTS, multitask_loss
from duchenne.train.metrics import head_metrics, selection_score
from duchenne.train.nets import build_net, count_params

log = logging.getLogger(__name__)

FER_AND_SMILES = ("ferplus_train", "smilesmiled_train")
FER_ONLY = ("ferplus_train",)
ALL_SOURCES = ("ferplus_train", "smilesmiled_train", "mtfl_train")
"""The v2 training mix: FER+ (3 heads), SMILEsmileD and MTFL photos (smile head)."""
VALID_MIX = "ferplus_valid+mtfl_calib"
"""Selection and calibration mix: FER+ Valid and MTFL's ``calib`` split (never ``valid``)."""


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved with the checkpoint).

    ``time_budget_s`` stops training early (best epoch kept) so one GPU call can hold the
    whole ladder; the epoch at which it stopped is recorded, so a run can be repeated
    deterministically with ``epochs`` set to it.
    """

    net: str = "smile_s"
    cache_dir: str = "cache/crops"
    train_sets: tuple[str, ...] = ALL_SOURCES
    valid_set: str = VALID_MIX
    epochs: int = 60
    max_epochs: int = 300
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    patience: int = 25
    ema_decay: float = 0.999
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: bool = True
    pos_weight: str = "sqrt"
    loss_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    emotion_balance: float = 0.5
    oversample: tuple[tuple[str, int], ...] = (("mtfl_train", 2),)
    augment: bool = True
    augment_skip: tuple[str, ...] = ()
    limit: int | None = None
    time_budget_s: float | None = None
    run_name: str | None = None
    distill_weight: float = 0.0
    init: str | None = None
    init_resize: bool = False

    @property
    def name(self) -> str:
        """Run name: the net name on the shipped mix, else suffixed with the mix
        (``smile_s_ferplus`` on FER+ only, ``smile_s_ferplus+mtfl``).

        Why the suffix on every other mix: the name names the checkpoint and report files,
        so a leave-one-out run without ``--run-name`` replaced the shipped run's files, and
        one on MTFL alone was called ``_ferplus``. A ``--limit`` smoke run is suffixed
        ``_limitN`` for the same reason (its checkpoint replaced the real run's)."""
        if self.run_name:
            return self.run_name
        name = self.net
        if tuple(self.train_sets) != ALL_SOURCES:
            name += "_" + "+".join(s.removesuffix("_train") for s in self.train_sets)
        return name if self.limit is None else f"{name}_limit{self.limit}"

    @property
    def applied_oversample(self) -> tuple[tuple[str, int], ...]:
        """The ``oversample`` pairs whose cache this run trains on.

        Why: the default names ``mtfl_train``, which a FER+-only or leave-MTFL-out run does
        not read; those pairs change nothing, and a summary listing them told its reader
        the run oversampled MTFL. The loop and the summary both use this one list."""
        return tuple((name, times) for name, times in self.oversample if name in self.train_sets)


@dataclass
class TrainResult:
    """A finished run: the best (EMA) net in eval mode and what happened."""

    net: nn.Module
    config: TrainConfig
    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, float]
    params: int
    train_seconds: float
    device: str
    stopped: str
    extra: dict[str, Any] = field(default_factory=dict)


INTERRUPTED = "interrupted"
"""``TrainResult.stopped`` of a run stopped by Ctrl-C (``TrainingInterrupted``)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``train`` after at least one finished epoch; ``result`` is the run up
    to then (best epoch so far, ``stopped == INTERRUPTED``).

    Why a KeyboardInterrupt that carries the result: on a 2-core CPU a run takes hours,
    and an interrupt used to lose every epoch; a caller that knows this class saves the
    result (``duchenne train fit`` does), one that does not still stops as before.
    """

    def __init__(self, result: TrainResult) -> None:
        super().__init__(INTERRUPTED)
        self.result = result


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices): same seed, same run on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


# ----------------------------------------------------------------- EMA, optimiser


class Ema:
    """Exponential moving average of all weights and BN buffers (decay warmed up).

    The source tensors are collected once: optimisers and BatchNorm update them in
    place, so one fused ``_foreach_lerp_`` per step suffices (cheap on a GPU).
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.net = copy.deepcopy(net).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.decay, self.steps = decay, 0
        src, dst = net.state_dict(keep_vars=True), self.net.state_dict(keep_vars=True)
        floats = [k for k, v in dst.items() if v.dtype.is_floating_point]
        self._src = [src[k].detach() for k in floats]
        self._dst = [dst[k].detach() for k in floats]
        self._int_pairs = [(dst[k], src[k]) for k in dst if k not in set(floats)]

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self._dst, self._src, 1.0 - d)
        for dst, src in self._int_pairs:
            dst.copy_(src)


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and BatchNorm (1-D parameters)."""
    decay = [p for p in net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 1% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


# ----------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(net: nn.Module, data: DeviceData, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Smile logits, intensity (sigmoid) and emotion logits of every row, in order."""
    net.eval()
    outs: list[list[torch.Tensor]] = [[], [], []]
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.images.device)
        x, _ = data.batch(idx)
        s, i, e = net(normalize(x))
        for acc, t in zip(outs, (s[:, 0], torch.sigmoid(i[:, 0]), e), strict=True):
            acc.append(t.float().cpu())
    s, i, e = (torch.cat(o).numpy() for o in outs)
    return {"smile_logit": s, "intensity": i, "emotion_logits": e}


def evaluate(net: nn.Module, data: DeviceData, crops: CropSet) -> dict[str, float]:
    p = predict(net, data)
    return head_metrics(
        crops.label,
        p["smile_logit"],
        p["intensity"],
        p["emotion_logits"],
        crops.votes,
        crops.has_votes,
    )


# ----------------------------------------------------------------- the loop


def load_data(cfg: TrainConfig) -> tuple[CropSet, CropSet]:
    """Train (optionally the first ``limit`` rows after a seeded shuffle) and valid crop sets."""
    train = load_sets(cfg.cache_dir, list(cfg.train_sets))
    if cfg.limit is not None and cfg.limit < len(train):
        keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(train))[: cfg.limit])
        train = train.subset(keep)
    valid = load_sets(cfg.cache_dir, cfg.valid_set)
    return train, valid


def input_geometry(train: CropSet, valid: CropSet) -> dict[str, Any]:
    """The crop side, channel count and framing a run trains on (recorded in its summary,
    so export and ``load_checkpoint`` rebuild the same net and the model file tells the
    Analyzer how to cut its crops); train and valid must agree."""
    geometry = {"input_size": train.crop_size, "channels": train.channels, **train.framing}
    if (valid.crop_size, valid.channels) != (geometry["input_size"], geometry["channels"]):
        raise ValueError(
            f"train crops are {train.crop_size} px x {train.channels} channel(s) but valid"
            f" crops are {valid.crop_size} px x {valid.channels}: cut both into one cache"
        )
    if valid.framing != train.framing:
        raise ValueError(
            f"train crops are framed {train.framing} but valid crops {valid.framing}: "
            "cut both with the same --framing"
        )
    return geometry


def epoch_rows(crops: CropSet, oversample: tuple[tuple[str, int], ...]) -> np.ndarray:
    """Row indices one epoch visits: each row once, rows of ``oversample`` sources n times."""
    repeats = np.ones(len(crops), np.int64)
    for source, times in oversample:
        repeats[crops.source == source] = max(1, int(times))
    return np.repeat(np.arange(len(crops)), repeats)


def _run_epoch(
    net: nn.Module,
    ema: Ema,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR,
    run: dict[str, Any],
    cfg: TrainConfig,
) -> dict[str, float]:
    """One pass over the epoch's rows in a seeded random order; returns mean losses."""
    net.train()
    data, rows = run["tdata"], run["rows"]
    dev = data.images.device
    order = rows[torch.randperm(len(rows), generator=run["gen"]).to(dev)]
    n_batches = max(1, len(order) // cfg.batch_size)
    sums: dict[str, Any] = {"loss": torch.zeros((), device=dev), "smile": 0.0, "intensity": 0.0}
    sums |= {"emotion": 0.0} | (dict.fromkeys(DISTILL_PARTS, 0.0) if cfg.distill_weight > 0 else {})
    aug_cfg = AugmentConfig(skip=tuple(cfg.augment_skip))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and dev.type == "cuda")
    for b in range(n_batches):
        x, t = data.batch(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
        if cfg.augment:
            x = augment(x, aug_cfg)
        x = normalize(x).contiguous(memory_format=torch.channels_last)
        with autocast:
            out = net(x)
        loss, parts = multitask_loss(
            out, t, run["pos_weight"], cfg.loss_weights, run["class_weights"], cfg.distill_weight
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema.update(net)
        sums["loss"] += loss.detach()
        for k, v in parts.items():
            sums[k] = sums[k] + v
    return {k: float(v) / n_batches for k, v in sums.items()}


class CosineSchedule:
    """Per-step LR factor whose length can be fixed after the first epoch (auto epochs)."""

    def __init__(self, steps_per_epoch: int, epochs: int, warmup_epochs: float) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.warmup = int(warmup_epochs * steps_per_epoch)
        self.set_epochs(max(epochs, 1))

    def set_epochs(self, epochs: int) -> None:
        self.total = self.steps_per_epoch * epochs

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.warmup)


AUTO_EPOCHS_AFTER = 2
"""Auto epochs are decided after this many epochs (the LR warm-up, which the length of the
cosine schedule does not change)."""


def auto_epochs(cfg: TrainConfig, epoch_s: float, spent_s: float) -> int:
    """Epochs that fit ``time_budget_s``: the ``AUTO_EPOCHS_AFTER`` already run plus as
    many more as fit the rest of the budget at ``epoch_s`` each (5% margin, <= max_epochs).

    Why: one GPU call must hold the whole ladder, and a cosine schedule only anneals
    properly if its length is known. The pace is the *last* warm-up epoch's: the first one
    also pays for cuDNN autotuning and start-up contention (measured on one GPU call: 66 s
    for the first epoch of ``smile_s``, 10-13 s for the next ones), which made the earlier
    first-epoch estimate plan 4 epochs where 25 fitted.
    """
    if not cfg.time_budget_s:
        raise ValueError("epochs <= 0 (auto) needs time_budget_s")
    more = int(0.95 * (cfg.time_budget_s - spent_s) / max(epoch_s, 1e-3))
    return max(AUTO_EPOCHS_AFTER, min(cfg.max_epochs, AUTO_EPOCHS_AFTER + more))


def distill_teachers(train_set: CropSet) -> dict[str, list[str]]:
    """Per training cache, the teacher files (name and sha256, as ``duchenne train teach``
    recorded them) whose outputs a distilled run learned from; a cache taught before the
    record existed says ``unrecorded``, one never taught is left out."""
    out = {}
    for m in train_set.meta:
        name = str(m.get("name", "?"))
        if "teacher" in m:
            out[name] = list(m["teacher"])
        elif _taught(train_set, train_set.source == name):
            out[name] = ["unrecorded"]
    return out


def _taught(crops: CropSet, rows: np.ndarray) -> bool:
    """Whether any of these rows carries a teacher output (emotion or smile)."""
    return bool(crops.has_teacher[rows].any() or np.isfinite(crops.teacher_smile[rows]).any())


def _prepare(cfg: TrainConfig, data: tuple[CropSet, CropSet] | None) -> dict[str, Any]:
    """Seeded net, EMA, optimiser, schedule and device tensors for a run."""
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    train_set, valid_set = data if data is not None else load_data(cfg)
    # channels_last on every device: cuDNN's fast path on GPUs, and oneDNN's on CPUs
    # (measured 1.5x faster steps for the inverted-residual nets on 2 cores)
    geometry = input_geometry(train_set, valid_set)
    net = build_net(cfg.net, geometry["channels"])
    init_source = None
    if cfg.init:
        from duchenne.train.warmstart import warm_start  # onnx and onnxruntime: only here

        init_source = warm_start(net, cfg.init, train_set, cfg.seed, cfg.init_resize)
    net = net.to(device).to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    opt = make_optimizer(net, cfg)
    rows = epoch_rows(train_set, cfg.applied_oversample)
    steps = max(1, len(rows) // cfg.batch_size)
    class_weights = emotion_class_weights(train_set.votes, train_set.has_votes, cfg.emotion_balance)
    schedule = CosineSchedule(steps, cfg.epochs, cfg.warmup_epochs)
    return {
        "device": device,
        "geometry": geometry,
        "init_source": init_source,
        "train_set": train_set,
        "valid_set": valid_set,
        "tdata": DeviceData.from_crops(train_set, device),
        "vdata": DeviceData.from_crops(valid_set, device),
        "net": net,
        "ema": Ema(net, cfg.ema_decay),
        "opt": opt,
        "schedule": schedule,
        "sched": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
        "pos_weight": torch.tensor(
            smile_pos_weight(train_set.label, cfg.pos_weight), device=device
        ),
        "gen": torch.Generator().manual_seed(cfg.seed),
        "rows": torch.from_numpy(rows).to(device),
        "class_weights": torch.from_numpy(class_weights).to(device),
    }


def _log_epoch(name: str, row: dict[str, Any]) -> None:
    log.info(
        "%s ep %d loss %.4f | valid acc8 %.4f f1 %.4f auc %.4f rho %.4f score %.4f (%.1fs)",
        name,
        row["epoch"],
        row["train_loss"],
        row.get("valid_emotion_acc", float("nan")),
        row["valid_smile_f1"],
        row["valid_smile_auc"],
        row.get("valid_intensity_spearman", float("nan")),
        row["score"],
        row["seconds"],
    )


def train(cfg: TrainConfig, data: tuple[CropSet, CropSet] | None = None) -> TrainResult:
    """Train ``cfg.net``; keeps the EMA weights of the best epoch on ``cfg.valid_set``.

    Stops at ``cfg.epochs`` (``<= 0``: as many as fit ``time_budget_s``, decided after
    ``AUTO_EPOCHS_AFTER`` epochs and written back into the config), after ``cfg.patience``
    epochs without a better selection score, or when another epoch as long as the last
    one would exceed ``time_budget_s``.

    Raises:
        TrainingInterrupted: Ctrl-C after at least one finished epoch (the result so far
            comes with it); before that, the plain KeyboardInterrupt.
    """
    t_setup = time.perf_counter()
    run = _prepare(cfg, data)
    net, ema, vdata = run["net"], run["ema"], run["vdata"]
    log.info(
        "%s: %d params, %d train / %d valid rows, %s, pos_weight %.2f",
        cfg.name, count_params(net), len(run["tdata"]), len(vdata), run["device"],
        float(run["pos_weight"]),
    )  # fmt: skip
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf, "epoch": 0, "state": None, "metrics": {}}
    start = time.perf_counter()
    stopped, epochs, epoch = "epochs", cfg.epochs, 0
    try:
        while epoch < (epochs if epochs > 0 else AUTO_EPOCHS_AFTER):
            epoch += 1
            t0 = time.perf_counter()
            losses = _run_epoch(net, ema, run["opt"], run["sched"], run, cfg)
            metrics = evaluate(ema.net, vdata, run["valid_set"])
            row = {"epoch": epoch, "lr": run["opt"].param_groups[0]["lr"]}
            row |= {"seconds": time.perf_counter() - t0, "score": selection_score(metrics)}
            row |= {f"train_{k}": v for k, v in losses.items()}
            history.append(row | {f"valid_{k}": v for k, v in metrics.items()})
            _log_epoch(cfg.name, history[-1])
            if epoch == AUTO_EPOCHS_AFTER and epochs <= 0:
                spent = time.perf_counter() - t_setup
                epochs = cfg.epochs = auto_epochs(cfg, row["seconds"], spent)
                run["schedule"].set_epochs(epochs)
                log.info("%s: %d epochs fit the %.0fs budget", cfg.name, epochs, cfg.time_budget_s)
            if row["score"] > best["score"]:
                state = {k: v.detach().cpu().clone() for k, v in ema.net.state_dict().items()}
                best = {"score": row["score"], "epoch": epoch, "state": state, "metrics": metrics}
            elapsed = time.perf_counter() - start
            if epoch - best["epoch"] >= cfg.patience:
                stopped = f"early stop (patience {cfg.patience})"
                break
            if cfg.time_budget_s is not None and elapsed + row["seconds"] > cfg.time_budget_s:
                stopped = f"time budget {cfg.time_budget_s:.0f}s"
                break
    except KeyboardInterrupt:
        if best["state"] is None:  # no finished epoch: nothing worth keeping
            raise
        seconds = time.perf_counter() - start
        raise TrainingInterrupted(_result(cfg, best, history, seconds, run, INTERRUPTED)) from None
    return _result(cfg, best, history, time.perf_counter() - start, run, stopped)


def _result(
    cfg: TrainConfig,
    best: dict[str, Any],
    history: list[dict[str, Any]],
    seconds: float,
    run: dict[str, Any],
    stopped: str,
) -> TrainResult:
    final = build_net(cfg.net, run["geometry"]["channels"])
    final.load_state_dict(best["state"])
    return TrainResult(
        net=final.eval(),
        config=cfg,
        history=history,
        best_epoch=int(best["epoch"]),
        best_metrics=best["metrics"],
        params=count_params(final),
        train_seconds=seconds,
        device=device_description(run["device"]),
        stopped=stopped,
        extra={
            "epochs_run": len(history),
            "torch": str(torch.__version__),
            "train_rows": len(run["tdata"]),
            "valid_rows": len(run["vdata"]),
            **run["geometry"],
            **({"init_source": run["init_source"]} if run["init_source"] else {}),
            **(
                {"distill_teachers": distill_teachers(run["train_set"])}
                if cfg.distill_weight
                else {}
            ),
        },
    )


# ----------------------------------------------------------------- checkpoints


def save_checkpoint(result: TrainResult, path: str | Path) -> Path:
    """Best weights + config + history (plain types only: loads with ``weights_only=True``),
    written through a temporary file: a run interrupted while saving leaves the previous
    checkpoint whole, never a truncated one."""
    from duchenne.io.atomic import atomic_write

    path = Path(path)
    with atomic_write(path, "wb") as fh:
        torch.save({"state_dict": result.net.state_dict(), "summary": run_summary(result)}, fh)
    return path


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The net (eval mode) and the summary saved by ``save_checkpoint``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    summary = ckpt["summary"]
    net = build_net(summary["config"]["net"], summary.get("channels", 1))
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), summary


def run_summary(result: TrainResult) -> dict[str, Any]:
    """JSON-able record of a run (what ``artifacts/train/<name>.json`` holds)."""
    cfg = asdict(result.config)
    cfg["train_sets"] = list(cfg["train_sets"])
    cfg["loss_weights"] = list(cfg["loss_weights"])
    cfg["oversample"] = [list(pair) for pair in result.config.applied_oversample]
    cfg["augment_skip"] = list(cfg["augment_skip"])
    return {
        "name": result.config.name,
        "config": cfg,
        "params": result.params,
        "best_epoch": result.best_epoch,
        "epochs_run": result.extra.get("epochs_run"),
        "stopped": result.stopped,
        "train_seconds": round(result.train_seconds, 1),
        "device": result.device,
        "valid_metrics": result.best_metrics,
        "history": result.history,
        **{k: v for k, v in result.extra.items() if k != "epochs_run"},
    }
