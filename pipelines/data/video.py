"""Video decoding behind a small interface: decord (the reference, and the reader of random
clips) and PyAV (``decode_video``, the stage's default whole-video decoder).

Every broken input raises a subclass of :class:`VideoError` that carries the file and a
one-line reason; the commands turn those into one clear line each and a summary, never a
traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


#: frames a whole decode may fall short of the count its container claims and still count as complete:
#: the larger of a few frames and a small share (container counts of real files can be slightly off)
TRUNCATION_SLACK = (2, 0.05)


class VideoError(Exception):
    """A video that cannot be used; ``reason`` is one line a user can act on."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class MissingVideoError(VideoError):
    """The file does not exist."""


class EmptyVideoError(VideoError):
    """The file has zero bytes or no decodable frame."""


class CorruptVideoError(VideoError):
    """The file is not a video, is truncated or cannot be read."""


class TruncatedVideoError(CorruptVideoError):
    """Decoding in order stopped well short of the frames the container claims: the file itself
    is cut or damaged, so another decoder is not tried (decord would return the frames before
    the damage as if they were the whole video)."""


class TooShortError(VideoError):
    """The video has fewer frames than the work needs."""


#: how PyAV decodes container and stream tags that are not UTF-8 (e.g. the Latin-1 titles of
#: HMDB51's films): undecodable bytes become U+FFFD. fame reads no tag, so a tag never refuses a file
#: (PyAV's default, "strict", raised UnicodeDecodeError on opening such a file).
METADATA_ERRORS = "replace"


@dataclass(frozen=True)
class VideoProbe:
    """What a video file is, as decoded at the requested size."""

    num_frames: int
    fps: float
    height: int  # decoded (resized) height
    width: int  # decoded (resized) width
    source_height: int | None  # None when the file was opened at a given size without probing
    source_width: int | None


def resized_shape(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) with the shorter side scaled to ``short_side``, aspect kept.

    ``None`` or 0 keeps the native size. Sides are at least 1 pixel.
    """
    if not short_side:
        return height, width
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _import_decord():
    import decord

    decord.bridge.set_bridge("native")
    return decord


def check_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a readable, non-empty file; else the VideoError saying why not."""
    path = Path(path)
    if not path.exists():
        raise MissingVideoError(path, "file does not exist; check the path or the split file")
    if path.is_dir():
        raise CorruptVideoError(path, "is a folder, not a video file")
    if not os.access(path, os.R_OK):
        raise CorruptVideoError(path, "cannot be read (permission denied); fix its permissions")
    if path.stat().st_size == 0:
        raise EmptyVideoError(path, "file is empty (0 bytes); re-download or remove it")
    return path


def _open(path: str | os.PathLike, short_side: int | None, num_threads: int = 1,
          size: tuple[int, int] | None = None):
    """Open ``path`` with decord at the resized size; raise a VideoError when unusable.

    With ``size`` = (height, width) known (the cache records it), the file is opened once at
    that size; otherwise a first open finds the source size and, when resizing, a second
    opens at the resized size.
    """
    path = check_file(path)
    decord = _import_decord()
    try:
        if size is not None:
            reader = decord.VideoReader(str(path), width=size[1], height=size[0], num_threads=num_threads)
            fps = float(reader.get_avg_fps())
            probe = VideoProbe(len(reader), fps if np.isfinite(fps) and fps > 0 else 0.0, *size, None, None)
            return reader, probe
        probe_reader = decord.VideoReader(str(path), num_threads=num_threads)
        source_height, source_width = probe_reader[0].shape[:2] if len(probe_reader) else (0, 0)
        fps = float(probe_reader.get_avg_fps())
        count = len(probe_reader)
        if count == 0 or source_height == 0:
            raise EmptyVideoError(path, "no decodable frame; re-download or remove it")
        height, width = resized_shape(source_height, source_width, short_side)
        if (height, width) == (source_height, source_width):
            reader = probe_reader
        else:
            del probe_reader
            reader = decord.VideoReader(str(path), width=width, height=height, num_threads=num_threads)
    except VideoError:
        raise
    except Exception as error:  # decord raises DECORDError / RuntimeError with long C++ text
        first_line = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise CorruptVideoError(path, f"not a readable video ({first_line}); re-encode or remove it") from None
    probe = VideoProbe(count, fps if np.isfinite(fps) and fps > 0 else 0.0, height, width, source_height, source_width)
    return reader, probe


def probe_video(path: str | os.PathLike, *, short_side: int | None = None) -> VideoProbe:
    """Frame count, fps and sizes of ``path`` without decoding it all."""
    _, probe = _open(path, short_side)
    return probe


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    """T,H,W,3 uint8 whatever decord returned (grayscale becomes three equal channels)."""
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames[..., :3], dtype=np.uint8)


