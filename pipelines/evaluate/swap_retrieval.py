"""``fame evaluate --protocol swap-retrieval``: an instance-level background-bias score, and
the frozen-clip (motion-reliance) score beside it.

Class-level scores need many classes and test videos to resolve background bias; this one
asks each test video directly. The **queries** are the test videos' clips as they are. The
**gallery** holds, for every test video i, its foreground moved onto the background of test
video ``partners[i]`` (the seeded derangement of ``--bg-swap``, ``pipelines.evaluate.bg_swap``):
FAME's merge (step 6) at test time, onto a clean plate of the partner (its own subject
removed, ``pipelines.masks.clean_plates``), so that nothing of the partner's subject is left there. So every query q has exactly two special gallery items:

- item q carries q's own foreground (on another video's background): the right answer for
  a model that recognises what moves;
- item ``partners⁻¹[q]`` carries q's own background (with another video's foreground): the
  answer of a model that took the background shortcut.

Metrics, in percent (``chance_levels`` gives what a random ranking scores):

- ``same_foreground@1`` / ``@5``: the query's own-foreground item is among its 1 / 5 most
  similar gallery items;
- ``same_background@1``: the most similar item is the one with the query's background.

The masks ``M`` come from the cache (the soft map of each clip's window through the centre
crop, top ``beta``, as ``--bg-swap``), or, with ``ground_truth``, from the true foreground
(``pipelines.masks.ground_truth``: the union of the true masks over the clip's frames), so that on
synthetic data the score does not depend on the quality of the masks.

**Frozen clips.** The same queries with motion taken away: every frame of a clip replaced by
its middle frame (``freeze_clips``), against the same (moving) gallery. An encoder that does
not use motion at all scores about the same on frozen queries as on moving ones; one that
relies on motion loses ``same_foreground`` when the motion is gone. The JSON reports the
frozen metrics and ``drop = normal - frozen``. ``docs/evaluation.md`` relates this to StillMix's
SCUBA/SCUFO benchmarks and to Mimetics.

Features are those of the retrieval protocol: each clip's pooled backbone feature,
L2-normalised, averaged over the video's clips; queries and gallery each centred with their
own mean and L2-normalised; cosine similarity.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from pipelines.evaluate.bg_swap import SwappedClipDataset
from pipelines.evaluate.inference import infer, swapped_dataset, testing_clips
from pipelines.evaluate.job import build_model, checkpoint_summary
from pipelines.evaluate.retrieval import prepare_features, top_k_neighbours
from pipelines.evaluate.settings import EvaluateError

METRICS = ("same_foreground@1", "same_foreground@5", "same_background@1")
NEIGHBOURS_LISTED = 10  # gallery items per query in the neighbours file
FOREGROUND_KS = (1, 5)


# ---------------------------------------------------------------------------------------------
# The metrics
# ---------------------------------------------------------------------------------------------


def background_owners(partners) -> np.ndarray:
    """``owner[q]``: the gallery item that carries query q's background (``partners[owner[q]] == q``)."""
    partners = np.asarray(partners)
    owner = np.empty_like(partners)
    owner[partners] = np.arange(len(partners))
    return owner


def chance_levels(gallery_size: int) -> dict[str, float]:
    """What a random ranking of a gallery of ``gallery_size`` items scores, in percent."""
    n = max(gallery_size, 1)
    return {
        "same_foreground@1": 100 / n,
        "same_foreground@5": 100 * min(5, n) / n,
        "same_background@1": 100 / n,
    }


def swap_retrieval_metrics(neighbours: Tensor, partners) -> dict[str, float]:
    """The three scores (percent) from each query's gallery items, most similar first
    (``neighbours`` Q, K long, K >= 1; a k above K counts the K listed)."""
    queries = torch.arange(len(neighbours))[:, None]  # Q, 1
    owner = torch.as_tensor(background_owners(partners))[:, None]  # Q, 1
    own_foreground = neighbours == queries  # Q, K
    metrics = {f"same_foreground@{k}": float(own_foreground[:, :k].any(dim=1).float().mean() * 100)
               for k in FOREGROUND_KS}
    metrics["same_background@1"] = float((neighbours[:, :1] == owner).any(dim=1).float().mean() * 100)
    return {name: metrics[name] for name in METRICS}


def rank_gallery(queries: Tensor, gallery: Tensor, k: int = NEIGHBOURS_LISTED) -> tuple[Tensor, Tensor]:
    """(similarities, indices), Q, k: each query's most similar gallery items, both sets
    centred with their own mean and L2-normalised, as the retrieval protocol does."""
    return top_k_neighbours(prepare_features(queries), prepare_features(gallery), k)


# ---------------------------------------------------------------------------------------------
# Frozen clips
# ---------------------------------------------------------------------------------------------


def freeze_clips(clips: Tensor) -> Tensor:
    """Motion taken away: every frame replaced by the clip's middle frame (index ``T // 2``).
    ``clips`` ..., C, T, H, W -> the same shape and dtype (a new tensor)."""
    middle = clips.shape[-3] // 2
    return clips[..., middle : middle + 1, :, :].expand_as(clips).clone()


