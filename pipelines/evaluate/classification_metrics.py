"""The scores of a trained classifier on the test videos: video- and clip-level top-k, the
confusion matrix, and what a background swap does to them."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pipelines.evaluate.retrieval import top_k_accuracy

TOP_KS = (1, 5)


def classification_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """``top1``/``top5`` of each video (its clips' logits averaged) and ``top1_clip``/
    ``top5_clip`` of every clip on its own, in percent. ``logits`` V, clips, C; labels V."""
    video = top_k_accuracy(logits.mean(dim=1), labels, TOP_KS)
    clip = top_k_accuracy(logits.flatten(0, 1), labels.repeat_interleave(logits.shape[1]), TOP_KS)
    return {
        "top1": video[1], "top5": video[5], "top1_clip": clip[1], "top5_clip": clip[5],
    }


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``matrix[true, predicted]`` counts: C, C."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def partner_share(predictions: Tensor, labels: Tensor, partners: np.ndarray) -> float:
    """Of the swapped videos whose background comes from another class, the percentage
    predicted as that background's class: how often the background wins outright."""
    background = labels[torch.as_tensor(partners)]
    differs = background != labels
    if not bool(differs.any()):
        return float("nan")
    return float((predictions[differs] == background[differs]).float().mean() * 100)


def with_gap(normal: dict[str, float], swapped: dict[str, float]) -> dict[str, dict[str, float]]:
    return {"metrics": swapped, "gap": {k: normal[k] - swapped[k] for k in swapped if k in normal}}
