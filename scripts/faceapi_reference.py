"""A second independent expression model: face-api's FaceExpressionNet, run in torch.

Why: issue 11 names face-api's expression model (MIT, npm ``@vladmandic/face-api``, 330 KB)
as one that recognises posed anger, disgust and fear far more often than ours, and as a
possible teacher (soft targets) for our emotion head. This script reads its TF.js weights
(a manifest plus a uint8-quantised ``.bin``) and runs the net with torch ops (no
TensorFlow, no node). ``benchmarks/bench_peer_models.py`` scores it beside ours; run as a
script it writes its probabilities into crop caches (key ``teacher``, FER+ order, contempt
NaN: a class it cannot say) so ``duchenne train fit --distill-weight W`` can distil from them:

    npm pack @vladmandic/face-api && tar xzf vladmandic-face-api-*.tgz   # -> package/model
    python scripts/faceapi_reference.py package/model --datasets ../shared/datasets \\
        cache/crops/mtfl_train.npz cache/crops/ferplus_train.npz ...

The net (face-api.js ``FaceFeatureExtractor`` + ``FaceExpressionNet``): RGB 112x112 minus
the mean colour (122.782, 117.001, 104.298), divided by 255; four dense blocks of four
(depthwise-separable) 3x3 convolutions with summed skip connections, the first of each
block with stride 2 (TF "same" padding); 7x7 average pool; one fully connected layer to
7 classes. Input crop: the face box grown to a square, as face-api feeds its detector's
box (duchenne's detector finds the box here).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from duchenne.train.data import update_cache
from duchenne.train.warmstart import file_provenance

FACEAPI_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
#: face-api class -> index in duchenne.faces.EMOTION_LABELS (FER+ order; no contempt)
TO_FERPLUS = (0, 1, 3, 4, 6, 5, 2)
MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)
INPUT = 112


def manifest_path(model_dir: Path, name: str = "face_expression_model") -> Path:
    """The TF.js weights manifest of the named net."""
    return model_dir / f"{name}-weights_manifest.json"


def weight_files(model_dir: Path, name: str = "face_expression_model") -> list[Path]:
    """The manifest and the weight shards it names: what identifies this teacher's bytes."""
    manifest = manifest_path(model_dir, name)
    groups = json.loads(manifest.read_text())
    return [manifest] + [model_dir / p for group in groups for p in group["paths"]]


def load_weights(model_dir: Path, name: str = "face_expression_model") -> dict[str, torch.Tensor]:
    """The named tensors of a TF.js weights manifest, dequantised (``q * scale + min``)."""
    manifest = json.loads(manifest_path(model_dir, name).read_text())
    out: dict[str, torch.Tensor] = {}
    for group in manifest:
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                dtype = np.dtype(q["dtype"])
                raw = np.frombuffer(blob, dtype, count, offset).astype(np.float32)
                values = raw * q["scale"] + q["min"]
            else:
                dtype = np.dtype(w["dtype"])
                values = np.frombuffer(blob, dtype, count, offset).astype(np.float32)
            offset += count * dtype.itemsize
            out[w["name"]] = torch.from_numpy(values.reshape(w["shape"]).copy())
    return out


