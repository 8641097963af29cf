"""A tiny 3D CNN for the CPU quick start and the tests: four conv-BN-ReLU stages, no
residuals. On 16x112x112 clips it costs ~0.2 GMAC per clip (R(2+1)D-18: ~40), so a few
epochs on the synthetic demo data finish in minutes on a laptop CPU.

Keys: ``layer{1..4}.{0: conv, 1: BN}``, then ``fc``.
"""

from torch import Tensor, nn

from pipelines.train.models.base import VideoBackbone, init_weights

WIDTHS = (16, 32, 64, 128)  # output channels of layer1..layer4
# Stride (T, H, W) of each stage; 16x112x112 -> 16x56x56 -> 8x28x28 -> 4x14x14 -> 2x7x7.
STRIDES = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))
FEATURE_DIM = WIDTHS[-1]


class SmallVideoNet(VideoBackbone):
    """Four 3x3x3 conv-BN-ReLU stages of increasing width and decreasing resolution."""

    feature_dim = FEATURE_DIM

    def __init__(self, *, num_classes: int = 400, dropout: float = 0.0):
        super().__init__()
        in_channels = 3
        for i, (width, stride) in enumerate(zip(WIDTHS, STRIDES), start=1):
            stage = nn.Sequential(
                nn.Conv3d(in_channels, width, (3, 3, 3), stride=stride, padding=1, bias=False),
                nn.BatchNorm3d(width),
                nn.ReLU(inplace=True),
            )
            self.add_module(f"layer{i}", stage)
            in_channels = width
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        init_weights(self)

    def feature_maps(self, x: Tensor) -> Tensor:
        x = self.layer1(x)  # B, 16, T, H/2, W/2
        x = self.layer2(x)  # B, 32, T/2, H/4, W/4
        x = self.layer3(x)  # B, 64, T/4, H/8, W/8
        return self.layer4(x)  # B, 128, T/8, H/16, W/16


def small(*, num_classes: int = 400, dropout: float = 0.0) -> SmallVideoNet:
    """The tiny CPU backbone (feature_dim 128)."""
    return SmallVideoNet(num_classes=num_classes, dropout=dropout)