class FrozenClipDataset(Dataset):
    """Another test dataset's items with every clip frozen (``freeze_clips``)."""

    def __init__(self, clips: Dataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        item = self.clips[index]
        return {**item, "clips": freeze_clips(item["clips"])}


# ---------------------------------------------------------------------------------------------
# The protocol (called by pipelines.evaluate.run)
# ---------------------------------------------------------------------------------------------


def swap_scores(queries_set: Dataset, gallery_set: Dataset, partners, features) -> dict:
    """The scores of one encoder, given as ``features(dataset, stage) -> V, D`` (one row per
    video, in dataset order): queries (normal and frozen) against the swap gallery.

    Returns ``{"metrics", "chance", "frozen": {"metrics", "drop"}, "features", "ranked":
    (similarities, indices), "frozen_ranked"}``.
    """
    queries = features(queries_set, "test features")
    gallery = features(gallery_set, "swap gallery features")
    frozen = features(FrozenClipDataset(queries_set), "frozen test features")
    ranked, frozen_ranked = rank_gallery(queries, gallery), rank_gallery(frozen, gallery)
    metrics = swap_retrieval_metrics(ranked[1], partners)
    frozen_metrics = swap_retrieval_metrics(frozen_ranked[1], partners)
    return {
        "metrics": metrics,
        "chance": chance_levels(len(partners)),
        "frozen": {"metrics": frozen_metrics, "drop": {k: metrics[k] - frozen_metrics[k] for k in METRICS}},
        "features": {"test": queries, "test_swapgallery": gallery, "test_frozen": frozen},
        "ranked": ranked, "frozen_ranked": frozen_ranked,
    }


def swap_sets(job) -> tuple[Dataset, SwappedClipDataset, np.ndarray]:
    """(queries, gallery, partners) of ``job``'s test videos."""
    if len(job.test_ids) < 2:
        raise EvaluateError(f"{job.reader.path}: swap-retrieval needs at least 2 test videos, "
                            f"the split has {len(job.test_ids)}")
    gallery_set, partners = swapped_dataset(job)  # each test foreground on its partner's clean background
    return testing_clips(job, job.test_ids), gallery_set, partners


def score_swap_retrieval(job, model: nn.Module) -> dict:
    """``swap_scores`` of ``model``'s features on ``job``'s test videos, with ``"swap"`` (how the
    gallery was made) and ``"partners"``."""
    queries_set, gallery_set, partners = swap_sets(job)
    scores = swap_scores(queries_set, gallery_set, partners,
                         lambda dataset, stage: infer(job, model, dataset, logits=False, stage=stage)["features"])
    s = job.settings
    scores["swap"] = {"masks": "ground-truth" if s.ground_truth else "cache",
                      "beta": None if s.ground_truth else s.beta,
                      "backgrounds": s.backgrounds, "seed": s.swap_seed, "gallery": len(partners)}
    scores["partners"] = partners
    return scores


def swap_retrieval_protocol(job, result: dict, features: dict) -> None:
    """Fill ``result`` (the evaluate JSON) and ``features`` for ``--protocol swap-retrieval``."""
    model, report = build_model(job)
    result["checkpoint"] = checkpoint_summary(job, report)
    scores = score_swap_retrieval(job, model)
    for key in ("metrics", "chance", "frozen", "swap"):
        result[key] = scores[key]
    features.update(scores["features"])
    result["writers"] = {
        "neighbours.jsonl": lambda path: write_swap_neighbours(path, job, scores["partners"], scores["ranked"],
                                                               scores["frozen_ranked"]),
    }


# ---------------------------------------------------------------------------------------------
# The neighbours file
# ---------------------------------------------------------------------------------------------


def _neighbour_rows(similarities: list[float], indices: list[int], query: int, owner: int, partners,
                    video) -> list[dict]:
    return [
        {"rank": rank, "gallery_item": j, "foreground": video(j), "background": video(int(partners[j])),
         "similarity": round(s, 5), "same_foreground": j == query, "same_background": j == owner}
        for rank, (s, j) in enumerate(zip(similarities, indices), start=1)
    ]


def write_swap_neighbours(path: Path, job, partners, ranked: tuple[Tensor, Tensor],
                          frozen_ranked: tuple[Tensor, Tensor]) -> Path:
    """One JSON line per query: the query, the gallery items that count for it (its own
    foreground, its own background), its most similar gallery items (each with the videos
    its foreground and background come from, and whether it is one of the two), what it
    scored, and the same for its frozen clips."""
    reader, owner = job.reader, background_owners(partners)

    def video(index: int) -> dict:
        info = reader.info(job.test_ids[index])
        return {"video_id": job.test_ids[index], "path": info["path"], "class": info.get("class_name", info["label"])}

    with open(path, "w", encoding="utf-8") as handle:
        for q in range(len(job.test_ids)):
            line = {"query": video(q), "own_foreground_item": q, "own_background_item": int(owner[q])}
            for name, (sims, idx) in (("neighbours", ranked), ("frozen_neighbours", frozen_ranked)):
                rows = _neighbour_rows(sims[q].tolist(), idx[q].tolist(), q, int(owner[q]), partners, video)
                line[name] = rows
                line["counts" if name == "neighbours" else "frozen_counts"] = {
                    "same_foreground@1": rows[0]["same_foreground"],
                    "same_foreground@5": any(r["same_foreground"] for r in rows[:5]),
                    "same_background@1": rows[0]["same_background"],
                }
            handle.write(json.dumps(line) + "\n")
    return path
