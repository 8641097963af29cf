"""Loader throughput: FAME pairs from the cache vs the paper's on-the-fly pipeline.

Measured side by side in one run, on the same videos, with the same worker count, batch
and crop code; each number is query/key pairs per second after all CPU-side work:

- cache + FAME: ``ClipDataset`` (two clips and the query's soft map from the Zarr cache,
  cropped), then the online FAME step (binarise the cropped map, merge) per batch in the
  main process, on the CPU (training does this step on the training device);
- cache + masks: the same loader, the FAME step left to the training device (not timed):
  what a GPU run asks of the CPU;
- cache, no FAME: the loader without masks and without the merge (``--no-fame``);
- on the fly (the paper's code): decode the two clips of each video from the source file
  with decord at its native size, crop, then compute the masks per batch with
  ``pipelines.fame.fame_augment`` (steps 1-6) on the CPU.

The FAME step alone (binarise + merge of one batch, in the main process with the other
pipelines idle) is timed too.

Run: python benchmarks/bench_loader.py [--cache CACHE.zarr] [--workers 2] [--batches 10]
Without --cache it makes a small synthetic dataset and its cache in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from pipelines.data.cache import open_cache
from pipelines.data.clips import ClipDataset, crop_resize_clip, random_resized_crop_box, sample_clip_indices
from pipelines.data.video import read_clip
from pipelines.fame import fame_augment, fame_merge


class OnTheFlyPairs(Dataset):
    """The paper's loader: two random clips decoded from the source video, each randomly cropped."""

    def __init__(self, cache_path: str, video_ids: list[str], *, clip_len: int, stride: int, crop: int):
        self.cache_path, self.video_ids = cache_path, video_ids
        self.clip_len, self.stride, self.crop = clip_len, stride, crop
        self._reader = None

    def __getstate__(self):
        return {**self.__dict__, "_reader": None}

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, index: int) -> dict:
        if self._reader is None:
            self._reader = open_cache(self.cache_path)  # only for the video list and paths
        info = self._reader.info(self.video_ids[index])
        rng = np.random.default_rng()
        first = sample_clip_indices(info["num_frames"], clip_len=self.clip_len, stride=self.stride, rng=rng)
        second = sample_clip_indices(info["num_frames"], clip_len=self.clip_len, stride=self.stride, rng=rng,
                                     avoid_start=int(first[0]))
        frames = read_clip(self._reader.source / info["path"], np.concatenate([first, second]),
                           size=(info["source_height"], info["source_width"]))  # native size, opened once
        views = []
        for clip in (frames[: self.clip_len], frames[self.clip_len :]):
            box = random_resized_crop_box(clip.shape[1], clip.shape[2], rng=rng)
            views.append(crop_resize_clip(clip, box, self.crop, flip=bool(rng.random() < 0.5)))
        return {"query": views[0], "key": views[1]}


def fame_from_cache(batch: dict, generator: torch.Generator) -> None:
    fame_merge(batch["query"], batch["mask"], beta=0.5, generator=generator)


def fame_online(batch: dict, generator: torch.Generator) -> None:
    fame_augment(batch["query"].float() / 255, beta=0.5, generator=generator)


def no_fame(batch: dict, generator: torch.Generator) -> None:
    pass


