"""Benchmark of `fame preprocess` and of reading clips back from its cache.

Measures, side by side in one run on the same files and worker count:

1. decord decoding alone (every frame, resized at decode time) vs the whole stage
   (decode + soft masks + writing the Zarr cache), with JPEG frames (the default), with
   lossless zstd frames, with raw frames and with --no-frames: the stage must reach >= 0.8x.
   Reported over the whole run and at the steady rate, once every worker is busy (the
   start-up of the pools and of the stage is fixed and flatters short runs);
2. reading a random 16-frame clip at stride 2 (frames + its soft mask) from the cache vs
   decoding the same clip from the source video with decord: the cache must be >= 10x;
3. bytes per video: source file, cache with JPEG, zstd or raw frames, --no-frames;
4. frame codecs (JPEG qualities, zstd levels, chunk lengths) on the same frames, through
   the cache's own writer and reader, to justify the choice.

Run:  python benchmarks/bench_preprocess.py [--videos 24] [--frames 150] [--workers 2] [--keyframe-interval 12]
      python benchmarks/bench_preprocess.py --source DATASET_ROOT   (your own videos, any layout fame reads)
Prints Markdown tables (copy them into docs/benchmarks.md with the machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np


def _init_decode_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _decode_only(path: str, short_side: int) -> int:
    from pipelines.data.video import read_video

    frames, _ = read_video(path, short_side=short_side)
    return len(frames)


def steady_rate(completions: list[tuple[float, int]], skip: int) -> float:
    """Frames per second from the ``skip``-th finished video to the last one.

    Both sides pay a fixed start-up (spawning workers, importing torch; the stage also finds
    the dataset and opens the store) that a real dataset of thousands of videos spreads
    thin. Skipping the first videos measures the rate once every worker is busy, which is
    what a long run sees; the whole-run rate of a short benchmark flatters the slower side.
    """
    done = sorted(completions)
    if len(done) <= skip:
        raise ValueError(f"need more than {skip} videos to measure a steady rate")
    start = done[skip - 1][0]
    return sum(frames for _, frames in done[skip:]) / (done[-1][0] - start)


def decode_all(paths: list[str], short_side: int, workers: int) -> tuple[float, int, list[tuple[float, int]]]:
    """Seconds, frames and (finish time, frames) per video to decode every video with
    ``workers`` spawned processes."""
    started = time.perf_counter()
    completions = []
    if workers <= 1:
        for path in paths:
            frames = _decode_only(path, short_side)
            completions.append((time.perf_counter(), frames))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_decode_worker) as pool:
            futures = [pool.submit(_decode_only, path, short_side) for path in paths]
            for future in as_completed(futures):
                completions.append((time.perf_counter(), future.result()))
    return time.perf_counter() - started, sum(f for _, f in completions), completions


def preprocess_all(source: Path, cache: Path, short_side: int, workers: int,
                   **options) -> tuple[float, int, list[tuple[float, int]]]:
    from pipelines.masks.preprocess import PreprocessSettings, run_preprocess

    shutil.rmtree(cache, ignore_errors=True)
    settings = PreprocessSettings(source=str(source), cache=str(cache), short_side=short_side, workers=workers,
                                  **options)
    completions = []

    def on_video(result, finished, total) -> None:
        if result is not None:
            completions.append((time.perf_counter(), result.frames))

    started = time.perf_counter()
    summary = run_preprocess(settings, progress=on_video)
    assert not summary.failed, summary.errors
    return time.perf_counter() - started, summary.frames, completions


def stage_breakdown(paths: list[str], short_side: int) -> dict[str, float]:
    """Seconds per video of each part of the stage, in this process (1 thread)."""
    import torch

    from pipelines.data import cache as cache_format
    from pipelines.data.video import decode_video, read_video
    from pipelines.masks.preprocess import PreprocessSettings, compute_soft_masks

    torch.set_num_threads(1)
    settings = PreprocessSettings(source="", cache="", short_side=short_side)
    compute_soft_masks(read_video(paths[0], short_side=short_side)[0], settings)  # torch's one-time set-up
    totals = {"decode": 0.0, "decode, PyAV (the stage's, default)": 0.0, "masks": 0.0,
              "write, JPEG frames (default)": 0.0, "write, zstd-3 frames": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            started = time.perf_counter()
            frames, _ = read_video(path, short_side=short_side)
            totals["decode"] += time.perf_counter() - started
            pyav_started = time.perf_counter()
            decode_video(path, short_side=short_side)
            decoded = time.perf_counter()
            totals["decode, PyAV (the stage's, default)"] += decoded - pyav_started
            masks, _ = compute_soft_masks(frames, settings)
            masked = time.perf_counter()
            cache_format.write_video(f"{tmp}/jpeg.zarr", str(i), frames=frames, masks=masks, info={})
            written = time.perf_counter()
            cache_format.write_video(f"{tmp}/zstd.zarr", str(i), frames=frames, masks=masks, info={},
                                     frame_codec="zstd")
            totals["masks"] += masked - decoded
            totals["write, JPEG frames (default)"] += written - masked
            totals["write, zstd-3 frames"] += time.perf_counter() - written
    return {k: v / len(paths) for k, v in totals.items()}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def clip_reads(caches: list[Path], source: Path, clips: int, clip_len: int, stride: int, seed: int):
    """Seconds for the same `clips` random clips (frames + soft mask) from each cache, then from the source."""
    from pipelines.data.cache import open_cache
    from pipelines.data.clips import clip_span
    from pipelines.data.video import read_clip

    readers = [open_cache(path) for path in caches]
    reader = readers[0]
    rng = np.random.default_rng(seed)
    picks = []
    for _ in range(clips):
        vid = reader.video_ids[int(rng.integers(len(reader.video_ids)))]
        n = reader.info(vid)["num_frames"]
        start = int(rng.integers(0, n - clip_span(clip_len, stride) + 1))
        picks.append((vid, np.arange(start, start + clip_len * stride, stride)))
    def from_cache(cache) -> float:
        started = time.perf_counter()
        for vid, indices in picks:
            cache.frames(vid, indices)
            cache.soft_mask(vid, indices)
        return time.perf_counter() - started

    def from_source() -> float:
        started = time.perf_counter()
        for vid, indices in picks:
            info = reader.info(vid)  # decord opens the file once, at the known size
            read_clip(source / info["path"], indices, size=(info["height"], info["width"]))
        return time.perf_counter() - started

    # one untimed pass each (file handles, allocator, page cache), then the best of two timed ones
    seconds = []
    for cache in readers:
        from_cache(cache)
        seconds.append(min(from_cache(cache), from_cache(cache)))
    from_source()
    return seconds, min(from_source(), from_source())


def codec_table(cache_path: Path, videos: int = 4) -> list[tuple[str, float, float, float, float]]:
    """(codec, KB/frame, write MB/s, 16x2 clip reads/s, PSNR dB) for frame codecs, through the
    cache's own writer and reader, on the same frames."""
    from pipelines.data.cache import open_cache
    from pipelines.data.shard_reader import ShardedArrayReader
    from pipelines.data.shard_writer import write_sharded_array

    reader = open_cache(cache_path)
    samples = [reader.frames(v, range(reader.info(v)["num_frames"])) for v in reader.video_ids[:videos]]
    options = [  # name, codec, level (quality for JPEG), frames per chunk
        ("JPEG q90, 1-frame chunks (default)", "jpeg", 90, 1),
        ("JPEG q95, 1-frame chunks", "jpeg", 95, 1),
        ("zstd-1, 8-frame chunks", "zstd", 1, 8),
        ("zstd-3, 8-frame chunks (--frame-codec zstd)", "zstd", 3, 8),
        ("zstd-3, 1-frame chunks", "zstd", 3, 1),
        ("zstd-3, 16-frame chunks", "zstd", 3, 16),
        ("raw (uncompressed), 1-frame chunks", "raw", 0, 1),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, codec, level, chunk in options:
            store = Path(tmp) / f"{codec}-{level}-{chunk}"
            started = time.perf_counter()
            for i, frames in enumerate(samples):
                shard = min(256, -(-len(frames) // chunk) * chunk)
                write_sharded_array(store / str(i), frames, chunk_length=chunk, shard_length=shard, level=level,
                                    codec=codec)
            write = time.perf_counter() - started
            arrays = [ShardedArrayReader(store / str(i)) for i in range(len(samples))]
            squared = sum(float(((a.read(0, a.shape[0]).astype(np.float64) - f) ** 2).sum())
                          for a, f in zip(arrays, samples))
            values = sum(f.size for f in samples)
            psnr = float("inf") if squared == 0 else 10 * np.log10(255**2 / (squared / values))
            rng = np.random.default_rng(0)
            started, reads = time.perf_counter(), 0
            while time.perf_counter() - started < 1.5:
                array = arrays[int(rng.integers(len(arrays)))]
                start = int(rng.integers(0, array.shape[0] - 31))
                array.take(np.arange(start, start + 32, 2))
                reads += 1
            rate = reads / (time.perf_counter() - started)
            frames_total = sum(len(f) for f in samples)
            raw_mb = sum(f.nbytes for f in samples) / 1e6
            rows.append((name, folder_bytes(store) / frames_total / 1e3, raw_mb / write, rate, psnr))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=150, help="frames per source video (UCF101 averages ~186)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--codec", choices=("mpeg4", "h264"), default="mpeg4", help="source codec (UCF101: mpeg4)")
    parser.add_argument("--keyframe-interval", type=int, default=12,
                        help="frames between keyframes of the source videos (what a random seek costs decord)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--short-side", type=int, default=128)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each side; the best counts")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temp folder)")
    parser.add_argument("--stage-only", action="store_true",
                        help="only the stage vs decoding (PyAV and decord decoders, JPEG and --no-frames), no reads or sizes")
    parser.add_argument("--source", type=Path, default=None,
                        help="benchmark these videos (a dataset root in any layout fame reads) instead of synthetic ones")
    args = parser.parse_args()

    from pipelines.data.layouts import discover_dataset
    from pipelines.data.synth import SynthSettings, write_dataset

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fame-bench-"))
    if args.source is None:
        data = work / "data"
        if not (data / "UCF-101").exists():
            classes = min(5, args.videos)
            write_dataset(SynthSettings(out_dir=str(data), classes=classes,
                                        videos_per_class=max(1, args.videos // classes), frames=args.frames,
                                        height=args.height, width=args.width, codec=args.codec,
                                        keyframe_interval=args.keyframe_interval))
        source = data / "UCF-101"
    else:
        source = args.source
    index = discover_dataset(source, "auto")
    paths = sorted(str(index.root / entry.path) for entry in index.entries)  # what the stage will read
    source_bytes = sum(os.path.getsize(p) for p in paths)

    # warm the page cache and the imports once, so neither side pays for the first read;
    # then alternate the two sides and keep each one's best of `--repeats` (a shared machine)
    for path in paths:
        Path(path).read_bytes()
    decode_all(paths[:2], args.short_side, 1)
    options = {"jpeg": {}, "jpeg_decord": {"decoder": "decord"}, "zstd": {"frame_codec": "zstd"},
               "raw": {"frame_codec": "raw"}, "light": {"frames": False}, "light_decord": {"frames": False, "decoder": "decord"}}
    if args.stage_only:
        options = {k: v for k, v in options.items() if k in ("jpeg", "jpeg_decord", "light", "light_decord")}
    sides = ("decode", *options)
    best = {key: float("inf") for key in sides}  # whole-run seconds
    steady = {key: 0.0 for key in sides}  # frames/s once every worker is busy
    skip = 2 * args.workers
    for _ in range(args.repeats):
        seconds, decode_frames, completions = decode_all(paths, args.short_side, args.workers)
        best["decode"] = min(best["decode"], seconds)
        steady["decode"] = max(steady["decode"], steady_rate(completions, skip))
        for key, extra in options.items():
            cache = work / {"jpeg": "cache.zarr"}.get(key, f"{key}.zarr")
            seconds, frames, completions = preprocess_all(source, cache, args.short_side, args.workers, **extra)
            best[key] = min(best[key], seconds)
            steady[key] = max(steady[key], steady_rate(completions, skip))
            if key == "jpeg":
                stage_frames = frames
    assert decode_frames == stage_frames
    parts = stage_breakdown(paths[: min(len(paths), 8)], args.short_side)

    if args.source is None:
        videos = (f"{len(paths)} videos of {args.frames} frames at {args.width}x{args.height} ({args.codec}, a keyframe "
                  f"every {args.keyframe_interval} frames)")
    else:
        videos = f"{len(paths)} videos from {args.source} ({decode_frames / len(paths):.0f} frames each on average)"
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}; "
          f"{videos}, short side {args.short_side}, {args.workers} workers\n")
    print("| part of the stage, per video, 1 process | ms | vs decode |")
    print("| --- | --- | --- |")
    for name, seconds in parts.items():
        print(f"| {name} | {seconds * 1e3:.0f} | {seconds / parts['decode']:.2f} |")
    print()
    print(f"| stage | whole run: seconds | vs decode alone | steady frames/s (after {skip} videos) | "
          "steady: vs decode alone |")
    print("| --- | --- | --- | --- | --- |")
    rows = [("decord decode alone", "decode"), ("fame preprocess, JPEG frames (default)", "jpeg"),
            ("fame preprocess --decoder decord (JPEG frames)", "jpeg_decord"),
            ("fame preprocess --frame-codec zstd (lossless)", "zstd"),
            ("fame preprocess --frame-codec raw (uncompressed)", "raw"), ("fame preprocess --no-frames", "light"),
            ("fame preprocess --no-frames --decoder decord", "light_decord")]
    for name, key in [(name, key) for name, key in rows if key in sides]:
        print(f"| {name} | {best[key]:.2f} | {best['decode'] / best[key]:.2f}x | {steady[key]:.0f} | "
              f"{steady[key] / steady['decode']:.2f}x |")
    if args.stage_only:
        return
    (cached, cached_zstd, cached_raw), decoded = clip_reads(
        [work / "cache.zarr", work / "zstd.zarr", work / "raw.zarr"], source, args.clips, 16, 2, seed=0)
    print()
    print("| random 16-frame clip, stride 2 | clips/s | speed-up |")
    print("| --- | --- | --- |")
    print(f"| decord from the source video | {args.clips / decoded:.1f} | 1.0x |")
    print(f"| fame cache, JPEG frames (default): frames + soft mask | {args.clips / cached:.1f} | {decoded / cached:.1f}x |")
    print(f"| fame cache, zstd frames: frames + soft mask | {args.clips / cached_zstd:.1f} | "
          f"{decoded / cached_zstd:.1f}x |")
    print(f"| fame cache, raw frames: frames + soft mask | {args.clips / cached_raw:.1f} | {decoded / cached_raw:.1f}x |")
    print()
    n = len(paths)
    print("| bytes per video | KB |")
    print("| --- | --- |")
    container = "H.264 MP4" if args.codec == "h264" else "MPEG-4 AVI"
    described = f"{container}, {args.width}x{args.height}" if args.source is None else "your files"
    print(f"| source ({described}) | {source_bytes / n / 1e3:.0f} |")
    print(f"| cache, JPEG frames (short side {args.short_side}) | {folder_bytes(work / 'cache.zarr') / n / 1e3:.0f} |")
    print(f"| cache, zstd frames | {folder_bytes(work / 'zstd.zarr') / n / 1e3:.0f} |")
    print(f"| cache, raw frames | {folder_bytes(work / 'raw.zarr') / n / 1e3:.0f} |")
    print(f"| cache --no-frames (masks + metadata) | {folder_bytes(work / 'light.zarr') / n / 1e3:.1f} |")
    print()
    print("| frame codec | KB/frame | write MB/s (raw) | clip reads/s | PSNR dB |")
    print("| --- | --- | --- | --- | --- |")
    for name, kb, write, rate, psnr in codec_table(work / "zstd.zarr"):
        print(f"| {name} | {kb:.1f} | {write:.0f} | {rate:.0f} | {psnr:.1f} |")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
