"""R3D-18 and R(2+1)D-18 (Tran et al., "A Closer Look at Spatiotemporal Convolutions for
Action Recognition", CVPR 2018), written so that their state-dict keys and shapes are
exactly those of torchvision's ``r3d_18()`` / ``r2plus1d_18()``: published torchvision
(and official FAME R(2+1)D) weights load with ``strict=True``.

Layout (torchvision's ``torchvision/models/video/resnet.py``)::

    stem                      conv-BN-ReLU (R3D) or (2D conv-BN-ReLU, 1D conv-BN-ReLU)
    layer{1..4}.{0,1}         BasicBlock: conv1 = (conv, BN, ReLU), conv2 = (conv, BN),
                              downsample = (1x1x1 conv, BN) in layer{2,3,4}.0
    avgpool, dropout, fc      dropout has no state, so the keys stay torchvision's

A (2+1)D conv is itself ``(1x3x3 conv, BN, ReLU, 3x1x1 conv)``, hence keys such as
``layer1.0.conv1.0.0.weight`` (spatial) and ``layer1.0.conv1.0.3.weight`` (temporal).
"""

from collections.abc import Callable

from torch import Tensor, nn

from pipelines.train.models.base import VideoBackbone, init_weights

WIDTHS = (64, 128, 256, 512)  # output channels of layer1..layer4
BLOCKS_PER_LAYER = 2  # the "18" in R3D-18: 4 layers x 2 blocks x 2 convs + stem + fc
FEATURE_DIM = WIDTHS[-1]

# conv(in_planes, out_planes, mid_planes, stride) -> module
ConvBuilder = Callable[[int, int, int, int], nn.Module]


def mid_planes(in_planes: int, out_planes: int) -> int:
    """Channels between the spatial and the temporal conv of a (2+1)D block, chosen so
    that it has as many parameters as the 3x3x3 conv it replaces (the paper's M_i)."""
    return (in_planes * out_planes * 3 * 3 * 3) // (in_planes * 3 * 3 + 3 * out_planes)


def conv3d_full(in_planes: int, out_planes: int, mid: int, stride: int = 1) -> nn.Module:
    """R3D: one 3x3x3 conv (``mid`` unused)."""
    return nn.Conv3d(in_planes, out_planes, (3, 3, 3), stride=stride, padding=1, bias=False)


def conv2plus1d(in_planes: int, out_planes: int, mid: int, stride: int = 1) -> nn.Module:
    """R(2+1)D: a 1x3x3 spatial conv, BN, ReLU, then a 3x1x1 temporal conv."""
    return nn.Sequential(
        nn.Conv3d(in_planes, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
    )


def stem_r3d() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
    )


def stem_r2plus1d() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(45),
        nn.ReLU(inplace=True),
        nn.Conv3d(45, 64, (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Two convs and a residual connection; ``stride`` 2 halves T, H and W."""

    def __init__(self, in_planes: int, planes: int, conv: ConvBuilder, stride: int = 1):
        super().__init__()
        mid = mid_planes(in_planes, planes)  # torchvision uses this value for both convs
        self.conv1 = nn.Sequential(conv(in_planes, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes, mid, 1), nn.BatchNorm3d(planes))
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(planes),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


class VideoResNet(VideoBackbone):
    """An 18-layer video ResNet; ``conv`` picks R3D (3x3x3) or R(2+1)D blocks."""

    feature_dim = FEATURE_DIM

    def __init__(self, conv: ConvBuilder, stem: nn.Module, *, num_classes: int = 400, dropout: float = 0.0):
        super().__init__()
        self.stem = stem
        in_planes = 64
        for i, planes in enumerate(WIDTHS, start=1):
            stride = 1 if i == 1 else 2
            blocks = [BasicBlock(in_planes, planes, conv, stride)]
            blocks += [BasicBlock(planes, planes, conv) for _ in range(BLOCKS_PER_LAYER - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        init_weights(self)

    def feature_maps(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # B, 64, T, H/2, W/2
        x = self.layer1(x)  # B, 64, T, H/2, W/2
        x = self.layer2(x)  # B, 128, T/2, H/4, W/4
        x = self.layer3(x)  # B, 256, T/4, H/8, W/8
        return self.layer4(x)  # B, 512, T/8, H/16, W/16


def r3d_18(*, num_classes: int = 400, dropout: float = 0.0) -> VideoResNet:
    """R3D-18: 3x3x3 convs throughout; torchvision ``r3d_18`` keys."""
    return VideoResNet(conv3d_full, stem_r3d(), num_classes=num_classes, dropout=dropout)


def r2plus1d_18(*, num_classes: int = 400, dropout: float = 0.0) -> VideoResNet:
    """R(2+1)D-18: every 3x3x3 conv factored into 1x3x3 then 3x1x1; torchvision
    ``r2plus1d_18`` keys (the backbone of FAME's R(2+1)D results)."""
    return VideoResNet(conv2plus1d, stem_r2plus1d(), num_classes=num_classes, dropout=dropout)
