"""What ``fame evaluate`` writes (``docs/evaluation.md``): the metrics JSON and, beside it, the
confusion matrix and per-class accuracy (CSV), the retrieval neighbours (JSON lines) and
the per-video features (``--save-features``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pipelines.atomic_files import atomic_write_text
from pipelines.evaluate.job import Job

# The per-video feature sets of the test videos that --save-features may hold
TEST_SETS = ("test", "test_bgswap", "test_swapgallery", "test_frozen")


def side_file(output: Path, name: str) -> Path:
    """``metrics.json`` -> ``metrics_<name>``: the files written beside the metrics."""
    return output.with_name(f"{output.stem}_{name}")


def _rounded(metrics: dict[str, float]) -> dict[str, float | None]:
    """Percentages to 4 decimals; an undefined one (NaN) becomes null, valid JSON."""
    return {k: None if np.isnan(v) else round(v, 4) for k, v in metrics.items()}


def json_ready(job: Job, result: dict) -> dict:
    """The result without its tensors (they go to the side files)."""
    result = {k: v for k, v in result.items() if k not in ("confusion", "neighbours", "writers")}
    result["metrics"] = _rounded(result["metrics"])
    if "chance" in result:
        result["chance"] = _rounded(result["chance"])
    if "frozen" in result:
        result["frozen"] = {name: _rounded(values) for name, values in result["frozen"].items()}
    if "bg_swap" in result:
        swap = result["bg_swap"]
        result["bg_swap"] = {
            "metrics": _rounded(swap["metrics"]),
            "gap": _rounded(swap["gap"]),
            "beta": job.settings.beta,
            "backgrounds": job.settings.backgrounds,
            "seed": job.settings.swap_seed,
        }
    return result


def write_outputs(job: Job, result: dict, features: dict[str, Tensor]) -> dict:
    """The metrics JSON and, beside it: per-class accuracy and the confusion matrix (CSV),
    retrieval neighbours (JSON lines), the features (``--save-features``)."""
    output, classes = job.output, job.reader.classes
    output.parent.mkdir(parents=True, exist_ok=True)
    files = {}
    confusion = result.get("confusion")
    if confusion is not None:
        files["confusion"] = str(_write_confusion(side_file(output, "confusion.csv"), confusion, classes))
        files["per_class"] = str(_write_per_class(side_file(output, "per_class.csv"), confusion, classes))
    if "neighbours" in result:
        files["neighbours"] = str(_write_neighbours(side_file(output, "neighbours.jsonl"), job, *result["neighbours"]))
    for name, write in result.get("writers", {}).items():  # a protocol's own side files
        files[name.split(".")[0]] = str(write(side_file(output, name)))
    if job.settings.save_features:
        files["features"] = str(save_features(Path(job.settings.save_features), job, features))
    result = json_ready(job, result)
    result["files"] = files
    atomic_write_text(output, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def _write_confusion(path: Path, confusion: Tensor, classes: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, confusion.tolist()):
            writer.writerow([name, *row])
    return path


def _write_per_class(path: Path, confusion: Tensor, classes: list[str]) -> Path:
    videos = confusion.sum(dim=1)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "videos", "top1"])
        for name, correct, count in zip(classes, confusion.diagonal().tolist(), videos.tolist()):
            writer.writerow([name, count, f"{100 * correct / count:.2f}" if count else ""])
    return path


def _write_neighbours(path: Path, job: Job, similarities: Tensor, indices: Tensor) -> Path:
    """One line per test video: its id, path, class and its nearest train videos."""
    reader = job.reader

    def entry(video_id: str) -> dict:
        info = reader.info(video_id)
        return {"video_id": video_id, "path": info["path"], "class": info.get("class_name", info["label"])}

    gallery = [entry(v) for v in job.train_ids]
    with open(path, "w", encoding="utf-8") as handle:
        for video_id, row_sims, row_idx in zip(job.test_ids, similarities.tolist(), indices.tolist()):
            neighbours = [{**gallery[j], "similarity": round(s, 5)} for s, j in zip(row_sims, row_idx)]
            handle.write(json.dumps({"query": entry(video_id), "neighbours": neighbours}) + "\n")
    return path


def save_features(path: Path, job: Job, features: dict[str, Tensor]) -> Path:
    """``--save-features``: arrays ``features`` (N, D float32, each video's clip features
    averaged, not centred), ``labels`` (N), ``video_ids`` (N) and ``splits`` (N: "train",
    "test", "test_bgswap" for the swapped copies of the test videos; swap-retrieval:
    "test_swapgallery" for its gallery, "test_frozen" for the frozen test clips)."""
    ids_of = {"train": job.train_ids, **{name: job.test_ids for name in TEST_SETS}}
    parts = [(name, features[name]) for name in ("train", *TEST_SETS) if name in features]
    video_ids = [v for name, _ in parts for v in ids_of[name]]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        features=torch.cat([f for _, f in parts]).numpy().astype(np.float32),
        labels=job.reader.labels(video_ids),
        video_ids=np.array(video_ids),
        splits=np.array([name for name, f in parts for _ in range(len(f))]),
    )
    return path
