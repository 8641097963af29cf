"""Mask methods side by side against true foreground masks: quality and cost per video.

For every video of each set it decodes the frames as ``fame preprocess`` does (short side
128), computes the soft maps of every mask window with each method of ``--masks``
(``pipelines.masks.methods``; ``paper`` is the paper's map, ``frame-difference`` and
``centre`` the simple baselines), and scores each window's map against the union of the
true foreground over the window's frames (the clip's mask is one map for all its frames):

- ROC-AUC of the soft map (0.5 = chance);
- the share of the true foreground kept by the top half of the map (beta 0.5, the paper's);
- the IoU of the binary mask with the truth at beta 0.5 and at ``--beta auto`` (Otsu, per window).

A video's score is the mean over its windows; the tables give the mean over videos and,
with ``--per-video``, each video. With ``--clip-every N`` a video is scored instead as
pretraining reads the cache: a 16x2 clip starting every N frames, each scored with the map of
its nearest window (``window_maps.window_for_clip``) against the union of the true
foreground over the clip's own frames. The simple baselines (``MaskMethod.baseline``) are
then computed on each clip's own frames (windows every N frames: each clip has its own), as
a user would compute a one-line baseline, while the other methods keep the cache's windows
(every ``MaskMethod.hop`` frames, as ``fame preprocess`` makes them). The tables then give
two means of each score: over videos (each video the mean of its clips), and over all clips
of all videos pooled, which weighs a long video by its length (issue 19's tables are this
pooled mean). The cost is the time of each
method per video on one torch thread, measured interleaved with the others on the same
decoded frames, beside the time decord took to decode the video.

Run:
  python benchmarks/bench_masks.py --videos ../shared/data/davis-train/videos \\
      --ground-truth ../shared/data/davis-train/ground_truth [--synthetic 20] [--frames 64] [--per-video]
  python benchmarks/bench_masks.py --synthetic 20            # synthetic ground truth only

Real footage needs a ground-truth folder in the format of ``pipelines/masks/ground_truth.py``
(mirroring the videos' paths). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pipelines.data.clips import clip_span
from pipelines.data.synth import SynthSettings, load_ground_truth, write_dataset
from pipelines.data.video import read_video
from pipelines.fame import fitted_foreground_fraction, select_foreground
from pipelines.masks.ground_truth import clip_ground_truth, resize_nearest
from pipelines.masks.methods import METHODS, MaskParameters, compute_video_masks, get_method, with_hop
from pipelines.masks.quality import foreground_kept, mask_agreement, roc_auc
from pipelines.masks.window_maps import window_for_clip, window_starts
from pipelines.visualize.run import resize_map

SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
PARAMETERS = MaskParameters()


def real_videos(videos: Path, truth: Path):
    """(name, frames, truth T,H,W at frame size, decode seconds) of every video with ground truth."""
    for path in sorted(p for p in videos.rglob("*") if p.suffix.lower() in SUFFIXES):
        relative = str(path.relative_to(videos))
        started = time.perf_counter()
        frames, _ = read_video(path, short_side=128)
        seconds = time.perf_counter() - started
        masks = clip_ground_truth(truth, relative, np.arange(len(frames)), height=frames.shape[1], width=frames.shape[2])
        yield path.stem, frames, masks, seconds


def synthetic_videos(count: int, seed: int, frames: int):
    work = Path(tempfile.mkdtemp(prefix="fame-bench-masks-"))
    classes = 5
    write_dataset(SynthSettings(out_dir=str(work), classes=classes, videos_per_class=max(1, count // classes),
                                frames=frames, height=240, width=320, seed=seed))
    for path in sorted((work / "UCF-101").rglob("*.avi")):
        relative = str(path.relative_to(work / "UCF-101"))
        started = time.perf_counter()
        frames, _ = read_video(path, short_side=128)
        seconds = time.perf_counter() - started
        masks = resize_nearest(load_ground_truth(work, relative), frames.shape[1], frames.shape[2])
        yield path.stem, frames, masks, seconds


def scored_clips(starts: list[int], frames: int, clip_every: int | None) -> list[tuple[int, int]]:
    """(first frame, window index) of every clip scored: each window on its own frames, or a
    clip every ``clip_every`` frames with its nearest window."""
    window, stride = PARAMETERS.window, PARAMETERS.stride
    if clip_every is None:
        return [(start, g) for g, start in enumerate(starts)]
    span = clip_span(window, stride)
    return [(first, window_for_clip(starts, np.arange(first, first + span, stride), window=window, stride=stride))
            for first in range(0, frames - span + 1, clip_every)]


def score_windows(maps: np.ndarray, starts: list[int], truth: np.ndarray, clip_every: int | None = None) -> list[dict]:
    """Each measure of every window (or clip, see ``scored_clips``) with some true foreground
    and some true background: one dict per window or clip, [] when there is none."""
    window, stride = PARAMETERS.window, PARAMETERS.stride
    span = clip_span(window, stride)
    height, width = truth.shape[1:]
    rows = []
    for first, g in scored_clips(starts, len(truth), clip_every):
        union = truth[first : first + span : stride].any(axis=0)
        if not union.any() or union.all():
            continue
        soft = resize_map(maps[g].astype(np.float32) / 255, height, width)  # H, W
        as_batch = torch.from_numpy(soft)[None]
        half = select_foreground(as_batch, beta=0.5)[0].numpy()
        fitted = fitted_foreground_fraction(as_batch)
        auto = select_foreground(as_batch, beta=fitted)[0].numpy()
        rows.append({"auc": roc_auc(soft, union), "kept": foreground_kept(soft, union, beta=0.5),
                     "iou_half": mask_agreement(half, union), "iou_auto": mask_agreement(auto, union),
                     "beta_auto": float(fitted[0])})
    return rows


def method_parameters(method: str, clip_every: int | None) -> MaskParameters:
    """The cache's windows (the method's own hop, as ``fame preprocess`` makes them); for a
    baseline scored by clips, a window on each clip's own frames."""
    if clip_every is not None and get_method(method).baseline:
        return replace(PARAMETERS, hop=clip_every)
    return with_hop(PARAMETERS, method)


