"""The smile/emotion size ladder as torch networks.

Every net maps a normalised crop (N, C, S, S) to three raw heads (C = 1 grey, the shipped
contract, or 3 RGB; S = 48 shipped, any multiple of 8 works since the trunks end in global
pooling):
``smile_logit`` (N, 1), ``intensity_logit`` (N, 1) and ``emotion_logits`` (N, 8).
The sigmoid of the intensity head lives in ``ExportWrapper`` so the training loss can
work on logits (numerically stable) while the ONNX graph outputs the contract's [0, 1]
vote fraction.

Why these four architectures (one deliberate choice per budget):
    smile_n: depthwise-separable narrow CNN; 33k parameters, ~2 MMAC, so it runs
        well under 0.3 ms per crop on one core (~0.1 ms) and ships in ~135 KB.
    smile_s: MobileNetV2 inverted residuals with linear bottlenecks; the best accuracy per
        FLOP at a few hundred thousand parameters (281k, ~1.1 MB).
    smile_m: wider/deeper inverted residuals with squeeze-and-excitation (channel attention
        helps pick up the mouth/eye regions); 1.19M parameters (~4.8 MB).
    smile_l: ResNet-style basic blocks (full 3x3 convs); 1.94M parameters (~7.8 MB), the
        most accurate, for offline batch work.

All convolutions are ``ConvBN`` units so ``fold_batchnorm`` can fuse every BatchNorm into
its convolution before export (no BatchNormalization node reaches the ONNX file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from duchenne.train import LADDER

NUM_EMOTIONS = 8


class ConvBN(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + optional activation; the unit ``fold_batchnorm`` fuses."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout)
        self.act: nn.Module = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise + 1x1 pointwise (MobileNetV1 unit): ~8x fewer MACs than a full 3x3."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, stride, groups=cin)
        self.pw = ConvBN(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class SqueezeExcite(nn.Module):
    """Channel attention: re-weights channels from their global average (SENet)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        hidden = max(8, squeeze)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.expand(torch.relu(self.reduce(s))))
        return x * s


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, (SE), 1x1 linear projection, skip."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, se: bool = False) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBN(cin, hidden, 1))
        layers.append(ConvBN(hidden, hidden, 3, stride, groups=hidden))
        if se:
            layers.append(SqueezeExcite(hidden, cin // 2))
        layers.append(ConvBN(hidden, cout, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.skip else y


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 ConvBN with an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = ConvBN(cin, cout, 3, stride)
        self.b = ConvBN(cout, cout, 3, 1, act=False)
        self.short: nn.Module = (
            nn.Identity()
            if stride == 1 and cin == cout
            else ConvBN(cin, cout, 1, stride, act=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.b(self.a(x)) + self.short(x))


class MultiTaskNet(nn.Module):
    """A feature trunk plus the three heads (smile, intensity, emotion) on pooled features."""

    def __init__(self, trunk: nn.Module, features: int, dropout: float) -> None:
        super().__init__()
        self.trunk = trunk
        self.drop = nn.Dropout(dropout)
        self.smile = nn.Linear(features, 1)
        self.intensity = nn.Linear(features, 1)
        self.emotion = nn.Linear(features, NUM_EMOTIONS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.drop(torch.flatten(self.trunk(x).mean((2, 3), keepdim=True), 1))
        return self.smile(f), self.intensity(f), self.emotion(f)


class ExportWrapper(nn.Module):
    """The contract's ONNX signature: sigmoid on the intensity head, raw logits otherwise."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        smile, intensity, emotion = self.net(x)
        return smile, torch.sigmoid(intensity), emotion


def _tiny(channels: int = 1) -> MultiTaskNet:
    widths = [(16, 32, 1), (32, 48, 2), (48, 48, 1), (48, 96, 2), (96, 96, 1), (96, 96, 1)]
    layers: list[nn.Module] = [ConvBN(channels, 16, 3, 2)]
    layers += [DepthwiseSeparable(cin, cout, s) for cin, cout, s in widths]
    return MultiTaskNet(nn.Sequential(*layers), 96, dropout=0.1)


def _inverted(
    stem: int,
    cfg: list[tuple[int, int, int, int]],
    head: int,
    se: bool,
    dropout: float,
    channels: int,
) -> MultiTaskNet:
    """MobileNetV2-style trunk from (expand, channels, repeats, first stride) rows."""
    layers: list[nn.Module] = [ConvBN(channels, stem, 3, 1)]
    cin = stem
    for t, c, n, s in cfg:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t, se=se))
            cin = c
    layers.append(ConvBN(cin, head, 1))
    return MultiTaskNet(nn.Sequential(*layers), head, dropout)


def _small(channels: int = 1) -> MultiTaskNet:
    cfg = [(1, 16, 1, 2), (4, 24, 2, 1), (4, 32, 3, 2), (4, 64, 3, 2), (4, 96, 2, 1)]
    return _inverted(16, cfg, 320, se=False, dropout=0.2, channels=channels)


def _medium(channels: int = 1) -> MultiTaskNet:
    cfg = [(2, 32, 2, 2), (4, 48, 3, 1), (4, 64, 3, 2), (4, 96, 4, 2), (6, 128, 2, 1)]
    return _inverted(32, cfg, 384, se=True, dropout=0.3, channels=channels)


def _large(channels: int = 1) -> MultiTaskNet:
    stages = [(32, 2, 1), (64, 2, 2), (128, 2, 2), (192, 2, 2)]
    layers: list[nn.Module] = [ConvBN(channels, 32, 3, 1)]
    cin = 32
    for c, n, s in stages:
        for i in range(n):
            layers.append(BasicBlock(cin, c, s if i == 0 else 1))
            cin = c
    return MultiTaskNet(nn.Sequential(*layers), cin, dropout=0.3)


@dataclass(frozen=True)
class NetSpec:
    """A ladder entry: how to build it and the one-line architecture description shipped."""

    name: str
    build: Callable[[int], MultiTaskNet]
    arch: str


NETS: dict[str, NetSpec] = {
    name: NetSpec(name, build, arch)
    for name, (build, arch) in zip(
        LADDER,  # the names live in duchenne.train (importable without torch)
        (
            (_tiny, "depthwise-separable narrow CNN (stride-2 stem, 6 DW-sep blocks, 16-96 ch)"),
            (_small, "MobileNetV2 inverted residuals (t=1-4, 16-96 ch, 320-ch head)"),
            (_medium, "inverted residuals + squeeze-excitation (t=2-6, 32-128 ch, 384-ch head)"),
            (_large, "ResNet-style basic blocks (4 stages x 2, 32-192 ch)"),
        ),
        strict=True,
    )
}


def build_net(name: str, channels: int = 1) -> MultiTaskNet:
    """A freshly initialised ladder net by name, for grey (1) or RGB (3) input crops;
    raises ``KeyError`` listing the names. Only the stem sees the channel count, so a
    colour net costs one stem convolution more than its grey twin."""
    if name not in NETS:
        raise KeyError(f"unknown net {name!r}; known: {', '.join(NETS)}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    return NETS[name].build(channels)


def input_channels(net: nn.Module) -> int:
    """Channels the net takes (its first convolution's input): 1 grey, 3 RGB."""
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels


def count_params(net: nn.Module) -> int:
    """Number of parameters (what models.json reports as ``params``)."""
    return sum(p.numel() for p in net.parameters())


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fuse every ``ConvBN``'s BatchNorm into its conv, in place (call in eval mode).

    Why by hand: exporters only fold BN when they recognise the pattern; fusing here makes
    the exported graph BN-free whatever exporter version runs.
    """
    for module in net.modules():
        if isinstance(module, ConvBN) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv.eval(), module.bn.eval())
            module.bn = nn.Identity()
    return net
