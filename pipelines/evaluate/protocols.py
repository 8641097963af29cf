"""The protocols' steps (``pipelines.evaluate.run`` runs them): ``finetune``/``linear`` train a
classifier then test it; ``retrieval``/``knn`` score frozen features; both optionally on
background-swapped test clips too. ``swap-retrieval`` is ``pipelines.evaluate.swap_retrieval``."""

from __future__ import annotations

import torch
from torch import Tensor

from pipelines.evaluate.classification_metrics import TOP_KS, classification_metrics, confusion_matrix, partner_share, with_gap
from pipelines.evaluate.classifier_training import train_classifier
from pipelines.evaluate.inference import infer, swapped_dataset, testing_clips
from pipelines.evaluate.job import Job, build_model, checkpoint_summary
from pipelines.evaluate.retrieval import (
    RECALL_KS,
    knn_classify,
    prepare_features,
    recall_from_neighbours,
    top_k_accuracy,
    top_k_neighbours,
)


def classifier_protocol(job: Job, result: dict, features: dict) -> None:
    """finetune / linear: train, then test the classifier on the test split (and swapped)."""
    model, report = build_model(job)
    result["checkpoint"] = checkpoint_summary(job, report)
    result["epochs_done"] = train_classifier(job, model)
    labels = torch.as_tensor(job.reader.labels(job.test_ids))
    test = infer(job, model, testing_clips(job, job.test_ids), logits=True, stage="test")
    result["metrics"] = classification_metrics(test["logits"], labels)
    predictions = test["logits"].mean(dim=1).argmax(dim=1)
    result["confusion"] = confusion_matrix(predictions, labels, job.num_classes)
    features["test"] = test["features"]
    if job.settings.bg_swap:
        dataset, partners = swapped_dataset(job)
        swapped = infer(job, model, dataset, logits=True, stage="test (bg swap)")
        metrics = classification_metrics(swapped["logits"], labels)
        metrics["partner_top1"] = partner_share(swapped["logits"].mean(dim=1).argmax(dim=1), labels, partners)
        result["bg_swap"] = with_gap(result["metrics"], metrics)
        features["test_bgswap"] = swapped["features"]
    if job.settings.save_features:
        features["train"] = infer(job, model, testing_clips(job, job.train_ids), logits=False, stage="train features")["features"]


def feature_protocol(job: Job, result: dict, features: dict) -> None:
    """retrieval / knn: frozen features of the train (gallery) and test (query) videos."""
    s = job.settings
    model, report = build_model(job)
    result["checkpoint"] = checkpoint_summary(job, report)
    gallery = infer(job, model, testing_clips(job, job.train_ids), logits=False, stage="train features")["features"]
    queries = infer(job, model, testing_clips(job, job.test_ids), logits=False, stage="test features")["features"]
    features.update(train=gallery, test=queries)
    gallery_labels = torch.as_tensor(job.reader.labels(job.train_ids))
    query_labels = torch.as_tensor(job.reader.labels(job.test_ids))

    def score(query_features: Tensor) -> tuple[dict[str, float], Tensor | None, tuple[Tensor, Tensor] | None]:
        if s.protocol == "retrieval":
            found = top_k_neighbours(prepare_features(query_features), prepare_features(gallery), max(RECALL_KS))
            return recall_from_neighbours(gallery_labels[found[1]], query_labels, RECALL_KS), None, found
        scores = knn_classify(
            query_features, gallery, gallery_labels, job.num_classes, k=s.knn_k, temperature=s.knn_temperature
        )
        accuracy = top_k_accuracy(scores, query_labels, TOP_KS)
        return {"top1": accuracy[1], "top5": accuracy[5]}, scores.argmax(dim=1), None

    result["metrics"], predictions, found = score(queries)
    if predictions is not None:
        result["confusion"] = confusion_matrix(predictions, query_labels, job.num_classes)
    if found is not None:
        result["neighbours"] = found
    if s.bg_swap:
        dataset, partners = swapped_dataset(job)
        swapped_features = infer(job, model, dataset, logits=False, stage="test features (bg swap)")["features"]
        features["test_bgswap"] = swapped_features
        metrics, swapped_predictions, _ = score(swapped_features)
        if swapped_predictions is not None:
            metrics["partner_top1"] = partner_share(swapped_predictions, query_labels, partners)
        result["bg_swap"] = with_gap(result["metrics"], metrics)
