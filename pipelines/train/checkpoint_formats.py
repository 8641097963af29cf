"""Backbone weights out of the checkpoint files people have: ours, the official FAME
releases and plain torchvision-style state dicts (documented in ``docs/evaluation.md``).

Every file is read with ``torch.load(..., weights_only=True)``: tensors, numbers, strings
and containers only, never arbitrary pickled objects. The weights are mapped onto our
backbone names (torchvision's for the video ResNets, the FAME code's for I3D, see
``pipelines.train.models``); the classifier ``fc`` is kept apart as the "head".

Accepted layouts (``FORMATS``):

- ``fame-pretrain``: ours, ``{"format": "fame-checkpoint", "kind": "pretrain", "settings",
  "model"}``, ``model`` a MoCo state dict: the backbone is ``encoder_q.*`` minus the
  projection head ``encoder_q.fc.*``.
- ``fame-evaluate``: ours, an ``evaluate`` run's checkpoint (``kind`` "evaluate"), ``model``
  the classifier's own state dict (backbone keys and ``fc.*``).
- ``official-pretrain``: the FAME code's ``train.py`` (``{"state_dict", "epoch", "arch",
  "optimizer"}`` saved from DDP): ``module.encoder_q.*`` minus ``fc.*`` (R(2+1)D's MLP) and
  ``id_head.*`` (I3D's head); the key encoder and the queue are ignored.
- ``official-finetune``: the FAME code's ``eval.py`` (the released fine-tuned I3D):
  ``{"state_dict"}`` with ``module.`` + backbone keys and ``fc.*``.
- ``state-dict``: a bare state dict (torchvision's ``r2plus1d_18`` / ``r3d_18`` weights, or
  any of our backbones), optionally under DDP's ``module.``.

>>> weights = read_checkpoint("fame_i3d_k400.pth.tar")                 # doctest: +SKIP
>>> model = build_backbone(weights.arch or "i3d", num_classes=101)      # doctest: +SKIP
>>> report = load_backbone(model, weights)                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from pipelines.train.checkpoints import why_unreadable

FORMATS = ("fame-pretrain", "fame-evaluate", "official-pretrain", "official-finetune", "state-dict")
OURS = "fame-checkpoint"  # the "format" tag of our own checkpoints
DDP_PREFIX = "module."
QUERY_ENCODER = "encoder_q."
HEAD_PREFIXES = ("fc.", "id_head.")  # classifier / projection heads: never part of the backbone
# A key that only one backbone has, in the order they are tried (R(2+1)D also has stem.0).
ARCH_SIGNATURES = (
    ("i3d", "conv3d_1a_7x7.conv3d.weight"),
    ("r2plus1d_18", "stem.3.weight"),
    ("r3d_18", "stem.0.weight"),
    ("small", "layer1.0.weight"),
)
SHOWN_KEYS = 5  # keys quoted in an error message
HASH_BLOCK = 1 << 20


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint we can read, or its weights do not fit the backbone."""


@dataclass(frozen=True)
class BackboneWeights:
    """What a checkpoint file holds, in our backbone's names."""

    path: str
    sha256: str  # of the file's bytes
    format: str  # one of FORMATS
    arch: str | None  # backbone recognised from the keys (or saved in our settings)
    backbone: dict[str, Tensor]  # backbone keys -> tensors, without the classifier
    head: dict[str, Tensor]  # "fc.weight"/"fc.bias" of a classifier checkpoint; {} otherwise
    ignored: list[str]  # keys of the file's state dict that are not used
    settings: dict = field(default_factory=dict)  # our checkpoints' saved settings


@dataclass(frozen=True)
class LoadReport:
    """What ``load_backbone`` did; ``summary()`` is the JSON's ``checkpoint`` entry."""

    path: str
    sha256: str
    format: str
    arch: str
    loaded: list[str]  # backbone keys set from the file
    missing: list[str]  # backbone keys the file lacks (they keep their initial values)
    ignored: list[str]  # keys of the file that were not used
    head_loaded: bool  # whether the classifier came from the file too

    def summary(self) -> dict:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "format": self.format,
            "arch": self.arch,
            "loaded": len(self.loaded),
            "missing": len(self.missing),
            "ignored": len(self.ignored),
            "head_loaded": self.head_loaded,
            "missing_keys": self.missing,
        }


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_arch(keys) -> str | None:
    """The backbone a set of (backbone-named) keys belongs to, or None."""
    keys = set(keys)
    return next((arch for arch, signature in ARCH_SIGNATURES if signature in keys), None)


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def _split_head(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor], list[str]]:
    """Backbone keys, the ``fc`` classifier (a plain Linear only) and the other head keys."""
    backbone = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    head = {k: v for k, v in state.items() if k in ("fc.weight", "fc.bias")}
    other = [k for k in state if k.startswith(HEAD_PREFIXES) and k not in head]
    return backbone, head, other


def moco_backbone(state: dict[str, Tensor], prefix: str = QUERY_ENCODER) -> tuple[dict[str, Tensor], list[str]]:
    """The query encoder's backbone out of a MoCo state dict whose encoder keys start with
    ``prefix``, under the backbone's own key names; everything else (key encoder, queue,
    projection head) is ignored. The project's one mapping from MoCo keys to backbone keys.
    Returns (backbone, ignored keys)."""
    backbone, ignored = {}, []
    for key, value in state.items():
        name = key.removeprefix(prefix)
        if key.startswith(prefix) and not name.startswith(HEAD_PREFIXES):
            backbone[name] = value
        else:
            ignored.append(key)
    return backbone, ignored


