"""Retrieval and kNN maths against slow, obviously correct references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.evaluate.retrieval import (
    RECALL_KS,
    average_clip_features,
    knn_class_scores,
    knn_classify,
    prepare_features,
    recall_at_k,
    top_k_accuracy,
    top_k_neighbours,
)


def brute_force_recall(queries, query_labels, gallery, gallery_labels, ks):
    """Python loops over numpy: centre each set, normalise, rank by cosine, look for a hit."""
    q = queries - queries.mean(axis=0)
    g = gallery - gallery.mean(axis=0)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    out = {}
    for k in ks:
        hits = 0
        for i in range(len(q)):
            similarity = [float(np.dot(q[i], g[j])) for j in range(len(g))]
            order = sorted(range(len(g)), key=lambda j: -similarity[j])[:k]
            hits += any(gallery_labels[j] == query_labels[i] for j in order)
        out[f"recall@{k}"] = 100.0 * hits / len(q)
    return out


@pytest.mark.parametrize("num_queries,num_gallery,dim,classes", [(37, 120, 16, 5), (10, 30, 4, 3), (64, 64, 32, 10)])
def test_recall_matches_brute_force(num_queries, num_gallery, dim, classes):
    rng = np.random.default_rng(num_queries)
    queries = rng.normal(size=(num_queries, dim)).astype(np.float32)
    gallery = rng.normal(size=(num_gallery, dim)).astype(np.float32)
    query_labels = rng.integers(0, classes, num_queries)
    gallery_labels = rng.integers(0, classes, num_gallery)
    got = recall_at_k(queries, query_labels, gallery, gallery_labels)
    expected = brute_force_recall(queries, query_labels, gallery, gallery_labels, RECALL_KS)
    assert list(got) == [f"recall@{k}" for k in RECALL_KS]
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name


def test_recall_chunked_equals_whole():
    rng = np.random.default_rng(0)
    q = prepare_features(rng.normal(size=(50, 8)))
    g = prepare_features(rng.normal(size=(70, 8)))
    whole = top_k_neighbours(q, g, 10)
    chunked = top_k_neighbours(q, g, 10, chunk=7)
    torch.testing.assert_close(whole[0], chunked[0])
    assert torch.equal(whole[1], chunked[1])


def test_recall_on_separable_features_is_perfect_and_k_clips_to_gallery():
    labels = np.arange(4).repeat(3)
    features = np.eye(4)[labels] * 10 + np.random.default_rng(1).normal(scale=0.01, size=(12, 4))
    got = recall_at_k(features, labels, features[::-1], labels[::-1], ks=(1, 50))
    assert got == {"recall@1": 100.0, "recall@50": 100.0}


def test_prepared_features_are_centred_and_unit_length():
    x = torch.randn(20, 6) + 5
    prepared = prepare_features(x)
    torch.testing.assert_close(prepared.norm(dim=1), torch.ones(20))
    centred = x - x.mean(0)
    torch.testing.assert_close(prepared, centred / centred.norm(dim=1, keepdim=True))


def test_multi_clip_averaging():
    clips = torch.randn(3, 10, 8)  # videos, clips, dim
    expected = torch.stack([torch.stack([c / c.norm() for c in video]).mean(0) for video in clips])
    torch.testing.assert_close(average_clip_features(clips), expected)
    torch.testing.assert_close(average_clip_features(clips, normalise_clips=False), clips.mean(1))
    one = torch.randn(4, 1, 8)
    torch.testing.assert_close(average_clip_features(one), one[:, 0] / one[:, 0].norm(dim=1, keepdim=True))


def test_knn_matches_loop_reference():
    rng = np.random.default_rng(2)
    gallery = rng.normal(size=(40, 5))
    queries = rng.normal(size=(9, 5))
    labels = rng.integers(0, 4, 40)
    k, tau = 7, 0.1
    scores = knn_classify(queries, gallery, labels, 4, k=k, temperature=tau)
    q = prepare_features(queries).numpy()
    g = prepare_features(gallery).numpy()
    for i in range(len(q)):
        similarity = g @ q[i]
        expected = np.zeros(4)
        for j in np.argsort(-similarity, kind="stable")[:k]:
            expected[labels[j]] += np.exp(similarity[j] / tau)
        np.testing.assert_allclose(scores[i].numpy(), expected, rtol=1e-4)


def test_knn_vote_weights():
    similarities = torch.tensor([[0.9, 0.5, 0.4]])
    labels = torch.tensor([[0, 1, 1]])
    scores = knn_class_scores(similarities, labels, 3, temperature=0.1)
    torch.testing.assert_close(scores, torch.tensor([[np.exp(9.0), np.exp(5.0) + np.exp(4.0), 0.0]], dtype=torch.float32))


def test_top_k_accuracy():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    got = top_k_accuracy(scores, labels, ks=(1, 2, 5))
    assert got[1] == pytest.approx(100 / 3)
    assert got[2] == pytest.approx(200 / 3)
    assert got[5] == 100.0
