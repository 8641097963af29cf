"""Nearest-neighbour evaluation of frozen features: video retrieval and the weighted kNN
classifier. Pure functions on torch tensors (numpy arrays are accepted), vectorised, with
the queries processed in chunks so a query-by-gallery similarity matrix never has to fit
in memory at once.

Retrieval follows the FAME code (``main_retrieve.py``): "features of 10 uniform clips per
video averaged; centre the features (subtract the mean), L2-normalise, cosine similarity;
test videos query the train gallery; recall at k = 1, 5, 10, 20, 50 (a hit if any of the
top k has the same class)". As there, each set is centred with its own mean.

>>> q, g = prepare_features(test_feats), prepare_features(train_feats)      # doctest: +SKIP
>>> recall_at_k(test_feats, test_labels, train_feats, train_labels)         # doctest: +SKIP
{'recall@1': 41.3, 'recall@5': 60.2, ...}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

RECALL_KS = (1, 5, 10, 20, 50)  # the paper's retrieval table
# The weighted kNN of InstDisc (Wu et al., "Unsupervised Feature Learning via
# Non-Parametric Instance Discrimination", CVPR 2018, Sec. 3.4): k = 200 neighbours,
# weights exp(s / tau) with tau = 0.07.
KNN_K = 200
KNN_TEMPERATURE = 0.07
QUERY_CHUNK = 4096  # queries per similarity block (4096 x 10k gallery floats = 160 MB)


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(np.ascontiguousarray(x))


def centre(features: Tensor) -> Tensor:
    """Subtract the mean feature of the set: N, D -> N, D."""
    return features - features.mean(dim=0, keepdim=True)


def l2_normalise(features: Tensor) -> Tensor:
    """Each row to unit length (a zero row stays zero): N, D -> N, D."""
    return F.normalize(features, dim=1)


def prepare_features(features, *, centred: bool = True) -> Tensor:
    """The retrieval features of a set: float32, centred (optional), L2-normalised, N, D."""
    features = _as_tensor(features).float()
    return l2_normalise(centre(features) if centred else features)


def average_clip_features(clip_features: Tensor, *, normalise_clips: bool = True) -> Tensor:
    """One feature per video from its clips: V, C, D -> V, D.

    The FAME code replaces the classifier by an L2 normalisation (``model.fc =
    Normalize(2)``) and averages the clips' outputs, so each clip is normalised before the
    mean (``normalise_clips``); every clip then weighs the same in the video's feature.
    """
    clip_features = _as_tensor(clip_features).float()
    if normalise_clips:
        clip_features = F.normalize(clip_features, dim=-1)
    return clip_features.mean(dim=1)  # V, D


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def top_k_neighbours(queries: Tensor, gallery: Tensor, k: int, *, chunk: int = QUERY_CHUNK) -> tuple[Tensor, Tensor]:
    """The ``k`` most similar gallery rows of each query by cosine similarity of already
    prepared (unit-length) features. Returns similarities and gallery indices, Q, k each,
    most similar first; ``k`` is clipped to the gallery size."""
    k = min(k, gallery.shape[0])
    values, indices = [], []
    for rows in _chunks(queries.shape[0], chunk):
        similarity = queries[rows] @ gallery.T  # q, G
        top = similarity.topk(k, dim=1)  # q, k
        values.append(top.values)
        indices.append(top.indices)
    if not values:
        return queries.new_zeros(0, k), torch.zeros(0, k, dtype=torch.long)
    return torch.cat(values), torch.cat(indices)  # Q, k


def recall_from_neighbours(neighbour_labels: Tensor, query_labels: Tensor, ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """``recall@k`` in percent: the share of queries with a same-class video among their
    first k neighbours (``neighbour_labels`` Q, K sorted by similarity; k > K counts as K)."""
    hits = neighbour_labels == query_labels[:, None]  # Q, K
    first_hit = torch.where(hits.any(dim=1), hits.int().argmax(dim=1), hits.shape[1])  # Q: rank of the first hit
    return {f"recall@{k}": float((first_hit < k).float().mean() * 100) if len(first_hit) else float("nan") for k in ks}


def recall_at_k(
    query_feats,
    query_labels,
    gallery_feats,
    gallery_labels,
    ks: Sequence[int] = RECALL_KS,
    *,
    centred: bool = True,
) -> dict[str, float]:
    """The paper's retrieval score from raw features (Q, D and G, D; labels Q and G):
    prepare both sets, rank the gallery by cosine similarity for each query, and report
    ``recall@k`` for each k, in percent."""
    queries = prepare_features(query_feats, centred=centred)
    gallery = prepare_features(gallery_feats, centred=centred)
    _, indices = top_k_neighbours(queries, gallery, max(ks))  # Q, K
    gallery_labels = _as_tensor(gallery_labels).long()
    return recall_from_neighbours(gallery_labels[indices], _as_tensor(query_labels).long(), ks)


def knn_class_scores(
    similarities: Tensor,
    neighbour_labels: Tensor,
    num_classes: int,
    *,
    temperature: float = KNN_TEMPERATURE,
) -> Tensor:
    """InstDisc's weighted vote: each of a query's neighbours votes for its class with
    weight ``exp(s / tau)`` (s its cosine similarity), and a class scores the sum of its
    votes. ``similarities`` and ``neighbour_labels`` are Q, k; returns Q, num_classes."""
    weights = (similarities / temperature).exp()  # Q, k
    scores = similarities.new_zeros(similarities.shape[0], num_classes)  # Q, num_classes
    return scores.scatter_add_(1, neighbour_labels, weights)


def knn_classify(
    query_feats,
    gallery_feats,
    gallery_labels,
    num_classes: int,
    *,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    centred: bool = True,
) -> Tensor:
    """Class scores (Q, num_classes) of the weighted kNN classifier: the ``k`` nearest
    gallery videos by cosine similarity of the prepared features vote (``knn_class_scores``);
    the prediction is the argmax. ``k`` is clipped to the gallery size."""
    queries = prepare_features(query_feats, centred=centred)
    gallery = prepare_features(gallery_feats, centred=centred)
    similarities, indices = top_k_neighbours(queries, gallery, k)  # Q, k
    labels = _as_tensor(gallery_labels).long()[indices]  # Q, k
    return knn_class_scores(similarities, labels, num_classes, temperature=temperature)


def top_k_accuracy(scores: Tensor, labels, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Percentage of rows whose label is among their k highest scores, for each k (k larger
    than the number of classes counts every row as a hit). Ties go to the lower class id."""
    labels = _as_tensor(labels).long()
    if scores.shape[0] == 0:
        return {k: float("nan") for k in ks}
    order = scores.argsort(dim=1, descending=True, stable=True)  # N, C
    rank = (order == labels[:, None]).int().argmax(dim=1)  # N: position of the true class
    return {k: float((rank < k).float().mean() * 100) for k in ks}
