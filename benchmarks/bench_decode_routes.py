"""Ways to decode a video resized to the cache's size: time per video and difference from decord's frames.

``fame preprocess`` decodes every frame resized so the shorter side is ``--short-side``
(decord, resized at decode time by ffmpeg's scaler). The resize costs about a third of
decoding a UCF101 file; this compares, on the same files, one thread each:

- decord resized at decode time (what the stage does) and decord at native size;
- PyAV (the same ffmpeg libraries) decoding, then ``VideoFrame.reformat`` to RGB at the
  target size with each of ffmpeg's scalers (bicubic, bilinear, fast bilinear, area, point);
- PyAV scaling in the decoder's pixel format first (for 4:2:0 video, half the bytes of
  RGB), then converting the small frame to RGB: ``decode_video``, what the stage uses now;
- PyAV scaling into YUV 4:4:4 at the target size, then converting to RGB (chroma kept at
  the output's full resolution, as decord's frames have it; tried for issue 22, not used:
  ``docs/benchmarks.md``);
- PyAV with the decoder's ``lowres`` option (MPEG-4 Part 2, MJPEG, ...: the decoder skips
  the high frequencies and outputs 1/2 the size), when the target is at most half the
  source, followed by the small remaining resize.

Each route runs over every file in turn, the routes interleaved, best of ``--repeats``
passes (the machine is shared: only ratios within one run mean anything). The PSNR column
compares each route's frames with decord's resized ones.

Run: python benchmarks/bench_decode_routes.py FILE [FILE ...] [--short-side 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np


def decord_frames(path: str, short_side: int | None) -> np.ndarray:
    from pipelines.data.video import read_video

    return read_video(path, short_side=short_side)[0]


def decord_once(path: str, size: tuple[int, int]) -> np.ndarray:
    """decord opened once at a known size (``read_video`` opens a file twice to learn its size first)."""
    from pipelines.data.video import _as_rgb, _import_decord

    reader = _import_decord().VideoReader(path, width=size[1], height=size[0], num_threads=1)
    return _as_rgb(reader.get_batch(list(range(len(reader)))).asnumpy())


def pyav_frames(path: str, size: tuple[int, int] | None, interpolation: str | None, *, lowres: int = 0,
                scale_first: bool = False, scale_format: str | None = None) -> np.ndarray:
    """Every frame through PyAV, one thread, converted to RGB (and resized) by ffmpeg's swscale.

    ``scale_first``: resize in the decoder's pixel format, then convert the small frame to RGB
    (two swscale calls, as ``decode_video`` does), into ``scale_format`` if given (else the
    decoder's own); else one call converts and resizes.
    """
    import av
    import av.video.reformatter

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        if lowres:
            stream.codec_context.options = {"lowres": str(lowres)}
        scale, to_rgb = av.video.reformatter.VideoReformatter(), av.video.reformatter.VideoReformatter()
        frames = []
        for frame in container.decode(stream):
            height, width = size if size is not None else (frame.height, frame.width)
            if scale_first:
                if (height, width) != (frame.height, frame.width):
                    frame = scale.reformat(frame, width=width, height=height, format=scale_format,
                                           interpolation=interpolation)
                frames.append(to_rgb.reformat(frame, format="rgb24").to_ndarray())
            else:
                frames.append(scale.reformat(frame, width=width, height=height, format="rgb24",
                                             interpolation=interpolation).to_ndarray())
    return np.stack(frames)


def reference_frames(path: str, size: tuple[int, int]) -> np.ndarray:
    """The quality reference: native RGB frames resized in float with an antialiased bilinear filter."""
    import torch

    native = torch.from_numpy(pyav_frames(path, None, "BICUBIC")).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(native, size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    count = min(len(a), len(b))
    if a.shape[1:] != b.shape[1:]:
        return float("nan")
    mse = np.mean((a[:count].astype(np.float32) - b[:count].astype(np.float32)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--short-side", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import av
    import torch

    from pipelines.data.video import decode_video, probe_video, resized_shape

    torch.set_num_threads(1)
    files = [str(f) for f in args.files]
    probe = probe_video(files[0])
    source = (probe.height, probe.width)
    size = resized_shape(*source, args.short_side)
    routes = {
        "decord, resized at decode time (the baseline; the stage before)": lambda f: decord_frames(f, args.short_side),
        "decord, opened once at the known size": lambda f: decord_once(f, size),
        "decord, native size (no resize)": lambda f: decord_frames(f, None),
        "PyAV, native size RGB (no resize)": lambda f: pyav_frames(f, None, "BILINEAR"),
    }
    for name in ("BICUBIC", "BILINEAR", "FAST_BILINEAR", "AREA", "POINT"):
        routes[f"PyAV, swscale {name.lower()} to RGB in one pass"] = lambda f, n=name: pyav_frames(f, size, n)
    routes["PyAV, scale in YUV (bilinear), then RGB: `decode_video`, the stage's now"] = (
        lambda f: decode_video(f, short_side=args.short_side)[0])
    for name in ("AREA", "FAST_BILINEAR"):
        routes[f"PyAV, scale in YUV ({name.lower()}), then RGB"] = lambda f, n=name: pyav_frames(f, size, n,
                                                                                                scale_first=True)
    routes["PyAV, scale into YUV 4:4:4 (bilinear), then RGB (tried, not used)"] = (
        lambda f: pyav_frames(f, size, "BILINEAR", scale_first=True, scale_format="yuv444p"))
    if min(source) // 2 >= args.short_side:
        routes["PyAV lowres=1 (decoder at half size), scale in YUV (bilinear), then RGB"] = (
            lambda f: pyav_frames(f, size, "BILINEAR", lowres=1, scale_first=True))
    reference = {f: decord_frames(f, args.short_side) for f in files}
    truth = {f: reference_frames(f, size) for f in files}
    best = {name: math.inf for name in routes}
    quality = {}
    for _ in range(args.repeats):  # interleaved: each pass runs every route once over every file
        for name, route in routes.items():
            started = time.perf_counter()
            outputs = [route(f) for f in files]
            best[name] = min(best[name], (time.perf_counter() - started) / len(files))
            quality[name] = (min(psnr(out, reference[f]) for out, f in zip(outputs, files)),
                             min(psnr(out, truth[f]) for out, f in zip(outputs, files)))
    baseline = best["decord, resized at decode time (the baseline; the stage before)"]
    print(f"{platform.machine()}, {len(files)} file(s) of {source[1]}x{source[0]}, target {size[1]}x{size[0]}, "
          f"one thread, best of {args.repeats} interleaved passes; PyAV {av.__version__}\n")
    print("| route | ms per video | speed vs decord resized | PSNR vs decord's frames (dB) | PSNR vs reference (dB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in routes:
        shown = []
        for value in quality[name]:
            shown.append("same" if value == float("inf") else ("other size" if math.isnan(value) else f"{value:.1f}"))
        print(f"| {name} | {1e3 * best[name]:.1f} | {baseline / best[name]:.2f}x | {shown[0]} | {shown[1]} |")
    print("\n(reference: native RGB frames resized in float, antialiased bilinear; the worst file counts)")


if __name__ == "__main__":
    main()
