"""Test helpers: tiny real video files with known content, and the few functions only the
tests use (official FAME key renames, the backbone of a checkpoint, split-name resolution)."""

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


def encode_video(path: Path, frames: np.ndarray, *, codec: str, pix_fmt: str, fps=25, options: dict | None = None,
                 tags: dict | None = None, tags_encoding: str = "utf-8", rotation: int = 0) -> Path:
    """Write T,H,W,3 uint8 frames with any encoder of PyAV's own ffmpeg (the container from the suffix).

    ``tags`` are written as container metadata in ``tags_encoding`` (e.g. "latin-1", as in
    the files HMDB51's clips were cut from); ``rotation`` (degrees, counter-clockwise) sets the
    display matrix a phone writes for a video filmed upright.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", metadata_encoding=tags_encoding) as container:
        container.metadata.update(tags or {})
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def smooth_moving_video(frames: int = 20, height: int = 96, width: int = 128) -> np.ndarray:
    """A red square moving right over smooth colour waves: T,H,W,3 uint8, closer to filmed
    content than ``moving_square_video``'s per-pixel noise (which no lossy codec keeps)."""
    y, x = np.mgrid[0:height, 0:width]
    background = np.stack([128 + 100 * np.sin(x / 9.0), 128 + 100 * np.cos(y / 7.0),
                           128 + 80 * np.sin((x + y) / 11.0)], axis=-1)
    video = np.repeat(background[None], frames, axis=0)
    side = max(4, height // 4)
    for t in range(frames):
        left = (t * 2) % (width - side)
        video[t, height // 3 : height // 3 + side, left : left + side] = (230, 50, 40)
    return video.clip(0, 255).astype(np.uint8)


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

    from pipelines.data.cache import open_for_writing

    while time.time() < start_at:
        pass
    try:
        open_for_writing(path, settings={"short_side": 32}, dataset={"videos": 0})
        return "ok"
    except Exception as error:  # the test reports what went wrong
        return f"{type(error).__name__}: {error}"


# Official FAME I3D checkpoints keep their head in `id_head` (pool, flatten, Linear,
# ReLU, Linear, L2-normalise); ours is `fc` (Linear, ReLU, Linear).
OFFICIAL_HEAD_RENAMES = {".id_head.2.": ".fc.0.", ".id_head.4.": ".fc.2."}


def from_official_fame(state_dict: dict) -> dict:
    """Keys of an official FAME pretraining checkpoint (its ``["state_dict"]``, saved
    from DDP) renamed to ``MoCo(backbone, mlp=True)`` keys: drop ``module.``, and for I3D
    map the ``id_head`` MLP onto ``fc``. R(2+1)D needs nothing else."""
    renamed = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        for old, new in OFFICIAL_HEAD_RENAMES.items():
            key = key.replace(old, new)
        renamed[key] = value
    return renamed


def backbone_state_dict(checkpoint_or_state: dict) -> dict:
    """The pretrained backbone's weights with the backbone's own key names (no ``encoder_q.``
    prefix, no projection head ``fc.*``), from a checkpoint dict or a MoCo state dict;
    ``CheckpointError`` when there is no query encoder."""
    from pipelines.train.checkpoint_formats import moco_backbone
    from pipelines.train.checkpoints import FORMAT, CheckpointError

    is_checkpoint = checkpoint_or_state.get("format") == FORMAT
    state = checkpoint_or_state["model"] if is_checkpoint else checkpoint_or_state
    backbone, _ = moco_backbone(state)
    if not backbone:
        raise CheckpointError("no MoCo query encoder (encoder_q.*) in this checkpoint")
    return backbone


def resolve_split(index_or_split_names, split: str, fold: int = 1) -> str:
    """The dataset's name for `split`: exact names pass through, "train" -> "train<fold>" on
    folded datasets (UCF101, HMDB51), "validation"/"validate" -> "val".

    `fold` is only used when the exact name does not exist.

    >>> resolve_split(["train1", "test1", "train2", "test2"], "test", fold=2)
    'test2'
    >>> resolve_split(["train", "val"], "validation")
    'val'
    """
    from pipelines.data.layouts import SPLIT_FOLDERS, DatasetIndex, LayoutError, fold_split_name

    if isinstance(index_or_split_names, DatasetIndex):
        names = index_or_split_names.split_names()
    else:
        names = sorted(index_or_split_names)
    base = SPLIT_FOLDERS.get(split, split)
    for candidate in (split, base, fold_split_name(base, fold)):
        if candidate in names:
            return candidate
    if not names:
        raise LayoutError(f"split {split!r} asked for, but this dataset defines no splits; use all videos")
    folded = any(name[-1:].isdigit() for name in names)
    raise LayoutError(
        f"no split {split!r}" + (f" for fold {fold}" if folded else "")
        + f"; this dataset has: {', '.join(names)}"
    )


#: the tiny cache most test modules build from the 12-video synthetic dataset
SMALL_CACHE = dict(short_side=32, window=8, stride=2, hop=4)


def tiny_cache(synth_dataset: Path, folder: Path, name: str = "tiny.zarr") -> Path:
    """``fame preprocess`` of the synthetic dataset's videos (``SMALL_CACHE``) into FOLDER/NAME."""
    from pipelines.masks.preprocess import PreprocessSettings, run_preprocess

    path = folder / name
    run_preprocess(PreprocessSettings(source=str(synth_dataset / "UCF-101"), cache=str(path), **SMALL_CACHE))
    return path
