"""Video backbones: clips ``B, 3, T, H, W`` in; every model has ``feature_dim``,
``feature_maps(x)`` (last conv block), ``forward_features(x)`` (pooled, ``B, feature_dim``)
and a replaceable classifier ``fc`` applied by ``forward(x)``.

>>> model = build_backbone("r2plus1d_18", num_classes=101, dropout=0.7)
"""

from collections.abc import Callable

from pipelines.train.models.base import VideoBackbone
from pipelines.train.models.i3d import I3D, i3d
from pipelines.train.models.resnet import VideoResNet, r2plus1d_18, r3d_18
from pipelines.train.models.small import SmallVideoNet, small

BUILDERS: dict[str, Callable[..., VideoBackbone]] = {
    "r2plus1d_18": r2plus1d_18,
    "r3d_18": r3d_18,
    "i3d": i3d,
    "small": small,
}
BACKBONES = tuple(BUILDERS)


def build_backbone(name: str, *, num_classes: int = 400, **kwargs) -> VideoBackbone:
    """The backbone called ``name`` (one of ``BACKBONES``); ``kwargs`` go to its builder
    (``dropout``)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BUILDERS[name](num_classes=num_classes, **kwargs)


__all__ = [
    "BACKBONES",
    "I3D",
    "SmallVideoNet",
    "VideoBackbone",
    "VideoResNet",
    "build_backbone",
    "i3d",
    "r2plus1d_18",
    "r3d_18",
    "small",
]
