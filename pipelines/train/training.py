"""What the two training loops share, pretraining's (MoCo) and evaluate's (the classifier):
each epoch's seed, the fp16 gradient scaler, the state a checkpoint holds and a resume
restores, and the checkpoints written after every epoch. Wrapping the model for several
processes is ``distributed.wrap_ddp``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipelines.atomic_files import atomic_path
from pipelines.train.checkpoints import atomic_save, epoch_path, latest_path
from pipelines.train.devices import autocast_dtype

#: how ``epoch_seed`` derives a process's epoch seed
SEED_SCHEMES = ("mixed", "linear")
#: the "linear" scheme's multipliers of the seed and the epoch (the rank is added as it is)
LINEAR_SEED_STRIDE, LINEAR_EPOCH_STRIDE = 100_003, 1_009


def epoch_seed(seed: int, epoch: int, rank: int, *, scheme: str = "mixed") -> int:
    """The seed of one process's epoch: a function of (seed, epoch, rank) only, so a run
    resumed at epoch e draws what the uninterrupted run drew.

    "mixed" (pretraining): numpy's ``SeedSequence`` of the three, well mixed. "linear"
    (evaluate's classifier): ``seed * 100_003 + epoch * 1_009 + rank``, kept as it was so
    that the evaluation results already published reproduce exactly.
    """
    if scheme == "mixed":
        return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    if scheme == "linear":
        return seed * LINEAR_SEED_STRIDE + epoch * LINEAR_EPOCH_STRIDE + rank
    raise ValueError(f"unknown seed scheme {scheme!r}; choose one of {', '.join(SEED_SCHEMES)}")


def grad_scaler(device: torch.device, *, amp: bool = True) -> torch.amp.GradScaler:
    """The loss scaler of mixed precision: needed by float16 autocast on CUDA only (bfloat16
    and the CPU need none: the scaler is then disabled, a no-op)."""
    enabled = amp and device.type == "cuda" and autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=enabled)


def training_state(model: nn.Module, optimizer, scheduler, scaler: torch.amp.GradScaler) -> dict:
    """What a checkpoint holds to resume training: ``model``, ``optimizer``, ``scheduler``,
    ``scaler`` (empty when the scaler is disabled)."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict()}


def restore_training_state(checkpoint: dict, model: nn.Module, optimizer, scheduler,
                           scaler: torch.amp.GradScaler) -> None:
    """Load what ``training_state`` saved (a scaler saved disabled, e.g. on CPU, is skipped)."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])


def save_epoch_checkpoint(checkpoint: dict, run_dir: str | os.PathLike, *, keep: bool = False) -> Path:
    """RUN/checkpoints/latest.pt after every epoch (what a resume starts from); with ``keep``
    also RUN/checkpoints/epoch_XXXX.pt, the same bytes: written once, latest.pt a hard link
    to it (a second write where the filesystem has no hard links). Returns latest.pt."""
    latest = latest_path(run_dir)
    if not keep:
        return atomic_save(checkpoint, latest)
    kept = atomic_save(checkpoint, epoch_path(run_dir, checkpoint["epoch"]))
    try:
        with atomic_path(latest) as temporary:
            os.link(kept, temporary)  # replacing latest.pt later leaves the epoch's file as it is
    except OSError:
        atomic_save(checkpoint, latest)
    return latest
