"""Training data: the crops cache as arrays/tensors, class balance and face augmentation.

Why augmentation runs on whole batches on the training device (not per sample in
DataLoader workers): the crops are tiny (48x48) and the machine this project trains on
has 2 shared CPU cores, so per-sample PIL/cv2 work would be the bottleneck. A batch of
uint8 crops goes to the device once and all augmentation is a handful of tensor ops
(one ``grid_sample`` for flip/rotation/scale/shift). ``CropDataset`` still exposes the
cache as an ordinary ``torch.utils.data.Dataset`` for inspection and custom loops.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from duchenne.train.pack import decode_mosaic, encode_mosaic

MEAN = 0.5
STD = 0.5


@dataclass
class CropSet:
    """Crops and targets as parallel numpy arrays (one row per sample).

    Attributes:
        images: (N, S, S) uint8 aligned grayscale crops, or (N, S, S, 3) RGB crops for a
            colour net (``channels``).
        label: (N,) float32 smile target (0/1).
        votes: (N, 8) float32 emotion vote distribution (rows sum to 1; zeros if none).
        has_votes: (N,) bool; False for SMILEsmileD (emotion/intensity losses masked).
        intensity: (N,) float32 happiness vote fraction (0 where ``has_votes`` is False).
        detected: (N,) bool; whether the face pipeline found the face (else template crop).
        source: (N,) str; the cache each row came from (e.g. ``ferplus_train``).
        files: (N,) str; the dataset image path relative to the dataset root.
        teacher: (N, 8) float32 a teacher model's emotion probabilities (FER+ order) for
            distillation; NaN for a class the teacher cannot say (face-api: contempt), and
            all-zero rows have none (the default).
        teacher_smile: (N,) float32 a teacher's smile probability; NaN where none.
        teacher_intensity: (N,) float32 a teacher's happiness vote-fraction estimate; NaN
            where none.
    """

    images: np.ndarray
    label: np.ndarray
    votes: np.ndarray
    has_votes: np.ndarray
    intensity: np.ndarray
    detected: np.ndarray
    source: np.ndarray
    files: np.ndarray
    meta: list[dict[str, Any]] = field(default_factory=list)
    teacher: np.ndarray | None = None
    teacher_smile: np.ndarray | None = None
    teacher_intensity: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.teacher is None:
            self.teacher = np.zeros((n, 8), np.float32)
        if self.teacher_smile is None:
            self.teacher_smile = np.full(n, np.nan, np.float32)
        if self.teacher_intensity is None:
            self.teacher_intensity = np.full(n, np.nan, np.float32)

    @property
    def channels(self) -> int:
        """1 for grey crops (N, S, S), 3 for RGB crops (N, S, S, 3)."""
        return 1 if self.images.ndim == 3 else int(self.images.shape[3])

    @property
    def crop_size(self) -> int:
        """Side of the square crops in pixels."""
        return int(self.images.shape[1])

    @property
    def framing(self) -> dict[str, float]:
        """The crops' framing (``CropFormat.framing``) from the caches' metadata; caches
        cut before the framing option hold the canonical one.

        Raises:
            ValueError: the rows come from caches of different framings (one net learns
                one framing: cut every cache of a run the same way).
        """
        from duchenne.analysis.crop_format import CropFormat

        canonical = CropFormat().framing
        seen = {tuple((k, float(m.get(k, v))) for k, v in canonical.items()) for m in self.meta}
        if len(seen) > 1:
            raise ValueError(f"crops of different framings in one set: {sorted(seen)}")
        return dict(seen.pop()) if seen else canonical

    @property
    def has_teacher(self) -> np.ndarray:
        """(N,) bool: rows with teacher probabilities."""
        assert self.teacher is not None
        return np.nansum(self.teacher, axis=1) > 0

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> CropSet:
        """Rows ``index`` (indices or a boolean mask), keeping the metadata."""
        arrays = {k: getattr(self, k)[index] for k in _ARRAY_FIELDS}
        return CropSet(**arrays, meta=list(self.meta))

    @property
    def emotion(self) -> np.ndarray:
        """Plurality emotion index per row (-1 without votes; first index wins ties)."""
        out = np.argmax(self.votes, axis=1)
        return np.where(self.has_votes, out, -1)


_ARRAY_FIELDS = (
    "images",
    "label",
    "votes",
    "has_votes",
    "intensity",
    "detected",
    "source",
    "files",
    "teacher",
    "teacher_smile",
    "teacher_intensity",
)


def concat(sets: list[CropSet]) -> CropSet:
    """Rows of several crop sets, in order (e.g. FER+ Train followed by SMILEsmileD train).

    Raises:
        ValueError: the sets hold crops of different sides or channels (one net takes one
            input shape: cut every cache of a run in one format).
    """
    shapes = {s.images.shape[1:] for s in sets}
    if len(shapes) > 1:
        described = ", ".join(
            f"{'+'.join(str(m.get('name', '?')) for m in s.meta)} {s.crop_size} px"
            f" x {s.channels} channel(s)"
            for s in sets
        )
        raise ValueError(f"crops of different formats in one set: {described}")
    arrays = {k: np.concatenate([getattr(s, k) for s in sets]) for k in _ARRAY_FIELDS}
    return CropSet(**arrays, meta=[m for s in sets for m in s.meta])


def save_cache(
    path: str | Path,
    crops: CropSet,
    *,
    pack_quality: int | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a crops cache ``.npz``; ``pack_quality`` stores WebP mosaics instead of raw pixels.

    Why packing exists: the training set has to travel to a GPU machine under a 64 MiB
    limit; WebP at quality 100 is ~0.5x of raw with RMS error < 1 grey level (~2 on colour
    photos: WebP halves the chroma resolution). ``extra``
    arrays (e.g. the eye centres each crop was cut with) are stored alongside, unread by
    ``load_cache``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {k: getattr(crops, k) for k in _ARRAY_FIELDS if k != "images"}
    arrays["source"] = arrays["source"].astype(str)
    arrays["files"] = arrays["files"].astype(str)
    meta = list(crops.meta)
    if pack_quality is None:
        arrays["images"] = crops.images
    else:
        blobs = encode_mosaic(crops.images, pack_quality)
        arrays["images_webp"] = np.array(blobs, dtype=object)
        arrays["images_shape"] = np.array(crops.images.shape)
        meta = [dict(m, packed_webp_quality=pack_quality) for m in meta]
    arrays["meta"] = np.array(json.dumps(meta))
    arrays.update({f"extra_{k}": v for k, v in (extra or {}).items()})
    return write_npz(path, arrays)


def write_npz(path: str | Path, arrays: dict[str, Any]) -> Path:
    """Write a cache ``.npz`` through a temporary file renamed over ``path``: an
    interrupted write (Ctrl-C) leaves the old cache whole and no temp file behind."""
    from duchenne.io.atomic import atomic_write

    with atomic_write(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def cache_extras(path: str | Path) -> dict[str, np.ndarray]:
    """A cache's ``extra_*`` arrays (the eyes each crop was cut with, MTFL attributes), by
    name without the prefix, as ``save_cache(extra=...)`` takes them: ``train pack``
    carries them along, so a packed cache can still be re-cut (``--recut-from``)."""
    with np.load(path, allow_pickle=True) as z:
        return {k.removeprefix("extra_"): z[k] for k in z.files if k.startswith("extra_")}


def update_cache(
    path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None
) -> Path:
    """Replace or add ``arrays`` in an existing cache ``.npz``, keeping every other key
    (raw or packed images, ``extra_*``); written to a temp file, then renamed, so an
    interrupted update leaves the old cache whole. Used to attach teacher outputs.

    ``meta`` keys are set in the cache's metadata (e.g. ``teacher``: which files wrote the
    teacher arrays), so a run trained on the cache can say what it was distilled from.
    """
    path = Path(path)
    with np.load(path, allow_pickle=True) as z:
        cache = {k: z[k] for k in z.files}
    cache.update(arrays)
    if meta:
        cache["meta"] = np.array(
            json.dumps([{**m, **meta} for m in json.loads(str(cache["meta"]))])
        )
    return write_npz(path, cache)


def load_cache(path: str | Path) -> CropSet:
    """Read a crops cache written by ``save_cache`` (raw or packed)."""
    with np.load(path, allow_pickle=True) as z:
        if "images" in z:
            images = z["images"]
        else:
            shape = tuple(int(v) for v in z["images_shape"])
            images = decode_mosaic(list(z["images_webp"]), shape)
        # caches written before distillation existed have no teacher arrays (none then)
        arrays = {k: z[k] for k in _ARRAY_FIELDS if k != "images" and k in z}
        meta = json.loads(str(z["meta"]))
    return CropSet(images=images, **arrays, meta=meta)


def cache_path(cache_dir: str | Path, name: str) -> Path:
    """``<cache_dir>/<dataset>_<split>.npz`` (e.g. ``ferplus_train``)."""
    return Path(cache_dir) / f"{name}.npz"


def set_names(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """Cache names from a list or a ``+``-joined string (``"ferplus_valid+mtfl_calib"``)."""
    names = spec.split("+") if isinstance(spec, str) else list(spec)
    return [n for n in names if n]


def load_sets(cache_dir: str | Path, names: str | list[str] | tuple[str, ...]) -> CropSet:
    """Load and concatenate the named caches (a list or a ``+``-joined string)."""
    return concat([load_cache(cache_path(cache_dir, n)) for n in set_names(names)])


def emotion_class_weights(votes: np.ndarray, has_votes: np.ndarray, power: float) -> np.ndarray:
    """Per-class weights (8,) ~ (class share of the vote mass) ** -power, mean 1 over rows.

    Why: FER+ has 60x more neutral than contempt or disgust votes; unweighted, the rare
    classes collapse into ``neutral`` on faces from other sources. ``power`` 0 turns it
    off, 1 is full inverse-frequency balancing; in between trades rare-class recall
    against overall accuracy. Normalised so the loss scale matches the unweighted one.
    """
    mass = votes[np.asarray(has_votes, bool)].sum(0).astype(np.float64)
    if power == 0 or mass.sum() == 0:
        return np.ones(votes.shape[1], np.float32)
    share = mass / mass.sum()
    w = np.maximum(share, 1e-4) ** -power  # floor: a class with no votes gets a finite weight
    return (w / float((share * w).sum())).astype(np.float32)


def smile_pos_weight(labels: np.ndarray, mode: str = "sqrt") -> float:
    """BCE positive-class weight for the smile head: ``none``, ``sqrt`` or ``balanced``.

    Why sqrt by default: full balancing (neg/pos ~ 2.7 here) maximises recall of the
    minority class but shifts the logit bias; the square root recovers most of the F1
    gain while the temperature fitted afterwards keeps probabilities usable.
    """
    pos = float(np.sum(labels > 0.5))
    neg = float(len(labels) - pos)
    if mode == "none" or pos == 0 or neg == 0:
        return 1.0
    ratio = neg / pos
    return math.sqrt(ratio) if mode == "sqrt" else ratio


class CropDataset(torch.utils.data.Dataset):
    """A ``CropSet`` as a map-style dataset of (normalised image tensor, targets dict)."""

    def __init__(self, crops: CropSet) -> None:
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.crops
        x = channels_first(torch.from_numpy(c.images[i][None]))[0].float()
        x = x.div(255.0).sub(MEAN).div(STD)
        targets = {
            "label": torch.tensor(c.label[i], dtype=torch.float32),
            "votes": torch.from_numpy(c.votes[i]),
            "has_votes": torch.tensor(bool(c.has_votes[i])),
            "intensity": torch.tensor(c.intensity[i], dtype=torch.float32),
            "teacher": torch.from_numpy(c.teacher[i]),
            "teacher_smile": torch.tensor(c.teacher_smile[i], dtype=torch.float32),
            "teacher_intensity": torch.tensor(c.teacher_intensity[i], dtype=torch.float32),
        }
        return x, targets


@dataclass
class DeviceData:
    """A ``CropSet`` moved to the training device once: uint8 images plus float targets."""

    images: torch.Tensor
    label: torch.Tensor
    votes: torch.Tensor
    has_votes: torch.Tensor
    intensity: torch.Tensor
    teacher: torch.Tensor
    teacher_smile: torch.Tensor
    teacher_intensity: torch.Tensor

    @classmethod
    def from_crops(cls, crops: CropSet, device: torch.device) -> DeviceData:
        return cls(
            images=torch.from_numpy(np.ascontiguousarray(crops.images)).to(device),
            label=torch.from_numpy(crops.label.astype(np.float32)).to(device),
            votes=torch.from_numpy(crops.votes.astype(np.float32)).to(device),
            has_votes=torch.from_numpy(crops.has_votes.astype(bool)).to(device),
            intensity=torch.from_numpy(crops.intensity.astype(np.float32)).to(device),
            teacher=torch.from_numpy(np.asarray(crops.teacher, np.float32)).to(device),
            teacher_smile=torch.from_numpy(np.asarray(crops.teacher_smile, np.float32)).to(device),
            teacher_intensity=torch.from_numpy(np.asarray(crops.teacher_intensity, np.float32)).to(
                device
            ),
        )

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Images in [0, 1] (B, C, S, S) float32 and the targets of rows ``index``."""
        x = channels_first(self.images[index]).float().div_(255.0)
        targets = {
            "label": self.label[index],
            "votes": self.votes[index],
            "has_votes": self.has_votes[index],
            "intensity": self.intensity[index],
            "teacher": self.teacher[index],
            "teacher_smile": self.teacher_smile[index],
            "teacher_intensity": self.teacher_intensity[index],
        }
        return x, targets


