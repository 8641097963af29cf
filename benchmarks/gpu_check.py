"""The GPU figures of ``docs/benchmarks.md`` in one run, written as one JSON file.

Run through ``benchmarks/gpu_check.sh OUT.json`` (see there). On a CUDA machine ("full"
scale, under 8 minutes on one GPU, most of it making the data) it measures:

1. ``fame pretrain`` (``run_pretrain``, the real loader, FAME merge, augmentations, MoCo,
   SGD): r2plus1d_18, 16x112 clips at stride 2, batch 64, AMP and channels-last: steps/s,
   clips/s, the share of each step spent waiting for data, peak GPU memory;
2. the mask step on the GPU vs the CPU: the paper's batched steps 1-4
   (``soft_foreground_map``) on every 16-frame window of a 150-frame 128x171 video, on
   each device, and the offline per-video maps ``fame preprocess`` computes
   (``video_soft_maps``, CPU only) for reference;
3. JPEG encoding of the cached frames on the GPU (torchvision's nvJPEG, when torchvision is
   installed) vs libjpeg-turbo on one CPU core (what ``fame preprocess`` uses);
4. ``fame evaluate --protocol finetune`` from the pretraining checkpoint for one short epoch:
   seconds, steps, peak GPU memory.

Without CUDA ("smoke" scale) the same steps run on tiny sizes in seconds: the test suite
runs it that way (``tests/test_gpu_check.py``), so the script keeps working between the
rare runs on a GPU. Each part records its error instead of stopping the others.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Scale:
    """Sizes of one run of the check."""

    classes: int  # synthetic dataset: motion classes
    videos_per_class: int
    frames: int  # frames per synthetic video
    height: int  # source size of the synthetic videos
    width: int
    short_side: int  # cache frames' shorter side
    preprocess_workers: int
    window: int  # mask window (frames) of the cache
    arch: str
    batch: int  # pretraining videos per step
    clip_len: int
    stride: int
    crop: int
    warmup_steps: int  # steps left out of the timing (workers starting, kernels chosen)
    timed_steps: int
    loader_workers: int
    mask_frames: int  # the video of the mask and JPEG parts: frames, height, width
    mask_height: int
    mask_width: int
    repeats: int  # timed repeats of the mask and JPEG parts (best is reported)
    finetune_batch: int
    finetune_clips_per_video: int


SCALES = {
    # 384 videos: 6 steps of 64 videos per epoch
    "full": Scale(classes=8, videos_per_class=48, frames=40, height=168, width=224, short_side=128,
                  preprocess_workers=min(16, os.cpu_count() or 1), window=16,
                  arch="r2plus1d_18", batch=64, clip_len=16, stride=2, crop=112, warmup_steps=5, timed_steps=25,
                  loader_workers=min(12, max(1, (os.cpu_count() or 2) - 2)), mask_frames=150, mask_height=128,
                  mask_width=171, repeats=5, finetune_batch=32, finetune_clips_per_video=2),
    "smoke": Scale(classes=2, videos_per_class=4, frames=12, height=48, width=64, short_side=32,
                   preprocess_workers=1, window=4, arch="r2plus1d_18", batch=4, clip_len=4, stride=1, crop=16,
                   warmup_steps=1, timed_steps=1,
                   loader_workers=0, mask_frames=24, mask_height=32, mask_width=42, repeats=2, finetune_batch=4,
                   finetune_clips_per_video=1),
}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(function, repeats: int, device: torch.device) -> float:
    """Best of ``repeats`` timed calls after one untimed call (kernels chosen, caches warm)."""
    function()
    _synchronize(device)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        _synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


def _peak_gpu_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# --------------------------------------------------------------------------- the parts


def make_cache(folder: Path, scale: Scale) -> tuple[Path, dict]:
    from pipelines.data.synth import SynthSettings, write_dataset
    from pipelines.masks.preprocess import PreprocessSettings, run_preprocess

    started = time.perf_counter()
    write_dataset(SynthSettings(out_dir=str(folder / "synth"), classes=scale.classes,
                                videos_per_class=scale.videos_per_class, frames=scale.frames, height=scale.height,
                                width=scale.width))
    synth_seconds = time.perf_counter() - started
    cache = folder / "synth.zarr"
    summary = run_preprocess(PreprocessSettings(
        source=str(folder / "synth" / "UCF-101"), cache=str(cache), short_side=scale.short_side, window=scale.window,
        hop=scale.window, workers=scale.preprocess_workers))
    if summary.failed:
        raise RuntimeError(f"preprocessing failed: {summary.errors[:1]} {summary.problems[:1]}")
    return cache, {"videos": summary.done, "synth_seconds": synth_seconds, "preprocess_seconds": summary.seconds,
                   "preprocess_frames_per_s": summary.frames / summary.seconds}


def pretrain_part(cache: Path, run_dir: Path, scale: Scale, device: torch.device) -> dict:
    from pipelines.data.cache import open_cache
    from pipelines.train.pretrain import METRICS, PretrainSettings, run_pretrain

    steps = scale.warmup_steps + scale.timed_steps
    steps_per_epoch = min(steps, len(open_cache(cache).video_ids) // scale.batch)
    settings = PretrainSettings(
        cache=str(cache), run_dir=str(run_dir), arch=scale.arch, epochs=math.ceil(steps / steps_per_epoch),
        batch_size=scale.batch, clip_len=scale.clip_len, stride=scale.stride, crop=scale.crop, queue=2048,
        workers=scale.loader_workers, device=str(device), split="all", log_every=1, checkpoint_every=10**6,
        max_steps_per_epoch=steps_per_epoch, amp=True, channels_last=device.type == "cuda",
    )
    _reset_peak(device)
    started = time.perf_counter()
    run_pretrain(settings)
    seconds = time.perf_counter() - started
    lines = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()][scale.warmup_steps :]
    data = [line["data_time"] for line in lines]
    total = [line["data_time"] + line["step_time"] for line in lines]
    return {
        "arch": scale.arch, "batch_videos": scale.batch, "clips_per_step": 2 * scale.batch,
        "clip": f"{scale.clip_len}x{scale.crop} at stride {scale.stride}", "amp": settings.amp,
        "channels_last": settings.channels_last, "loader_workers": scale.loader_workers,
        "steps_per_epoch": steps_per_epoch, "timed_steps": len(lines),
        "steps_per_s": len(total) / sum(total), "median_step_s": statistics.median(total),
        "clips_per_s": 2 * scale.batch * len(total) / sum(total),
        "data_wait_percent": 100 * sum(data) / sum(total),
        "peak_gpu_memory_mb": _peak_gpu_mb(device), "run_seconds": seconds,
        "checkpoint": str(run_dir / "checkpoints" / "latest.pt"),
    }


def mask_part(scale: Scale, device: torch.device) -> dict:
    from pipelines.fame import soft_foreground_map
    from pipelines.masks.window_maps import video_soft_maps, window_starts

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (scale.mask_frames, scale.mask_height, scale.mask_width, 3), dtype=np.uint8)
    starts = window_starts(len(video), window=scale.window, stride=2, hop=scale.window)
    span = np.arange(scale.window) * 2
    clips = torch.from_numpy(np.stack([video[s + span] for s in starts]))  # N, T, H, W, 3 uint8
    result = {"video": f"{scale.mask_frames} frames {scale.mask_height}x{scale.mask_width}",
              "windows": len(starts), "window": f"{scale.window} frames at stride 2"}

    def batched_on(target: torch.device):
        batch = clips.to(target).permute(0, 4, 1, 2, 3).float().div_(255)  # N, 3, T, H, W in [0, 1]
        return lambda: soft_foreground_map(batch)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what one preprocessing worker has
    try:
        result["cpu_1_thread_batched_ms"] = 1e3 * _best_seconds(batched_on(torch.device("cpu")), scale.repeats,
                                                                torch.device("cpu"))
        result["cpu_1_thread_offline_video_soft_maps_ms"] = 1e3 * _best_seconds(
            lambda: video_soft_maps(video, window=scale.window, hop=scale.window), scale.repeats, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    result["cpu_threads"] = threads
    result[f"cpu_{threads}_threads_batched_ms"] = 1e3 * _best_seconds(batched_on(torch.device("cpu")), scale.repeats,
                                                                      torch.device("cpu"))
    if device.type == "cuda":
        _reset_peak(device)
        result["gpu_batched_ms"] = 1e3 * _best_seconds(batched_on(device), scale.repeats, device)
        upload = lambda: clips.to(device).permute(0, 4, 1, 2, 3).float().div_(255)  # noqa: E731
        result["gpu_upload_ms"] = 1e3 * _best_seconds(upload, scale.repeats, device)
        result["gpu_peak_memory_mb"] = _peak_gpu_mb(device)
        result["gpu_vs_cpu_1_thread"] = result["cpu_1_thread_batched_ms"] / result["gpu_batched_ms"]
    return result


def jpeg_part(scale: Scale, device: torch.device, quality: int = 90) -> dict:
    from pipelines.data.jpeg_frames import encode_frames

    rng = np.random.default_rng(1)
    # smooth content, closer to video than noise: a gradient plus mild noise
    ramp = np.linspace(0, 200, scale.mask_width, dtype=np.float32)[None, :, None]
    frames = np.clip(ramp + rng.normal(0, 8, (scale.mask_frames, scale.mask_height, scale.mask_width, 3)), 0, 255)
    frames = frames.astype(np.uint8)
    result = {"frames": f"{scale.mask_frames} x {scale.mask_height}x{scale.mask_width}", "quality": quality}
    cpu = _best_seconds(lambda: [encode_frames(frame[None], quality) for frame in frames], scale.repeats,
                        torch.device("cpu"))
    result["cpu_libjpeg_turbo_frames_per_s"] = len(frames) / cpu
    if device.type != "cuda":
        result["gpu"] = "skipped: no CUDA device"
        return result
    try:
        from torchvision.io import encode_jpeg
    except ImportError:
        result["gpu"] = "skipped: torchvision (nvJPEG) is not installed; pip install torchvision to measure it"
        return result
    on_gpu = [torch.from_numpy(frame).permute(2, 0, 1).contiguous().to(device) for frame in frames]  # 3, H, W each
    gpu = _best_seconds(lambda: encode_jpeg(on_gpu, quality=quality), scale.repeats, device)
    result["gpu_nvjpeg_frames_per_s"] = len(frames) / gpu
    download = _best_seconds(lambda: [t.cpu() for t in encode_jpeg(on_gpu, quality=quality)], scale.repeats, device)
    result["gpu_nvjpeg_with_download_frames_per_s"] = len(frames) / download
    return result


def finetune_part(cache: Path, checkpoint: str, run_dir: Path, scale: Scale, device: torch.device) -> dict:
    from pipelines.evaluate.run import EvaluateSettings, run_evaluate

    _reset_peak(device)
    started = time.perf_counter()
    result = run_evaluate(EvaluateSettings(
        cache=str(cache), protocol="finetune", checkpoint=checkpoint, run_dir=str(run_dir), epochs=1,
        batch_size=scale.finetune_batch, test_batch_size=max(1, scale.finetune_batch // 4),
        clips_per_video=scale.finetune_clips_per_video, workers=scale.loader_workers, device=str(device)))
    train_videos = result["counts"]["train_videos"]
    return {"seconds": time.perf_counter() - started, "train_videos": train_videos,
            "train_steps": train_videos // scale.finetune_batch, "test_videos": result["counts"]["videos"],
            "batch": scale.finetune_batch, "peak_gpu_memory_mb": _peak_gpu_mb(device)}


def run_part(report: dict, name: str, function, *args) -> object:
    """Run one part; its result or its error goes into ``report[name]``."""
    started = time.perf_counter()
    try:
        value = function(*args)
    except Exception as error:  # one broken part must not lose the others' figures
        report[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=6)}
        return None
    report[name] = value[1] if isinstance(value, tuple) else value
    report[name]["part_seconds"] = time.perf_counter() - started
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--scale", choices=["auto", *SCALES], default="auto",
                        help="auto: full on a CUDA machine, smoke (tiny, seconds) without one")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--work-dir", type=Path, help="where the data and runs go (default: a temporary folder)")
    args = parser.parse_args()

    from pipelines.train.devices import resolve_device

    device = resolve_device(args.device)
    scale_name = args.scale if args.scale != "auto" else ("full" if device.type == "cuda" else "smoke")
    scale = SCALES[scale_name]
    started = time.perf_counter()
    report: dict = {
        "scale": scale_name, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "cpu_count": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work_dir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        made = run_part(report, "data", make_cache, work, scale)
        run_part(report, "masks", mask_part, scale, device)
        run_part(report, "jpeg", jpeg_part, scale, device)
        if made is not None:
            cache = made[0]
            pretrained = run_part(report, "pretrain", pretrain_part, cache, work / "pretrain", scale, device)
            if pretrained is not None:
                run_part(report, "finetune", finetune_part, cache, pretrained["checkpoint"], work / "finetune", scale,
                         device)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["seconds"] = time.perf_counter() - started
    report["failed"] = sorted(k for k, v in report.items() if isinstance(v, dict) and "error" in v)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items()}, indent=2))
    if report["failed"]:
        raise SystemExit(f"gpu_check: parts failed: {', '.join(report['failed'])} (see {args.output})")


if __name__ == "__main__":
    main()
