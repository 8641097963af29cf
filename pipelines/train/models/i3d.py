"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, "Quo Vadis, Action
Recognition?", CVPR 2017), the backbone of FAME's headline results.

Module names follow the official FAME code (``backbone/i3d.py`` of Mark12Ding/FAME), so
the keys of their checkpoints map onto ours by removing a prefix (docs/models.md):
``conv3d_1a_7x7``, ``conv3d_2b_1x1``, ``conv3d_2c_3x3``, ``mixed_{3b,3c,4b..4f,5b,5c}``;
each conv unit holds ``conv3d`` and ``batch3d``; an Inception block holds ``branch_0``
(a unit), ``branch_1``/``branch_2`` (two units each, ``.0``/``.1``) and ``branch_3``
(``.0`` a max pool without state, ``.1`` a unit). The pools are renamed to snake_case
(they have no state, so no key changes). Padding is TensorFlow's "SAME" (asymmetric
where needed), as in the original and the FAME port, so their weights see the same
geometry.
"""

import torch
from torch import Tensor, nn

from pipelines.train.models.base import VideoBackbone, init_weights

FEATURE_DIM = 1024  # channels of mixed_5c

# (in_channels, [b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 pool-1x1]) of each Inception block
MIXED = {
    "mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}

Triple = tuple[int, int, int]


def same_padding(kernel: Triple, stride: Triple) -> tuple[int, ...]:
    """TensorFlow "SAME" padding for ``F.pad`` (W, W, H, H, T, T order): ``k - s`` in
    all, the extra one at the end (for inputs divisible by the stride, as here)."""
    pads = []
    for k, s in reversed(list(zip(kernel, stride))):
        total = max(k - s, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3D(nn.Module):
    """Conv (SAME padding, no bias), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1)):
        super().__init__()
        pads = same_padding(kernel, stride)
        symmetric = all(pads[i] == pads[i + 1] for i in range(0, 6, 2))
        conv_padding = (pads[4], pads[2], pads[0]) if symmetric else 0
        self.pad = nn.Identity() if symmetric else nn.ConstantPad3d(pads, 0.0)
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=conv_padding, bias=False)
        self.batch3d = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.batch3d(self.conv3d(self.pad(x))))


class MaxPool3dSame(nn.Sequential):
    """Max pool with SAME padding and ``ceil_mode``. It pads with zeros, as the FAME port
    does; its inputs come out of a ReLU, so a zero pad never exceeds a real value."""

    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__(nn.ConstantPad3d(same_padding(kernel, stride), 0.0), nn.MaxPool3d(kernel, stride, ceil_mode=True))


class Mixed(nn.Module):
    """An Inception block: four parallel branches concatenated along channels."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        b0, b1_reduce, b1, b2_reduce, b2, b3 = widths
        self.branch_0 = Unit3D(in_channels, b0)
        self.branch_1 = nn.Sequential(Unit3D(in_channels, b1_reduce), Unit3D(b1_reduce, b1, (3, 3, 3)))
        self.branch_2 = nn.Sequential(Unit3D(in_channels, b2_reduce), Unit3D(b2_reduce, b2, (3, 3, 3)))
        self.branch_3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, b3))

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch_0, self.branch_1, self.branch_2, self.branch_3)
        return torch.cat([branch(x) for branch in branches], dim=1)


class I3D(VideoBackbone):
    """Inception-v1 I3D; output stride 8 in time and 32 in space."""

    feature_dim = FEATURE_DIM

    def __init__(self, *, num_classes: int = 400, dropout: float = 0.0):
        super().__init__()
        self.conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.maxpool_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.conv3d_2b_1x1 = Unit3D(64, 64)
        self.conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.maxpool_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.maxpool_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.maxpool_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name, (in_channels, widths) in MIXED.items():
            self.add_module(name, Mixed(in_channels, widths))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        init_weights(self)

    def feature_maps(self, x: Tensor) -> Tensor:
        x = self.conv3d_1a_7x7(x)  # B, 64, T/2, H/2, W/2
        x = self.maxpool_2a_3x3(x)  # B, 64, T/2, H/4, W/4
        x = self.conv3d_2c_3x3(self.conv3d_2b_1x1(x))  # B, 192, T/2, H/4, W/4
        x = self.maxpool_3a_3x3(x)  # B, 192, T/2, H/8, W/8
        x = self.mixed_3c(self.mixed_3b(x))  # B, 480, T/2, H/8, W/8
        x = self.maxpool_4a_3x3(x)  # B, 480, T/4, H/16, W/16
        for name in ("mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f"):
            x = getattr(self, name)(x)  # B, 832, T/4, H/16, W/16 after 4f
        x = self.maxpool_5a_2x2(x)  # B, 832, T/8, H/32, W/32
        return self.mixed_5c(self.mixed_5b(x))  # B, 1024, T/8, H/32, W/32


def i3d(*, num_classes: int = 400, dropout: float = 0.0) -> I3D:
    """I3D (Inception-v1 inflated); the FAME paper's main backbone, 16x224x224 clips."""
    return I3D(num_classes=num_classes, dropout=dropout)