def channels_first(images: torch.Tensor) -> torch.Tensor:
    """(B, S, S) grey -> (B, 1, S, S); (B, S, S, C) -> (B, C, S, S) (a view, no copy)."""
    return images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels to the model input scale of the contract: (x - 0.5) / 0.5."""
    return (x - MEAN) / STD


@dataclass(frozen=True)
class AugmentConfig:
    """Face-appropriate augmentation strengths (all draws per sample).

    Why these: faces in the wild come mirrored, slightly rolled/scaled/off-centre after
    alignment jitter, under varied exposure and focus, and partly occluded (hands,
    glasses, hair); none of these changes whether the face smiles.
    """

    flip: float = 0.5
    rotate_deg: float = 12.0
    scale: float = 0.10
    shift: float = 0.08
    brightness: float = 0.20
    contrast: float = 0.30
    blur_p: float = 0.20
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    erase_p: float = 0.30
    erase_area: tuple[float, float] = (0.02, 0.15)
    # what real photos add on top of 48 px dataset crops (measured on in-the-wild photos:
    # webcam noise, JPEG blocks, soft focus after resampling, side light)
    noise_p: float = 0.25
    noise_std: tuple[float, float] = (0.01, 0.05)
    downup_p: float = 0.25
    downup_scale: tuple[float, float] = (0.35, 0.8)
    jpeg_p: float = 0.30
    jpeg_quality: tuple[float, float] = (15.0, 80.0)
    light_p: float = 0.30
    light_strength: float = 0.35
    gamma: float = 0.35
    # colour crops only (grey ones pass unchanged): white balance (per-channel gain, as
    # under tungsten or shade light) and saturation (faded prints, vivid phone photos)
    colour_p: float = 0.8
    white_balance: float = 0.15
    saturation: float = 0.5
    skip: tuple[str, ...] = ()  # names of AUGMENT_STEPS to leave out


def _rand(n: int, device: torch.device, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    return torch.rand(n, device=device) * (hi - lo) + lo


def _geometric(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Flip, rotation, scale and shift in one ``grid_sample`` (border replicated like the aligner)."""
    n, dev = x.shape[0], x.device
    angle = _rand(n, dev) * math.radians(cfg.rotate_deg)
    scale = 1.0 + _rand(n, dev) * cfg.scale
    flip = torch.where(torch.rand(n, device=dev) < cfg.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, _rand(n, dev) * cfg.shift * 2], 1),
            torch.stack([sin * flip, cos, _rand(n, dev) * cfg.shift * 2], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _photometric(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    mean = x.mean((1, 2, 3), keepdim=True)
    contrast = (1.0 + _rand(n, dev) * cfg.contrast).view(n, 1, 1, 1)
    bright = (_rand(n, dev) * cfg.brightness).view(n, 1, 1, 1)
    return ((x - mean) * contrast + mean + bright).clamp_(0.0, 1.0)


def _colour(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """White balance and saturation of RGB crops; grey crops (one channel) pass unchanged
    without drawing random numbers, so grey runs replay as before this step existed."""
    n, c = x.shape[:2]
    if c != 3:
        return x
    dev = x.device
    gains = torch.exp(_rand(n * 3, dev) * cfg.white_balance).view(n, 3, 1, 1)
    y = x * gains / gains.mean(1, keepdim=True)
    grey = (y * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, True)
    sat = (1.0 + _rand(n, dev) * cfg.saturation).view(n, 1, 1, 1)
    y = (grey + (y - grey) * sat).clamp(0.0, 1.0)
    return torch.where(_chosen(n, cfg.colour_p, dev), y, x)


def _blur(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma on a random subset of the batch."""
    n, dev = x.shape[0], x.device
    sigma = _rand(n, dev, *cfg.blur_sigma).view(n, 1)
    taps = torch.arange(-2, 3, device=dev, dtype=x.dtype).view(1, 5)
    k = torch.exp(-0.5 * (taps / sigma) ** 2)
    k = k / k.sum(1, keepdim=True)
    c, h, w = x.shape[1:]
    k = k.repeat_interleave(c, dim=0)  # one kernel per (sample, channel)
    y = x.reshape(1, n * c, h, w)  # one group per sample and channel
    y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="replicate"), k.view(n * c, 1, 1, 5), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), k.view(n * c, 1, 5, 1), groups=n * c)
    apply = (torch.rand(n, device=dev) < cfg.blur_p).view(n, 1, 1, 1)
    return torch.where(apply, y.reshape(n, c, h, w), x)


def _erase(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Random erasing: one rectangle of random grey per chosen sample (occlusion)."""
    n, _, h, w = x.shape
    dev = x.device
    area = _rand(n, dev, *cfg.erase_area) * h * w
    aspect = torch.exp(_rand(n, dev, math.log(0.5), math.log(2.0)))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    y0 = torch.rand(n, device=dev) * (h - eh)
    x0 = torch.rand(n, device=dev) * (w - ew)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (ys >= y0.view(n, 1, 1)) & (ys < (y0 + eh).view(n, 1, 1))
    inside = inside & (xs >= x0.view(n, 1, 1)) & (xs < (x0 + ew).view(n, 1, 1))
    inside = inside & (torch.rand(n, device=dev) < cfg.erase_p).view(n, 1, 1)
    fill = torch.rand(n, 1, 1, device=dev).expand(n, h, w)
    return torch.where(inside.unsqueeze(1), fill.unsqueeze(1), x)


def _chosen(n: int, p: float, device: torch.device) -> torch.Tensor:
    """(n, 1, 1, 1) bool: which samples of the batch get an augmentation of probability p."""
    return (torch.rand(n, device=device) < p).view(n, 1, 1, 1)


def _lighting(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Gamma (exposure curve) on every sample, plus a linear light ramp (side light) on some."""
    n, _, h, w = x.shape
    dev = x.device
    gamma = torch.exp(_rand(n, dev) * cfg.gamma).view(n, 1, 1, 1)
    x = x.clamp(1e-4, 1.0) ** gamma
    angle = _rand(n, dev, 0.0, 2 * math.pi).view(n, 1, 1, 1)
    ys = torch.linspace(-1, 1, h, device=dev).view(1, 1, h, 1)
    xs = torch.linspace(-1, 1, w, device=dev).view(1, 1, 1, w)
    ramp = torch.cos(angle) * xs + torch.sin(angle) * ys
    lit = x * (1.0 + cfg.light_strength * _rand(n, dev, 0.3, 1.0).view(n, 1, 1, 1) * ramp)
    return torch.where(_chosen(n, cfg.light_p, dev), lit.clamp(0.0, 1.0), x)


def _down_up(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Down- then up-scaling: the softness of a small face resampled to the crop size.

    One random scale per batch (``interpolate`` takes one size), applied to a random subset.
    """
    n, _, h, w = x.shape
    scale = float(_rand(1, x.device, *cfg.downup_scale))
    small = F.interpolate(x, size=(max(8, round(h * scale)), max(8, round(w * scale))), mode="area")
    y = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return torch.where(_chosen(n, cfg.downup_p, x.device), y, x)


def _noise(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Gaussian sensor noise with a per-sample strength."""
    n, dev = x.shape[0], x.device
    std = _rand(n, dev, *cfg.noise_std).view(n, 1, 1, 1)
    y = (x + torch.randn_like(x) * std).clamp(0.0, 1.0)
    return torch.where(_chosen(n, cfg.noise_p, dev), y, x)


def _dct_matrix(size: int, device: torch.device) -> torch.Tensor:
    k = torch.arange(size, device=device, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k.view(1, -1) + 1) * k.view(-1, 1) / (2 * size))
    m[0] /= math.sqrt(2.0)
    return m * math.sqrt(2.0 / size)


# The JPEG standard's luminance quantisation table (ITU T.81, Annex K), quality 50.
_JPEG_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99),
)  # fmt: skip


def _jpeg(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """JPEG artefacts: 8x8 block DCT quantised with the standard table at a random quality.

    Done as tensor ops on the training device (a batch of cv2.imencode calls would make
    the 2 CPU cores the bottleneck); crops whose side is not a multiple of 8 (48 is) pass
    unchanged.
    """
    n, c, h, w = x.shape
    if h % 8 or w % 8:
        return x
    dev = x.device
    quality = _rand(n, dev, *cfg.jpeg_quality)
    factor = torch.where(quality < 50, 50.0 / quality, 2.0 - quality / 50.0).view(n, 1, 1, 1, 1)
    table = torch.tensor(_JPEG_LUMA, device=dev, dtype=torch.float32)
    q = (table * factor).clamp_min(1.0)
    d = _dct_matrix(8, dev)
    blocks = (x * 255.0 - 128.0).reshape(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)
    coef = d @ blocks @ d.T
    coef = torch.round(coef / q.unsqueeze(2)) * q.unsqueeze(2)
    y = (d.T @ coef @ d).transpose(3, 4).reshape(n, c, h, w)
    y = ((y + 128.0) / 255.0).clamp(0.0, 1.0)
    return torch.where(_chosen(n, cfg.jpeg_p, dev), y, x)


AUGMENT_STEPS: dict[str, Any] = {
    "geometric": _geometric,
    "photometric": _photometric,
    "colour": _colour,
    "lighting": _lighting,
    "blur": _blur,
    "downup": _down_up,
    "noise": _noise,
    "jpeg": _jpeg,
    "erase": _erase,
}
"""The augmentation steps in the order they run: how a photo is made, geometry and light
on the scene, then optics (blur, resampling), sensor noise, compression, occluders last."""


def augment(x: torch.Tensor, cfg: AugmentConfig | None = None) -> torch.Tensor:
    """Augment a batch of [0, 1] crops (B, C, S, S); draws from torch's seeded global RNG.

    Steps named in ``cfg.skip`` are left out (e.g. one a device's kernels cannot run).
    """
    cfg = cfg or AugmentConfig()
    for name, step in AUGMENT_STEPS.items():
        if name not in cfg.skip:
            # contiguous between steps: with one channel a transposed result has strides
            # that fit both NCHW and NHWC, and some CUDA kernels pick the NHWC path for it
            x = step(x, cfg).contiguous()
    return x
