"""Does overlapping decoding, masks and writing on threads speed up ``fame preprocess``?

Each worker process of the stage does, per video: decode (PyAV or decord), soft masks
(torch), write (JPEG through libjpeg-turbo, zstd, files). All three release the GIL for
most of their work, so one process could run them on three threads at once, each video
one step behind the previous. This measures, on the same files and worker count, one
process per worker:

- ``sequential``: decode, masks, write, one video after another (what the stage does);
- ``pipelined``: a decode thread runs one video ahead, a write thread one video behind, the
  masks on the worker's own thread.

Both are timed over the whole run (best of ``--repeats``, interleaved), with the CPU time
the workers used, which says whether the cores had any idle time to fill.

Run: python benchmarks/bench_stage_threads.py DATASET_ROOT [--workers 2] [--repeats 3] [--decoder pyav]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path


def _work(paths: list[str], cache: str, pipelined: bool, decoder: str) -> int:
    import torch

    from pipelines.data import cache as cache_format
    from pipelines.masks.preprocess import DECODERS, PreprocessSettings, compute_soft_masks

    torch.set_num_threads(1)
    settings = PreprocessSettings(source="", cache=cache)

    def decode(path):
        return DECODERS[decoder](path, short_side=settings.short_side)[0]

    def write(index, frames, masks):
        cache_format.write_video(cache, f"v{os.getpid()}_{index}", frames=frames, masks=masks, info={})

    frames_done = 0
    if not pipelined:
        for index, path in enumerate(paths):
            frames = decode(path)
            write(index, frames, compute_soft_masks(frames, settings)[0])
            frames_done += len(frames)
        return frames_done
    with ThreadPoolExecutor(1) as decoding, ThreadPoolExecutor(1) as writer:
        upcoming = decoding.submit(decode, paths[0])
        written = None
        for index in range(len(paths)):
            frames = upcoming.result()
            if index + 1 < len(paths):
                upcoming = decoding.submit(decode, paths[index + 1])  # decode the next video meanwhile
            masks = compute_soft_masks(frames, settings)[0]
            if written is not None:
                written.result()
            written = writer.submit(write, index, frames, masks)  # write while the next masks run
            frames_done += len(frames)
        written.result()
    return frames_done


def run(paths: list[str], workers: int, pipelined: bool, cache: Path, decoder: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the workers, frames) for one whole run."""
    shutil.rmtree(cache, ignore_errors=True)
    shares = [paths[i::workers] for i in range(workers)]
    before = os.times()
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        frames = sum(pool.map(_work, shares, [str(cache)] * workers, [pipelined] * workers, [decoder] * workers))
    seconds = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return seconds, cpu, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decoder", default="pyav", help="the stage's --decoder: pyav | decord")
    args = parser.parse_args()

    from pipelines.data.layouts import discover_dataset

    index = discover_dataset(args.source, "auto")
    paths = [str(index.root / entry.path) for entry in index.entries]
    best = {False: (float("inf"), 0.0, 0), True: (float("inf"), 0.0, 0)}
    with tempfile.TemporaryDirectory() as temporary:
        for _ in range(args.repeats):
            for pipelined in (False, True):
                result = run(paths, args.workers, pipelined, Path(temporary) / "c.zarr", args.decoder)
                if result[0] < best[pipelined][0]:
                    best[pipelined] = result
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; {len(paths)} videos from {args.source}, {args.workers} "
          f"worker processes, --decoder {args.decoder}, best of {args.repeats} interleaved runs (start-up included)\n")
    print("| per worker process | whole run s | frames/s | CPU s of the workers | cores busy | vs sequential |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for pipelined, name in ((False, "sequential (the stage)"), (True, "pipelined on 3 threads")):
        seconds, cpu, frames = best[pipelined]
        print(f"| {name} | {seconds:.2f} | {frames / seconds:.0f} | {cpu:.1f} | {cpu / seconds:.2f} | "
              f"{best[False][0] / seconds:.2f}x |")


if __name__ == "__main__":
    main()