def measure(videos, methods: list[str], clip_every: int | None = None, repeats: int = 1) -> tuple[dict, dict, dict]:
    """Per method: {video: [scores of each window or clip]}, seconds per video (the least of
    ``repeats`` runs, the methods interleaved in each); and decode seconds per video."""
    scores = {m: {} for m in methods}
    seconds = {m: [] for m in methods}
    decode = []
    for name, frames, truth, decode_seconds in videos:
        decode.append(decode_seconds)
        least = {method: float("inf") for method in methods}
        for _ in range(repeats):
            for method in methods:  # interleaved: every method sees the same machine load
                started = time.perf_counter()
                maps, starts = compute_video_masks(frames, method, method_parameters(method, clip_every))
                least[method] = min(least[method], time.perf_counter() - started)
        for method in methods:
            seconds[method].append(least[method])
            maps, starts = compute_video_masks(frames, method, method_parameters(method, clip_every))
            scored = score_windows(maps, starts, truth, clip_every)
            if scored:
                scores[method][name] = scored
    return scores, seconds, {"decode": decode}


def mean_over_videos(per_video: dict, key: str) -> float:
    """The mean over videos of each video's mean over its windows or clips."""
    return float(np.mean([np.mean([row[key] for row in rows]) for rows in per_video.values()]))


def mean_over_clips(per_video: dict, key: str) -> float:
    """The mean over every window or clip of every video, pooled."""
    return float(np.mean([row[key] for rows in per_video.values() for row in rows]))


