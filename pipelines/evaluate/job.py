"""What one ``fame evaluate`` run works with, resolved once (the ``Job``: settings, cache,
splits, device, weights), and the model every protocol starts from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from pipelines.data.cache import CacheReader, open_cache
from pipelines.train.checkpoint_formats import BackboneWeights, LoadReport, load_backbone, read_checkpoint
from pipelines.train.devices import channels_last_3d_ok
from pipelines.evaluate.settings import (
    TRAINED,
    EvaluateError,
    EvaluateSettings,
    resolve_checkpoint_path,
    resolve_settings,
)
from pipelines.data.layouts import fold_split_name
from pipelines.train.models import build_backbone

Progress = Callable[..., None]  # progress(stage, done, total, **fields)
Log = Callable[[str], None]


@dataclass
class Job:
    """What one evaluation works with, resolved once."""

    settings: EvaluateSettings
    reader: CacheReader
    train_ids: list[str]
    test_ids: list[str]
    splits: dict[str, str]  # "train"/"test" -> the cache's split names
    device: torch.device
    run_dir: Path
    output: Path
    weights: BackboneWeights | None
    progress: Progress
    log: Log

    @property
    def num_classes(self) -> int:
        return len(self.reader.classes)


def prepare_job(settings: EvaluateSettings, device: torch.device, progress: Progress, log: Log) -> Job:
    """Open the cache, read the checkpoint, resolve the settings and the splits: every check
    that can fail does so here, before any work."""
    reader = open_cache(settings.cache, source=settings.source)
    if not reader.classes:
        raise EvaluateError(f"{reader.path}: the cache has no class labels; evaluation needs a labelled layout")
    checkpoint = resolve_checkpoint_path(settings.checkpoint)
    weights = read_checkpoint(checkpoint) if checkpoint is not None else None
    settings = resolve_settings(replace(settings, checkpoint=str(checkpoint) if checkpoint else None), weights)
    if settings.protocol == "swap-retrieval" and not reader.splits:
        # A folder of videos has no split files; swap-retrieval needs no training set, so its
        # queries are every video unless a split was named.
        settings = replace(settings, train_split=_all_unless_named(settings.train_split, "train"),
                           test_split=_all_unless_named(settings.test_split, "test"))
    train_ids = reader.split(settings.train_split, settings.fold)
    test_ids = reader.split(settings.test_split, settings.fold)
    for name, ids in (("train", train_ids), ("test", test_ids)):
        if not ids:
            raise EvaluateError(f"{reader.path}: the {name} split of fold {settings.fold} has no finished videos")
    splits = {
        "train": _split_name(reader, settings.train_split, settings.fold),
        "test": _split_name(reader, settings.test_split, settings.fold),
    }
    return Job(
        settings, reader, train_ids, test_ids, splits, device, Path(settings.run_dir), Path(settings.output), weights,
        progress, log,
    )


def _all_unless_named(name: str, default: str) -> str:
    return "all" if name == default else name


def _split_name(reader: CacheReader, name: str, fold: int) -> str:
    splits = reader.splits
    return name if name in splits or name in ("all", "") else fold_split_name(name, fold)


def freeze_backbone(model: nn.Module) -> None:
    """The linear probe: no gradient for anything but ``fc``. BN statistics stay frozen as
    long as the model runs in eval mode (``train_classifier`` keeps it there)."""
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("fc."))


def build_model(job: Job) -> tuple[nn.Module, LoadReport | None]:
    """The backbone with a new ``num_classes`` classifier, loaded from the checkpoint (with
    its classifier too when there are no epochs to train)."""
    s = job.settings
    torch.manual_seed(s.seed)  # the same new classifier on every process and every resume
    model = build_backbone(s.arch, num_classes=job.num_classes, dropout=s.dropout or 0.0)
    report = None
    if job.weights is not None:
        report = load_backbone(model, job.weights, arch=s.arch, head=s.protocol in TRAINED and s.epochs == 0)
    if s.protocol == "linear":
        freeze_backbone(model)
    model.to(job.device)
    if channels_last_3d_ok(job.device):
        model.to(memory_format=torch.channels_last_3d)
    return model, report


def checkpoint_summary(job: Job, report: LoadReport | None) -> dict:
    if report is None:
        return {"path": None, "sha256": None, "format": "none", "arch": job.settings.arch,
                "loaded": 0, "missing": 0, "ignored": 0, "head_loaded": False, "missing_keys": []}
    return report.summary()
