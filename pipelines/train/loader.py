"""What pretraining trains on: the cache's videos that fit the run (checked at start, one
line per problem) and the loader that serves their clip pairs, each epoch's draw depending
only on (seed, epoch, index) so that a resumed run sees what the uninterrupted one saw."""

from __future__ import annotations

import torch

from pipelines.data.cache import CacheError
from pipelines.data.clips import ClipDataset, clip_span
from pipelines.train import distributed
from pipelines.train.devices import pin_memory
from pipelines.train.settings import PretrainSettings

# Warn when the queue holds more than this many keys per training video: the paper's
# Kinetics queue (65536) on a small set is mostly stale keys of the same few videos.
QUEUE_KEYS_PER_VIDEO = 10
# Below this many videos the demo's recipe fits; above it, the paper's UCF101 one.
SMALL_DATASET = 1000
LOADER_PREFETCH = 4  # batches each loader worker prepares ahead


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` from a DistributedSampler, so persistent loader workers draw
    each epoch's clips without being told the epoch (``PairDataset`` takes such pairs)."""

    def __init__(self, sampler: torch.utils.data.DistributedSampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class PairDataset(ClipDataset):
    """``ClipDataset`` in pretrain mode, indexed by the ``(epoch, index)`` pairs of ``EpochSampler``."""

    def __getitem__(self, item: tuple[int, int]) -> dict:
        epoch, index = item
        return self.sample(index, epoch=epoch)


def check_cache_fits(reader, settings: PretrainSettings, *, world: int) -> tuple[list[str], list[str]]:
    """The videos this run trains on, and those of them shorter than one clip's span.

    A short video is kept: its clips repeat its last frame (``pipelines.data.clips``), as the
    field's samplers loop or repeat frames, and its one mask window was padded the same way
    at preprocessing. Raises CacheError when the cache cannot serve the run at all: crop
    larger than the stored frames, missing soft masks (FAME), missing source videos (a
    ``--no-frames`` cache), fewer videos than one batch.
    """
    ids = reader.split(settings.split, settings.fold)
    if not ids:
        raise CacheError(f"{reader.path}: split {settings.split!r} (fold {settings.fold}) has no finished video")
    infos = {vid: reader.info(vid) for vid in ids}
    span = clip_span(settings.clip_len, settings.stride)
    fits = list(ids)  # every cached video has at least one frame
    short = [vid for vid in fits if infos[vid]["num_frames"] < span]
    short_side = min(min(infos[vid]["height"], infos[vid]["width"]) for vid in fits)
    if settings.crop > short_side:
        raise CacheError(
            f"{reader.path}: --crop {settings.crop} is larger than the cached frames (short side {short_side}); "
            f"use --crop {short_side} or less, or preprocess with --short-side {settings.crop} or more"
        )
    if settings.fame:
        missing = [vid for vid in fits if not reader.has_masks(vid)]
        if missing:
            raise CacheError(
                f"{reader.path}: {len(missing)} video(s) have no soft masks (e.g. {missing[0]}); "
                "rebuild the cache with `fame preprocess`, or train with --no-fame"
            )
    if not reader.has_frames:
        first = reader.source / infos[fits[0]]["path"]
        if not first.is_file():
            raise CacheError(
                f"{reader.path}: a --no-frames cache reads its videos from {reader.source}, but {first} is "
                "missing; pass --source DATASET_ROOT"
            )
    per_process = settings.batch_size // world
    if len(fits) // world < per_process:
        raise CacheError(
            f"{reader.path}: {len(fits)} usable videos cannot fill one batch of {settings.batch_size}"
            + (f" on {world} processes" if world > 1 else "")
            + "; lower --batch-size"
        )
    return fits, short


def queue_warning(settings: PretrainSettings, videos: int) -> str | None:
    """One line when the queue holds many times more keys than the data has videos (None
    otherwise), naming the recipe that fits. Issue 12 reports the defaults (queue 65536, key
    momentum 0.999) learning nothing in 400 steps on 144 videos (contrastive top-1 0.4%)."""
    if settings.queue <= QUEUE_KEYS_PER_VIDEO * videos:
        return None
    fits = ("--config synth_small (queue 64, key momentum 0.99), or --queue below the video count with "
            "--momentum 0.99" if videos < SMALL_DATASET else "--config ucf101_r2plus1d_112 (queue 2048)")
    return (f"--queue {settings.queue} holds {settings.queue // max(videos, 1)}x more keys than the {videos} training "
            f"videos: most negatives are stale keys of the same videos and MoCo may learn nothing; use {fits}")


def build_loader(settings: PretrainSettings, video_ids: list[str], device: torch.device, per_process: int):
    """The pretraining loader (persistent workers, pinned memory on CUDA) and its sampler."""
    dataset = PairDataset(
        settings.cache, video_ids, clip_len=settings.clip_len, stride=settings.stride, crop=settings.crop,
        mode="pretrain", with_masks=settings.fame, seed=settings.seed, source=settings.source,
    )
    sampler = EpochSampler(torch.utils.data.DistributedSampler(
        dataset, num_replicas=distributed.world_size(), rank=distributed.rank(), shuffle=True,
        seed=settings.seed, drop_last=True,
    ))
    workers = settings.workers
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_process, sampler=sampler, drop_last=True, num_workers=workers,
        pin_memory=pin_memory(device), persistent_workers=workers > 0,
        # not fork: the training process may already run zarr's and torch's threads
        multiprocessing_context="forkserver" if workers > 0 else None,
        prefetch_factor=LOADER_PREFETCH if workers > 0 else None,
    )
    return sampler, loader
