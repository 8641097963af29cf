"""Test helpers: tiny real video files with known content."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_test_video(path: Path, frames: np.ndarray, *, fps: int = 25, codec: str = "ffv1", pix_fmt: str = "bgr0") -> Path:
    """Write T,H,W,3 uint8 (or T,H,W for gray) frames; ffv1 is lossless and allows odd sizes."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    gray = frames.ndim == 3
    with av.open(str(path), mode="w", format="avi" if path.suffix == ".avi" else None) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "gray" if gray else pix_fmt
        for frame in frames:
            image = av.VideoFrame.from_ndarray(frame, format="gray" if gray else "rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_square_video(frames: int = 40, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A bright square moving right over a static random texture: T,H,W,3 uint8."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    side = max(4, height // 4)
    for t in range(frames):
        x = (t * 2) % (width - side)
        video[t, height // 3 : height // 3 + side, x : x + side] = (250, 40, 40)
    return video


def open_cache_for_writing_at(path: str, start_at: float) -> str:
    """Open (create) a cache for writing at wall-clock time ``start_at``; "ok" or the error.

    Run in several processes at once to race their creation of one store."""
    import time

    from pipelines.cache import open_for_writing

    while time.time() < start_at:
        pass
    try:
        open_for_writing(path, settings={"short_side": 32}, dataset={"videos": 0})
        return "ok"
    except Exception as error:  # the test reports what went wrong
        return f"{type(error).__name__}: {error}"