def read_video(
    path: str | os.PathLike, *, short_side: int | None = 128, batch: int = 256
) -> tuple[np.ndarray, VideoProbe]:
    """Decode every frame of ``path`` resized at decode time: (T,H,W,3 uint8, probe).

    A file whose container claims more frames than it holds (truncated) is decoded up to
    the last readable frame; if that loses more than a few frames it is reported as
    truncated rather than silently shortened.
    """
    reader, probe = _open(path, short_side)
    chunks = []
    decoded = 0
    try:
        for start in range(0, probe.num_frames, batch):
            indices = list(range(start, min(start + batch, probe.num_frames)))
            chunks.append(_as_rgb(reader.get_batch(indices).asnumpy()))
            decoded += len(indices)
    except Exception as error:
        lost = probe.num_frames - decoded
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise CorruptVideoError(
            path, f"truncated or damaged: decoding stopped after {decoded} of {probe.num_frames} frames "
            f"({lost} lost: {reason}); re-download or re-encode it"
        ) from None
    frames = np.concatenate(chunks) if chunks else np.zeros((0, probe.height, probe.width, 3), np.uint8)
    return frames, probe


def decode_video(path: str | os.PathLike, *, short_side: int | None = 128) -> tuple[np.ndarray, VideoProbe]:
    """Decode every frame of ``path`` in order, resized: (T,H,W,3 uint8, probe); the stage's reader.

    The same frames as ``read_video`` (decord) up to rounding, in about half the time on
    the real clips of ``docs/benchmarks.md``: PyAV (the same ffmpeg libraries) decodes the
    frames in order on one thread, ffmpeg's scaler resizes each one bilinearly in the
    source's own pixel format (for 4:2:0 video, half the bytes of RGB), and only the small
    frame is converted to RGB. decord converts and scales in one pass through a filter
    graph at full size, and opens a file twice to resize it. ``read_video`` stays the
    reference (and the baseline of the benchmark); clips for training are read with decord.

    A file that stops short of the frame count its container claims by more than
    ``TRUNCATION_SLACK`` is reported as truncated (``TruncatedVideoError``), not silently
    shortened (decord returns the frames it could decode, e.g. 13 of 60). Tags that are not
    UTF-8 are read leniently (``METADATA_ERRORS``). A rotation tag (the display matrix of
    phone videos) is honoured as decord honours it: the frames are turned upright, and the
    probe's sizes are the upright ones.
    """
    import av
    import av.video.reformatter

    path = check_file(path)
    try:
        container = av.open(str(path), metadata_errors=METADATA_ERRORS)
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise CorruptVideoError(path, f"not a readable video ({_first_line(error)}); re-encode or remove it") from None
    with container:
        if not container.streams.video:
            raise CorruptVideoError(path, "has no video stream; re-encode or remove it")
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one thread: the stage runs one process per core
        stream.codec_context.thread_count = 1
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        claimed = stream.frames
        scale, to_rgb = av.video.reformatter.VideoReformatter(), av.video.reformatter.VideoReformatter()
        frames, size = [], None
        try:
            for frame in container.decode(stream):
                if size is None:
                    turns = quarter_turns(frame)
                    source = (frame.height, frame.width) if turns % 2 == 0 else (frame.width, frame.height)
                    size = resized_shape(*source, short_side)
                    coded = size if turns % 2 == 0 else size[::-1]  # the size to scale to before turning
                if coded != (frame.height, frame.width):
                    frame = scale.reformat(frame, width=coded[1], height=coded[0], interpolation="BILINEAR")
                rgb = to_rgb.reformat(frame, format="rgb24").to_ndarray()
                frames.append(np.rot90(rgb, turns) if turns else rgb)
        except av.FFmpegError as error:
            if not frames:
                raise CorruptVideoError(path, f"not a readable video ({_first_line(error)}); re-encode or remove it") from None
            claimed = max(claimed, 2 * len(frames) + TRUNCATION_SLACK[0] + 1)  # a decoding error mid-file: damaged
    if not frames:
        raise EmptyVideoError(path, "no decodable frame; re-download or remove it")
    if claimed - len(frames) > max(TRUNCATION_SLACK[0], TRUNCATION_SLACK[1] * claimed):
        raise TruncatedVideoError(
            path, f"truncated or damaged: decoding stopped after {len(frames)} of {claimed} frames "
            f"({claimed - len(frames)} lost); re-download or re-encode it"
        )
    probe = VideoProbe(len(frames), fps if np.isfinite(fps) and fps > 0 else 0.0, *size, *source)
    return np.stack(frames), probe


def quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns (0-3) that show a decoded PyAV frame upright, from its
    rotation tag (display matrix); 0 without one, or with a PyAV too old to read it (< 14)."""
    degrees = getattr(frame, "rotation", 0) or 0
    return round(degrees / 90) % 4


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def read_clip(
    path: str | os.PathLike, indices, *, short_side: int | None = 128, size: tuple[int, int] | None = None
) -> np.ndarray:
    """Decode only the frames ``indices`` of ``path``: len(indices),H,W,3 uint8.

    Give ``size`` = (height, width) when it is known to open the file once (the training
    hot path of ``--no-frames`` caches); else it follows from ``short_side``.
    """
    reader, probe = _open(path, short_side, size=size)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= probe.num_frames):
        raise TooShortError(path, f"asked for frame {int(indices.max())} of a {probe.num_frames}-frame video")
    try:
        return _as_rgb(reader.get_batch(indices.tolist()).asnumpy())
    except Exception as error:
        raise CorruptVideoError(path, f"frames could not be decoded ({type(error).__name__}); re-encode it") from None
