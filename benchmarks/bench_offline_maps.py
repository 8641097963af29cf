"""The offline soft maps (``video_soft_maps``) against the online steps, and their cost.

For each window of each video: the cached map (integer window sums) against
``soft_foreground_map`` on that window's clip (float32 values, as training sees them), and
the time ``video_soft_maps`` takes per video, one torch thread.

Run:  python benchmarks/bench_offline_maps.py [--videos 10] [--frames 150]
Prints a Markdown table (copy it into docs/method.md with the machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--short-side", type=int, default=128)
    args = parser.parse_args()

    from pipelines import fame
    from pipelines.data.synth import SynthSettings, write_dataset
    from pipelines.data.video import read_video
    from pipelines.masks import window_maps

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(SynthSettings(out_dir=tmp, classes=min(5, args.videos), frames=args.frames,
                                    videos_per_class=-(-args.videos // min(5, args.videos))))
        paths = sorted(Path(tmp, "UCF-101").rglob("*.avi"))
        videos = [read_video(p, short_side=args.short_side)[0] for p in paths]
    window_maps.video_soft_maps(videos[0])  # torch's one-time set-up
    seconds, pixels, differ, differ_more, largest = [], 0, 0, 0, 0
    for video in videos:
        started = time.perf_counter()
        maps, starts = window_maps.video_soft_maps(video)
        seconds.append(time.perf_counter() - started)
        for window, start in zip(maps, starts):
            clip = torch.from_numpy(np.ascontiguousarray(video[start : start + 32 : 2])).permute(3, 0, 1, 2)[None]
            online = torch.round(fame.soft_foreground_map(clip.float() / 255)[0] * 255).to(torch.uint8)
            difference = (window.int() - online.int()).abs()
            pixels += difference.numel()
            differ += int((difference > 0).sum())
            differ_more += int((difference > 1).sum())
            largest = max(largest, int(difference.max()))
    shape = videos[0].shape
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"1 thread; {len(videos)} synth videos of {shape[0]} frames at {shape[1]}x{shape[2]}\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| video_soft_maps per video (mean; min) | {np.mean(seconds) * 1e3:.0f} ms; {min(seconds) * 1e3:.0f} ms |")
    print(f"| map pixels compared | {pixels} |")
    print(f"| share differing from the online map | {differ / pixels:.4%} |")
    print(f"| share differing by more than 1/255 | {differ_more / pixels:.4%} |")
    print(f"| largest difference | {largest}/255 |")


if __name__ == "__main__":
    main()
