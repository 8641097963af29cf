"""Animated GIF (Pillow) and MP4 (PyAV, H.264) writers for lists of RGB frames.

Both write to a temporary beside the file and rename it at the end
(``pipelines.atomic_files``), so a crash never leaves a truncated file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.atomic_files import atomic_path

#: H.264 quality (constant rate factor; lower is better, 23 is x264's default)
MP4_CRF = 20
#: slowest and fastest playback we write (GIF delays are whole hundredths of a second in browsers)
MIN_FPS, MAX_FPS = 1.0, 50.0


def _frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    frames = [np.asarray(frame) for frame in frames]
    if not frames:
        raise ValueError("an animation needs at least one frame")
    shape = frames[0].shape
    if len(shape) != 3 or shape[2] != 3 or any(frame.shape != shape for frame in frames):
        raise ValueError(f"frames must all be H, W, 3 uint8 of one size, got {[f.shape for f in frames][:3]}...")
    return frames


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, *, fps: float) -> Path:
    """An endlessly looping GIF of ``frames`` (each H, W, 3 uint8) at ``fps`` frames per second.

    Pillow merges consecutive identical frames into one longer frame; callers that need one
    GIF frame per input frame make them differ (``visualize`` prints the frame index on each).
    """
    frames = _frames(frames)
    path = Path(path)
    images = [Image.fromarray(frame) for frame in frames]
    duration = round(1000 / min(max(fps, MIN_FPS), MAX_FPS))  # ms per frame
    with atomic_path(path) as partial:
        images[0].save(partial, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


def write_mp4(frames: Sequence[np.ndarray], path: str | os.PathLike, *, fps: float) -> Path:
    """An H.264 MP4 (yuv420p, playable in browsers) of ``frames`` at ``fps`` frames per second.

    yuv420p needs even sides: an odd last row or column is dropped.
    """
    import av

    frames = _frames(frames)
    path = Path(path)
    height, width = frames[0].shape[0] // 2 * 2, frames[0].shape[1] // 2 * 2
    rate = Fraction(min(max(fps, MIN_FPS), MAX_FPS)).limit_denominator(1000)
    with atomic_path(path) as partial, av.open(str(partial), mode="w", format="mp4",
                                               options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(MP4_CRF)}
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
