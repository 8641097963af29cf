"""Training-step breakdown of ``fame pretrain``: time waiting for data vs compute, per backbone.

Runs the real pretraining (``run_pretrain``: loader, FAME step, augmentations, MoCo, SGD)
for a few steps per backbone and reads its metrics log; the first ``--warmup`` steps
(worker start-up, first-call kernel set-up) are left out. "compute" is everything after the
batch arrived: transfer, FAME merge, augmentations, forward, backward, optimiser step.

Run: python benchmarks/bench_train_step.py [--cache CACHE.zarr] [--device auto]
     [--arch small:16 --arch r2plus1d_18:2]    (backbone:batch, repeatable)
Without --cache it makes a small synthetic dataset and its cache in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import torch

from pipelines.data.cache import open_cache
from pipelines.train.devices import resolve_device
from pipelines.train.pretrain import METRICS, PretrainSettings, run_pretrain

DEFAULT_ARCHS = ["small:16", "r2plus1d_18:2"]  # backbone:batch


def breakdown(cache: Path, run_dir: Path, *, arch: str, batch: int, args) -> dict:
    steps = args.warmup + args.steps
    steps_per_epoch = min(steps, len(open_cache(cache).video_ids) // batch)
    if steps_per_epoch == 0:
        raise SystemExit(f"{arch}: the cache has fewer videos than one batch of {batch}")
    settings = PretrainSettings(
        cache=str(cache), run_dir=str(run_dir), arch=arch, epochs=math.ceil(steps / steps_per_epoch),
        batch_size=batch, clip_len=args.clip_len, stride=args.stride, crop=args.crop, queue=max(256, 2 * batch),
        workers=args.workers, device=args.device, split="all", log_every=1, fame=not args.no_fame,
        max_steps_per_epoch=steps_per_epoch,
    )
    run_pretrain(settings)
    lines = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()][args.warmup :]
    data = sum(line["data_time"] for line in lines) / len(lines)
    compute = sum(line["step_time"] for line in lines) / len(lines)
    return {"arch": arch, "batch": batch, "data": data, "compute": compute, "clips_per_s": 2 * batch / (data + compute)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="a cache (default: a small synthetic one)")
    parser.add_argument("--arch", action="append", help="BACKBONE:BATCH, repeatable (default: small:16, r2plus1d_18:2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per backbone")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out at the start")
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--no-fame", action="store_true")
    parser.add_argument("--videos-per-class", type=int, default=8, help="size of the synthetic dataset")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        if args.cache is None:
            from bench_loader import make_demo_cache

            args.cache = make_demo_cache(Path(temporary), args.videos_per_class)
        rows = []
        for spec in args.arch or DEFAULT_ARCHS:
            arch, batch = spec.split(":")
            rows.append(breakdown(args.cache, Path(temporary) / f"run-{arch}", arch=arch, batch=int(batch), args=args))
        device = resolve_device(args.device)
        cpu = f"CPU, {torch.get_num_threads()} threads"
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
        print(f"{name}; clips {args.clip_len}x{args.stride} at {args.crop}; FAME {'off' if args.no_fame else 'on'}; "
              f"{args.workers} loader worker(s); mean of {args.steps} steps after {args.warmup} warm-up steps\n")
        print("| backbone | batch (videos) | data wait s/step | compute s/step | data-wait share | clips/s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            share = 100 * row["data"] / (row["data"] + row["compute"])
            print(f"| {row['arch']} | {row['batch']} | {row['data']:.3f} | {row['compute']:.3f} | {share:.0f}% | "
                  f"{row['clips_per_s']:.1f} |")


if __name__ == "__main__":
    main()
