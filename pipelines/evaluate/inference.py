"""Every video's test clips through a model, sharded over the processes and gathered in
video order (each video counted exactly once), and the test clip sets: the uniform clips of
each video, and the same videos with their backgrounds swapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from pipelines.data.clips import UINT8_MAX, ClipDataset
from pipelines.evaluate.bg_swap import SwappedClipDataset, swap_partners
from pipelines.evaluate.job import Job
from pipelines.evaluate.retrieval import average_clip_features
from pipelines.evaluate.settings import EvaluateError
from pipelines.masks.ground_truth import check_ground_truth, synth_ground_truth
from pipelines.train import distributed
from pipelines.train.augment import normalise
from pipelines.train.devices import autocast_context, channels_last_3d_ok, pin_memory


def prepare_clips(clips: Tensor, device: torch.device) -> Tensor:
    """uint8 ``..., 3, T, S, S`` from a loader -> normalised float clips on ``device``."""
    clips = clips.to(device, non_blocking=True).float().div_(UINT8_MAX)
    clips = normalise(clips)
    return clips.contiguous(memory_format=torch.channels_last_3d) if channels_last_3d_ok(device) else clips


@torch.no_grad()
def infer(job: Job, model: nn.Module, dataset: Dataset, *, logits: bool, stage: str) -> dict[str, Tensor | None]:
    """Every video's test clips through ``model`` (eval mode): ``features`` V, D (its clips'
    pooled features, each L2-normalised, averaged) and, with ``logits``, ``logits`` V,
    clips, classes. Each process takes its shard; all get the whole, in dataset order."""
    settings = job.settings
    model.eval()
    mine = distributed.shard(len(dataset))
    loader = DataLoader(
        Subset(dataset, mine), batch_size=settings.test_batch_size, shuffle=False,
        num_workers=settings.workers, pin_memory=pin_memory(job.device),
    )
    feature_rows, logit_rows, index_rows = [], [], []
    for step, batch in enumerate(loader, start=1):
        videos, clips_per_video = batch["clips"].shape[:2]
        clips = prepare_clips(batch["clips"].flatten(0, 1), job.device)  # B*N, 3, T, S, S
        with autocast_context(job.device):
            features = model.forward_features(clips)  # B*N, D
            scores = model.fc(features) if logits else None  # B*N, C
        feature_rows.append(average_clip_features(features.float().view(videos, clips_per_video, -1)).cpu())
        if logits:
            logit_rows.append(scores.float().view(videos, clips_per_video, -1).cpu())
        index_rows.append(batch["index"])
        if distributed.is_main_process():
            job.progress(stage, min(step * settings.test_batch_size * distributed.world_size(), len(dataset)), len(dataset))
    feature_dim, num_classes = model.fc.in_features, model.fc.out_features
    local_features = torch.cat(feature_rows) if feature_rows else torch.zeros(0, feature_dim)
    local_index = torch.cat(index_rows) if index_rows else torch.zeros(0, dtype=torch.long)
    out = {"features": distributed.gather_in_order(local_features, local_index, len(dataset)), "logits": None}
    if logits:
        local_logits = torch.cat(logit_rows) if logit_rows else torch.zeros(0, settings.clips_per_video, num_classes)
        out["logits"] = distributed.gather_in_order(local_logits, local_index, len(dataset))
    return out


def testing_clips(job: Job, video_ids: list[str]) -> ClipDataset:
    """The test clips of ``video_ids``: ``clips_per_video`` uniform clips, centre crop."""
    s = job.settings
    return ClipDataset(
        job.reader.path, video_ids, clip_len=s.clip_len, stride=s.stride, crop=s.crop, mode="test",
        num_clips=s.clips_per_video, with_masks=False, seed=s.seed, source=job.reader.source,
    )


def ground_truth_folder(job) -> str:
    """The ground-truth folder of ``--ground-truth``: the one given, or ``fame synth``'s
    beside the dataset root. Raises EvaluateError (one line) when there is none, GroundTruthError
    (one line) when it lacks (or cannot read) the masks of a test video."""
    folder = job.settings.ground_truth_dir or synth_ground_truth(job.reader.dataset.get("root"))
    if folder is None or not Path(folder).is_dir():
        raise EvaluateError(
            f"{job.reader.path}: --ground-truth found no ground-truth folder (fame synth writes one beside the "
            "dataset root); pass --ground-truth-dir FOLDER (docs/visualize.md gives its format) or leave "
            "--ground-truth out to use the cache's masks"
        )
    check_ground_truth(folder, [job.reader.info(vid)["path"] for vid in job.test_ids])
    return str(folder)


def swapped_dataset(job: Job) -> tuple[SwappedClipDataset, np.ndarray]:
    s = job.settings
    partners = swap_partners(len(job.test_ids), seed=s.swap_seed)
    dataset = SwappedClipDataset(
        job.reader.path, job.test_ids, partners, clip_len=s.clip_len, stride=s.stride, crop=s.crop,
        num_clips=s.clips_per_video, beta=s.beta, source=job.reader.source,
        ground_truth=ground_truth_folder(job) if s.ground_truth else None, backgrounds=s.backgrounds,
    )
    return dataset, partners