def _same(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TF 'same' padding for a 3x3 kernel (extra row/column at the bottom/right)."""
    h = x.shape[-1]
    out = -(-h // stride)
    total = max((out - 1) * stride + 3 - h, 0)
    return F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))


class FaceApiExpression:
    """face-api's FaceExpressionNet on RGB uint8 crops (n, 112, 112, 3) -> (n, 7) probs."""

    def __init__(self, model_dir: Path) -> None:
        self.w = load_weights(model_dir)

    def _sep(self, x: torch.Tensor, prefix: str, stride: int) -> torch.Tensor:
        dw = self.w[f"{prefix}/depthwise_filter"].permute(2, 3, 0, 1)  # (c, 1, 3, 3)
        pw = self.w[f"{prefix}/pointwise_filter"].permute(3, 2, 0, 1)  # (o, c, 1, 1)
        x = F.conv2d(_same(x, stride), dw, stride=stride, groups=dw.shape[0])
        return F.conv2d(x, pw, self.w[f"{prefix}/bias"])

    def _block(self, x: torch.Tensor, name: str, first: bool) -> torch.Tensor:
        if first:
            k = self.w[f"{name}/conv0/filters"].permute(3, 2, 0, 1)
            out1 = F.relu(F.conv2d(_same(x, 2), k, self.w[f"{name}/conv0/bias"], stride=2))
        else:
            out1 = F.relu(self._sep(x, f"{name}/conv0", 2))
        out2 = self._sep(out1, f"{name}/conv1", 1)
        out3 = self._sep(F.relu(out1 + out2), f"{name}/conv2", 1)
        out4 = self._sep(F.relu(out1 + out2 + out3), f"{name}/conv3", 1)
        return F.relu(out1 + out2 + out3 + out4)

    @torch.no_grad()
    def __call__(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        probs = []
        for i in range(0, len(crops), batch):
            x = (crops[i : i + batch].astype(np.float32) - MEAN_RGB) / 255.0
            t = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            for j in range(4):
                t = self._block(t, f"dense{j}", first=j == 0)
            t = F.avg_pool2d(t, 7, 2).flatten(1)
            logits = t @ self.w["fc/weights"] + self.w["fc/bias"]
            probs.append(torch.softmax(logits, 1).numpy())
        return np.concatenate(probs) if probs else np.zeros((0, 7), np.float32)


def square_crop(image: np.ndarray, box: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """The box grown to a square (zero padding outside the image), resized to 112x112."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + grow)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = INPUT / side
    m = np.array([[s, 0, INPUT / 2 - s * cx], [0, s, INPUT / 2 - s * cy]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    if s < 1:  # shrink in two steps: warpAffine has no area filter
        big = int(np.ceil(1 / s)) * INPUT
        up = cv2.warpAffine(image, m * (big / INPUT), (big, big), flags=cv2.INTER_LINEAR)
        return cv2.resize(up, (INPUT, INPUT), interpolation=interp)
    return cv2.warpAffine(image, m, (INPUT, INPUT), flags=interp)


def fallback_box(eyes: np.ndarray) -> np.ndarray:
    """A face box from two eye centres where no detection matches (face-api-like framing)."""
    mid = eyes.mean(axis=0)
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    cx, cy, half = mid[0], mid[1] + 0.4 * iod, 1.1 * iod
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


def teacher_inputs(cache: dict, datasets: Path) -> np.ndarray:
    """112 px RGB inputs for the rows of one crop cache.

    Photo datasets (MTFL): the detected box of the face the crop was cut from (matched to
    the cache's eye centres), as face-api gets its detector's box. Face-crop datasets
    (FER+, SMILEsmileD): the dataset image itself, which is already the face.
    """
    from duchenne import Analyzer
    from duchenne.analysis.crops import labelled_face, load_rgb

    files = [str(f) for f in cache["files"]]
    if not files or not files[0].startswith("mtfl/"):
        return np.stack([
            cv2.resize(cv2.cvtColor(cv2.imread(str(datasets / f)), cv2.COLOR_BGR2RGB), (INPUT, INPUT))
            for f in files
        ])  # fmt: skip
    analyzer = Analyzer(stages="detect", threads=1)
    out = []
    for f, eyes in zip(files, cache["extra_eyes"], strict=True):
        rgb = load_rgb(datasets / f)
        faces, idx = labelled_face(analyzer, rgb, eyes)
        box = faces.xyxy[idx] if idx is not None else fallback_box(eyes)
        out.append(square_crop(rgb, box))
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="write face-api's probabilities into caches")
    parser.add_argument("model_dir", type=Path, help="face-api's model/ folder")
    parser.add_argument("caches", nargs="+", type=Path, help="crop caches (.npz, raw or packed)")
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    args = parser.parse_args()
    net = FaceApiExpression(args.model_dir)
    provenance = [file_provenance(p) for p in weight_files(args.model_dir)]
    for path in args.caches:
        with np.load(path, allow_pickle=True) as z:
            cache = {k: z[k] for k in z.files}
        probs = net(teacher_inputs(cache, args.datasets))
        teacher = np.full((len(probs), 8), np.nan, np.float32)  # NaN: a class it cannot say
        teacher[:, list(TO_FERPLUS)] = probs
        update_cache(path, {"teacher": teacher}, meta={"teacher": provenance})
        print(f"{path}: teacher for {len(teacher)} rows; mean", np.round(teacher.mean(0), 3))


if __name__ == "__main__":
    main()
