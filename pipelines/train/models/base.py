"""What every backbone shares: conv trunk -> global average pool -> dropout -> ``fc``.

A subclass builds its trunk, sets ``feature_dim``, ``avgpool``, ``dropout`` and ``fc``,
and implements ``feature_maps``. The classifier is always called ``fc`` so heads can be
swapped uniformly: MoCo puts its projection head there, evaluation a new linear classifier.
"""

from abc import ABC, abstractmethod

from torch import Tensor, nn


class VideoBackbone(nn.Module, ABC):
    """A 3D CNN on clips ``B, 3, T, H, W``; ``fc`` is the (replaceable) classifier."""

    feature_dim: int  # channels of feature_maps, the input size of fc

    @abstractmethod
    def feature_maps(self, x: Tensor) -> Tensor:
        """Output of the last conv block, ``B, feature_dim, T', H', W'``."""

    def forward_features(self, x: Tensor) -> Tensor:
        """Globally average-pooled features before the classifier, ``B, feature_dim``."""
        return self.avgpool(self.feature_maps(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.forward_features(x)))  # B, num_classes


def init_weights(model: nn.Module) -> None:
    """The torchvision video ResNet initialisation: Kaiming (fan-out) convs, BN 1/0,
    classifier N(0, 0.01)."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