def pairs_per_second(dataset: Dataset, step, *, batch_size: int, workers: int, batches: int) -> float:
    """Throughput over ``batches`` batches after one warm-up batch (worker start-up excluded)."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=(batches + 1 + 2 * workers) * batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        multiprocessing_context="forkserver" if workers else None, drop_last=True)
    generator = torch.Generator().manual_seed(0)
    iterator = iter(loader)
    step(next(iterator), generator)
    started = time.perf_counter()
    for _ in range(batches):
        step(next(iterator), generator)
    return batches * batch_size / (time.perf_counter() - started)


def make_demo_cache(folder: Path, videos_per_class: int, *, height: int = 240, width: int = 320, frames: int = 150,
                    workers: int = 2) -> Path:
    """A synthetic dataset shaped like UCF101 (MPEG-4 AVI, 320x240, ~6 s at 25 fps) and its
    cache at the default short side 128."""
    from pipelines.data.synth import SynthSettings, write_dataset
    from pipelines.masks.preprocess import PreprocessSettings, run_preprocess

    write_dataset(SynthSettings(out_dir=str(folder / "synth"), classes=5, videos_per_class=videos_per_class,
                                height=height, width=width, frames=frames))
    cache = folder / "synth.zarr"
    run_preprocess(PreprocessSettings(source=str(folder / "synth" / "UCF-101"), cache=str(cache), workers=workers))
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="a cache made with frames (default: a small synthetic one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30, help="timed batches per pipeline and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the pipelines this many times")
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--videos-per-class", type=int, default=4, help="synthetic dataset: videos per class (of 5)")
    parser.add_argument("--frames", type=int, default=150, help="synthetic dataset: frames per video")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        cache = args.cache or make_demo_cache(Path(temporary), args.videos_per_class, frames=args.frames,
                                              workers=max(1, args.workers))
        reader = open_cache(cache)
        ids = reader.video_ids
        shape = dict(clip_len=args.clip_len, stride=args.stride, crop=args.crop)
        with_masks = ClipDataset(cache, ids, mode="pretrain", with_masks=True, **shape)
        pipelines = {
            "cache + FAME step on the CPU (ours, CPU training)": (with_masks, fame_from_cache),
            "cache + masks, FAME step on the device (ours, GPU training)": (with_masks, no_fame),
            "cache, --no-fame": (ClipDataset(cache, ids, mode="pretrain", with_masks=False, **shape), no_fame),
            "on the fly + FAME (paper's code, CPU)": (OnTheFlyPairs(str(cache), ids, **shape), fame_online),
        }
        rates: dict[str, list[float]] = {name: [] for name in pipelines}
        for _ in range(args.rounds):
            for name, (dataset, step) in pipelines.items():
                rates[name].append(pairs_per_second(dataset, step, batch_size=args.batch_size, workers=args.workers,
                                                    batches=args.batches))
        info = reader.info(ids[0])
        print(f"{len(ids)} videos, cache frames {info['height']}x{info['width']}, source "
              f"{info['source_height']}x{info['source_width']}; clips {args.clip_len}x{args.stride} cropped to "
              f"{args.crop}; batch {args.batch_size}; {args.workers} workers; {torch.get_num_threads()} torch threads; "
              f"best of {args.rounds} rounds of {args.batches} batches\n")
        best = {name: max(values) for name, values in rates.items()}
        reference = best["on the fly + FAME (paper's code, CPU)"]
        plain = best["cache, --no-fame"]
        print("| pipeline | pairs/s | vs on the fly | vs --no-fame |")
        print("| --- | ---: | ---: | ---: |")
        for name, rate in best.items():
            print(f"| {name} | {rate:.1f} | {rate / reference:.1f}x | {100 * (plain / rate - 1):+.0f}% time |")
        step_ms = fame_step_ms(with_masks, args.batch_size)
        print(f"\nFAME step alone (binarise + merge of {args.batch_size} query clips, main process, CPU): "
              f"{step_ms:.1f} ms per batch = {step_ms / args.batch_size:.2f} ms per pair; the --no-fame loader "
              f"delivers a batch every {1000 * args.batch_size / plain:.1f} ms")


def fame_step_ms(dataset: Dataset, batch_size: int, repeats: int = 20) -> float:
    """Median time of the online FAME step on one real batch."""
    batch = next(iter(DataLoader(dataset, batch_size=batch_size)))
    generator = torch.Generator().manual_seed(0)
    fame_from_cache(batch, generator)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fame_from_cache(batch, generator)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


if __name__ == "__main__":
    main()