def print_tables(label: str, scores: dict, seconds: dict, decode: dict, per_video: bool,
                 clip_every: int | None = None) -> None:
    methods = list(scores)
    videos = sorted(set().union(*(s.keys() for s in scores.values())))
    unit = "windows" if clip_every is None else "clips"
    if clip_every is None:  # each method's own windows (their hops may differ)
        print(f"\n### {label}: {len(videos)} videos, each method's windows scored\n")
    else:
        clips = sum(len(rows) for rows in next(iter(scores.values())).values())
        print(f"\n### {label}: {len(videos)} videos, {clips} clips scored\n")
    print(f"Each score twice: the mean over videos (each the mean over its {unit}) and the mean over "
          f"all {unit} pooled.\n")
    print(f"| --masks | maps | ROC-AUC: videos / {unit} | truth kept at beta 0.5: videos / {unit} | IoU at beta 0.5 "
          "| IoU at beta auto (mean beta) | ms per video | x paper | x motion | x decoding |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    paper = np.mean(seconds["paper"]) if "paper" in seconds else float("nan")
    motion = np.mean(seconds["motion"]) if "motion" in seconds else float("nan")
    decoding = np.mean(decode["decode"])
    for method in methods:
        by_video = {key: mean_over_videos(scores[method], key) for key in ("auc", "kept", "iou_half", "iou_auto", "beta_auto")}
        pooled = {key: mean_over_clips(scores[method], key) for key in ("auc", "kept")}
        hop = method_parameters(method, clip_every).hop
        maps = "each clip's frames" if clip_every is not None and get_method(method).baseline else f"windows every {hop}"
        cost = np.mean(seconds[method])
        print(f"| {method} | {maps} | {by_video['auc']:.3f} / {pooled['auc']:.3f} | {by_video['kept']:.3f} / "
              f"{pooled['kept']:.3f} | {by_video['iou_half']:.3f} | {by_video['iou_auto']:.3f} ({by_video['beta_auto']:.2f}) "
              f"| {1000 * cost:.1f} | {cost / paper:.2f} | {cost / motion:.2f} | {cost / decoding:.2f} |")
    print(f"\ndecoding (decord, short side 128): {1000 * decoding:.1f} ms per video")
    if per_video:
        print(f"\n#### {label}, per video: ROC-AUC / truth kept at beta 0.5 (the mean over its {unit})\n")
        print("| video | " + unit + " | " + " | ".join(methods) + " |")
        print("| --- | --- |" + " --- |" * len(methods))
        for video in videos:
            count = max(len(scores[m].get(video, [])) for m in methods)
            cells = [f"{mean_over_videos({video: scores[m][video]}, 'auc'):.3f} / "
                     f"{mean_over_videos({video: scores[m][video]}, 'kept'):.3f}" if video in scores[m] else "n/a"
                     for m in methods]
            print(f"| {video} | {count} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, help="folder of real videos (any layout) with ground truth")
    parser.add_argument("--ground-truth", type=Path, help="their ground-truth folder (pipelines/masks/ground_truth.py)")
    parser.add_argument("--synthetic", type=int, default=20, help="fame synth videos to score (0: none)")
    parser.add_argument("--masks", default=",".join(METHODS), help="methods, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic videos")
    parser.add_argument("--frames", type=int, default=64, help="frames per synthetic video")
    parser.add_argument("--per-video", action="store_true", help="also print each video's scores")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time each method this many times per video (interleaved) and keep the least")
    parser.add_argument("--clip-every", type=int, default=None,
                        help="score a clip starting every N frames with its nearest window's map (default: each window)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = [m.strip() for m in args.masks.split(",") if m.strip()]
    if args.videos is not None:
        if args.ground_truth is None:
            parser.error("--videos needs --ground-truth")
        print_tables(f"real: {args.videos}", *measure(real_videos(args.videos, args.ground_truth), methods, args.clip_every, args.repeats),
                     args.per_video, args.clip_every)
    if args.synthetic:
        print_tables(f"synthetic (fame synth, seed {args.seed}, {args.frames} frames at 320x240)",
                     *measure(synthetic_videos(args.synthetic, args.seed, args.frames), methods, args.clip_every, args.repeats),
                     args.per_video, args.clip_every)
    scored = ("each window" if args.clip_every is None else
              f"a clip every {args.clip_every} frames, nearest window (baselines: each clip's own frames)")
    print(f"\nscored: {scored}; windows of {PARAMETERS.window} frames at stride {PARAMETERS.stride}, each method's own hop; "
          f"{window_starts.__module__}.window_starts; one torch thread")


if __name__ == "__main__":
    main()
