"""Checkpoints: written atomically, read safely, recognisable as ours.

A checkpoint is a plain dict saved with ``torch.save``::

    {"format": "fame-checkpoint", "version": 1, "kind": "pretrain",
     "settings": {...}, "model": MoCo state dict, "optimizer": ..., "scheduler": ...,
     "scaler": ..., "epoch": epochs finished, "step": optimizer steps done,
     "rng": {...}, "metrics": {...}}

It is written to a temporary file in the same folder, flushed to disk, and renamed over
the target, so a kill at any moment leaves either the old file or the new one, never a
torn one. It is read with ``torch.load(weights_only=True)``: tensors and plain Python
types only, no code runs; anything else (a truncated file, another program's pickle, not a
checkpoint at all) raises ``CheckpointError`` with one line saying what and where.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pipelines.atomic_files import atomic_path

FORMAT = "fame-checkpoint"
VERSION = 1
CHECKPOINTS = "checkpoints"
LATEST = "latest.pt"
#: how a file written by ``torch.save`` begins: a zip archive (torch >= 1.6) or a pickle (older)
TORCH_FILE_STARTS = (b"PK\x03\x04", b"\x80")
#: characters of a library's message quoted in ours
QUOTED = 160


class CheckpointError(Exception):
    """A checkpoint is missing, damaged, or not one of ours."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CHECKPOINTS


def latest_path(run_dir: str | os.PathLike) -> Path:
    return checkpoint_dir(run_dir) / LATEST


def epoch_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    """``RUN/checkpoints/epoch_0010.pt``: the checkpoint after ``epoch`` finished epochs."""
    return checkpoint_dir(run_dir) / f"epoch_{epoch:04d}.pt"


def atomic_save(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``
    (``pipelines.atomic_files``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        torch.save(obj, file)
    return path


def why_unreadable(path: str | os.PathLike, error: Exception) -> str:
    """One line saying why ``torch.load(path, weights_only=True)`` raised ``error``.

    Says what the file is rather than repeating torch's advice to load it with
    ``weights_only=False`` (which would run whatever code the file holds: never done here).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(TORCH_FILE_STARTS[0]))
    except OSError as reading:
        return f"cannot be read ({reading.strerror})"
    if not head.startswith(TORCH_FILE_STARTS):
        return "not a checkpoint: torch.save writes a zip archive (or, before torch 1.6, a pickle) and this file is neither"
    text = str(error).strip()
    if "Weights only load failed" in text:
        detail = (text.partition("WeightsUnpickler error:")[2].strip().splitlines() or ["objects of other types"])[0]
        detail = detail.split(". ")[0][:QUOTED]  # the refusal, without torch's advice that follows
        if detail.startswith("Unsupported operand"):  # bytes that are no pickle at all
            return f"not a checkpoint: not a valid pickle either ({detail})"
        return (f"holds objects that weights_only=True refuses ({detail}); fame never unpickles arbitrary "
                "objects, so save plain tensors and types")
    first_line = (text.splitlines() or [type(error).__name__])[0][:QUOTED]
    return f"not a readable checkpoint (truncated or corrupt?): {first_line}"


def make_checkpoint(*, kind: str, settings: dict, **content) -> dict:
    """The checkpoint dict: our header, then ``content`` (model, optimizer, epoch, ...)."""
    return {"format": FORMAT, "version": VERSION, "kind": kind, "settings": settings, **content}


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None, map_location="cpu") -> dict:
    """Read a checkpoint written by ``atomic_save(make_checkpoint(...))`` (never runs code).

    ``kind`` checks what it holds ("pretrain", ...). Raises ``CheckpointError`` for a
    missing, truncated, corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # zip/pickle errors of many kinds: truncated, corrupt, unsafe content
        raise CheckpointError(f"{path}: {why_unreadable(path, error)}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fame checkpoint (no {FORMAT!r} header)")
    if checkpoint.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {checkpoint.get('version')!r}, this fame reads {VERSION}")
    if kind is not None and checkpoint.get("kind") != kind:
        raise CheckpointError(f"{path}: a {checkpoint.get('kind')!r} checkpoint, expected {kind!r}")
    return checkpoint