def _strip_ddp(state: dict[str, Tensor]) -> dict[str, Tensor]:
    if all(k.startswith(DDP_PREFIX) for k in state):
        return {k.removeprefix(DDP_PREFIX): v for k, v in state.items()}
    return state


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointFormatError(f"{path}: no such checkpoint file") from None
    except Exception as error:  # unpickling refused, not a torch file, truncated...
        raise CheckpointFormatError(f"{path}: {why_unreadable(path, error)}") from None


def interpret(obj, *, path: str = "", sha256: str = "") -> BackboneWeights:
    """Map a loaded checkpoint object onto backbone keys (see the module docstring)."""
    if isinstance(obj, dict) and obj.get("format") == OURS:
        settings = dict(obj.get("settings") or {})
        state = obj.get("model")
        if not _is_state_dict(state):
            raise CheckpointFormatError(f"{path}: a fame checkpoint without a 'model' state dict")
        if obj.get("kind") == "pretrain":
            backbone, ignored = moco_backbone(state)
            head, fmt = {}, "fame-pretrain"
        else:
            backbone, head, ignored = _split_head(state)
            fmt = "fame-evaluate"
        arch = settings.get("arch") or detect_arch(backbone)
        return BackboneWeights(path, sha256, fmt, arch, backbone, head, ignored, settings)
    if isinstance(obj, dict) and _is_state_dict(obj.get("state_dict")):
        state = obj["state_dict"]
        encoder = DDP_PREFIX + QUERY_ENCODER
        prefix = encoder if any(k.startswith(encoder) for k in state) else QUERY_ENCODER
        if any(k.startswith(prefix) for k in state):
            backbone, ignored = moco_backbone(state, prefix)
            return BackboneWeights(path, sha256, "official-pretrain", detect_arch(backbone), backbone, {}, ignored)
        backbone, head, ignored = _split_head(_strip_ddp(state))
        return BackboneWeights(path, sha256, "official-finetune", detect_arch(backbone), backbone, head, ignored)
    if _is_state_dict(obj):
        backbone, head, ignored = _split_head(_strip_ddp(obj))
        return BackboneWeights(path, sha256, "state-dict", detect_arch(backbone), backbone, head, ignored)
    kind = f"a dict with keys {sorted(obj)[:SHOWN_KEYS]}" if isinstance(obj, dict) else type(obj).__name__
    raise CheckpointFormatError(
        f"{path}: not a checkpoint layout we know ({kind}); accepted: our fame checkpoints, the "
        "official FAME releases ({'state_dict': ...}) and plain torchvision-style state dicts"
    )


def read_checkpoint(path: str | os.PathLike) -> BackboneWeights:
    """Read a checkpoint file (``weights_only=True``) and map it onto backbone keys."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointFormatError(f"{path}: no such checkpoint file")
    return interpret(_torch_load(path), path=str(path), sha256=file_sha256(path))


def load_backbone(model: nn.Module, weights: BackboneWeights, *, arch: str = "", head: bool = False) -> LoadReport:
    """Copy ``weights`` into ``model`` (a backbone from ``pipelines.train.models``); with ``head``
    also its classifier, which must then be in the file with the same shape.

    Refuses (``CheckpointFormatError``) when no backbone key matched or any shape differs;
    keys the file lacks are reported as missing, keys it has beyond the model as ignored.
    """
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    matched = sorted(k for k in weights.backbone if k in own)
    described = f"{weights.path} ({weights.format}, looks like {weights.arch or 'no backbone we know'})"
    if not matched:
        raise CheckpointFormatError(
            f"{described}: nothing of the {arch or type(model).__name__} backbone matched "
            f"(file keys such as {sorted(weights.backbone)[:3]}, model keys such as {sorted(own)[:3]}); "
            "pass the right --arch or another checkpoint"
        )
    wrong = [k for k in matched if weights.backbone[k].shape != own[k].shape]
    if head:
        if not weights.head:
            raise CheckpointFormatError(f"{described}: has no classifier (fc) to evaluate")
        classifier = model.state_dict()
        wrong += [k for k in sorted(weights.head) if weights.head[k].shape != classifier[k].shape]
    if wrong:
        shown = ", ".join(
            f"{k}: file {tuple((weights.backbone | weights.head)[k].shape)}, model {tuple(model.state_dict()[k].shape)}"
            for k in wrong[:SHOWN_KEYS]
        )
        raise CheckpointFormatError(f"{described}: {len(wrong)} shape mismatch(es) with the model: {shown}")
    state = {k: weights.backbone[k] for k in matched}
    if head:
        state.update(weights.head)
    model.load_state_dict(state, strict=False)
    missing = sorted(k for k in own if k not in weights.backbone)
    extra = sorted(k for k in weights.backbone if k not in own)
    unused_head = [] if head else sorted(weights.head)
    return LoadReport(
        path=weights.path, sha256=weights.sha256, format=weights.format, arch=arch or weights.arch or "",
        loaded=matched, missing=missing, ignored=sorted(weights.ignored) + extra + unused_head, head_loaded=head,
    )
