"""How good a foreground map is: against ground truth, or against another map.

Used to score the cached soft maps against the true masks of synthetic videos, and the
offline (per-window, full-frame) maps against the paper's online (per-clip, per-crop) ones.
Arrays or CPU tensors in, Python floats out.
"""

from __future__ import annotations

import numpy as np


def roc_auc(scores, truth) -> float:
    """Exact area under the ROC curve of ``scores`` ranking the True pixels of ``truth`` first.

    The Mann-Whitney statistic: the chance that a random foreground pixel scores above a random
    background one, ties counting one half. NaN when ``truth`` holds one class only.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=bool).ravel()
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    _, group, group_sizes = np.unique(scores, return_inverse=True, return_counts=True)
    # Tied scores share the mean of the 1-based ranks they span.
    mean_rank = np.cumsum(group_sizes) - (group_sizes - 1) / 2
    positive_rank_sum = mean_rank[group.ravel()][truth].sum()
    return float((positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def top_fraction_mask(soft, *, beta: float = 0.5) -> np.ndarray:
    """The top ``round(beta * H * W)`` pixels of each map (..., H, W); ties go to the earlier pixel.

    The same rule as ``pipelines.fame.select_foreground`` (step 5 of FAME), in numpy.
    """
    soft = np.asarray(soft, dtype=np.float64)  # float, so that negating a uint8 map cannot wrap
    flat = soft.reshape(-1, soft.shape[-2] * soft.shape[-1])  # maps, H*W
    kept = round(beta * flat.shape[1])
    order = np.argsort(-flat, axis=1, kind="stable")[:, :kept]  # maps, kept
    mask = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask.reshape(soft.shape)


def foreground_kept(soft, truth, *, beta: float = 0.5) -> float:
    """Share of the true foreground pixels that fall inside the top-``beta`` mask of ``soft``.

    The maps are the last two axes; over a batch the shares are pooled over all pixels.
    NaN when ``truth`` has no foreground.
    """
    truth = np.asarray(truth, dtype=bool)
    foreground = int(truth.sum())
    if foreground == 0:
        return float("nan")
    return float((top_fraction_mask(soft, beta=beta) & truth).sum() / foreground)


def mask_agreement(a, b) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    union = int((a | b).sum())
    if union == 0:
        return 1.0
    return float((a & b).sum() / union)
