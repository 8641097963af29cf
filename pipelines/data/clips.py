"""Clips from the cache: which frames, which crop, and the datasets that pretraining,
evaluation and visualisation read.

The paper's code samples "two different random clips of each video per step; 16 frames
per clip taken at stride 2", crops each with a random resized crop (scale 0.2-1) and a
horizontal flip, the same for all frames of a clip, and at test time takes 10 uniformly
spaced clips per video with a centre crop. The functions here do that on uint8 frames
read from the cache, on the CPU, in DataLoader workers. Colour augmentations come after
FAME, batched on the training device (``pipelines.train.augment``).

The soft foreground map of a clip (``CacheReader.soft_mask``) goes through exactly the same
crop box and flip as its frames (``crop_resize_map``), so the mask stays aligned with the
pixels it describes.

>>> rng = np.random.default_rng(0)
>>> idx = sample_clip_indices(120, clip_len=16, stride=2, rng=rng)        # 16 frame indices
>>> box = random_resized_crop_box(128, 171, rng=rng)                       # (top, left, h, w)
>>> clip = crop_resize_clip(cache.frames(vid, idx), box, 112, flip=True)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pipelines.data.cache import open_cache

Box = tuple[int, int, int, int]  # top, left, height, width, in pixels of the frame

# The paper's random resized crop: area share and aspect range of torchvision's default.
CROP_SCALE = (0.2, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
# Tries at a box that fits before falling back to a centred one (torchvision's number).
CROP_ATTEMPTS = 10
# The paper's test transform resizes the short side to 128 and centre-crops 112: the crop
# keeps 112/128 of the short side.
CENTER_CROP_FRACTION = 112 / 128
MODES = ("pretrain", "train", "test")
# Frames are uint8; clips and maps become floats in [0, 1]. The project's one definition.
UINT8_MAX = 255


# ---------------------------------------------------------------------------------------------
# Which frames
# ---------------------------------------------------------------------------------------------


def clip_span(clip_len: int, stride: int) -> int:
    """Frames a clip covers from its first to its last index: ``(clip_len - 1) * stride + 1``."""
    return (clip_len - 1) * stride + 1


def _indices_from(start: int, num_frames: int, clip_len: int, stride: int) -> np.ndarray:
    """``start, start + stride, ...``; indices past the end repeat the last frame."""
    return np.minimum(start + np.arange(clip_len) * stride, num_frames - 1)  # clip_len


def sample_clip_indices(
    num_frames: int, *, clip_len: int, stride: int, rng: np.random.Generator, avoid_start: int | None = None
) -> np.ndarray:
    """Frame indices of one random clip: a uniformly random start, then every ``stride``-th frame.

    A video shorter than the clip's span starts at 0 and repeats its last frame to fill the
    clip (the loader checks at start that few videos need this). ``avoid_start`` draws
    another start than that one whenever the video allows two, so the two clips of a
    pretraining pair are "two different random clips". Returns int64 ``clip_len``.
    """
    if num_frames < 1:
        raise ValueError("a clip needs a video with at least one frame")
    starts = max(1, num_frames - clip_span(clip_len, stride) + 1)  # how many starts fit
    if avoid_start is not None and 0 <= avoid_start < starts and starts > 1:
        start = int(rng.integers(0, starts - 1))
        start += start >= avoid_start  # uniform over every start except avoid_start
    else:
        start = int(rng.integers(0, starts))
    return _indices_from(start, num_frames, clip_len, stride)


def uniform_clip_indices(num_frames: int, *, clip_len: int, stride: int, num_clips: int) -> list[np.ndarray]:
    """Frame indices of ``num_clips`` clips with evenly spaced starts from the first to the
    last possible one (the paper's 10-clip test). Short videos repeat their last frame."""
    last_start = max(0, num_frames - clip_span(clip_len, stride))
    starts = np.rint(np.linspace(0, last_start, num_clips)).astype(np.int64)  # num_clips
    return [_indices_from(int(start), num_frames, clip_len, stride) for start in starts]


# ---------------------------------------------------------------------------------------------
# Which pixels
# ---------------------------------------------------------------------------------------------


def random_resized_crop_box(
    height: int,
    width: int,
    *,
    scale: tuple[float, float] = CROP_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
    rng: np.random.Generator,
) -> Box:
    """torchvision's ``RandomResizedCrop`` box: an area share in ``scale`` and an aspect
    ratio (w/h, log-uniform) in ``ratio``; after ``CROP_ATTEMPTS`` misses, the largest
    centred box whose aspect lies in ``ratio``. Returns (top, left, h, w)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(CROP_ATTEMPTS):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def center_crop_box(height: int, width: int, *, size: int, fraction: float = CENTER_CROP_FRACTION) -> Box:
    """The paper's test crop, "resize the short side to 128, centre-crop 112", expressed as a
    box of the frame as it is: a centred square of side ``min(H, W) * size / round(size /
    fraction)`` (for size 112: 112/128 of the short side), which ``crop_resize_clip`` then
    resizes to ``size``. On a cache with short side 128 and size 112 this is exactly the
    paper's crop, without resampling; on other caches it keeps the same share of the frame."""
    side = max(1, min(height, width, round(min(height, width) * size / round(size / fraction))))
    return (height - side) // 2, (width - side) // 2, side, side


def _crop_resize(images: torch.Tensor, box: Box, size: int, flip: bool) -> torch.Tensor:
    """Crop ``box`` out of N, C, H, W images, resize bilinearly (antialiased) to size x size, flip.

    Frames stay uint8 (torch resizes uint8 directly on the CPU, tens of times faster than
    float); maps are resized as floats. Both go through this one function, so they are
    sampled at the same positions with the same weights.
    """
    top, left, h, w = box
    crop = images[:, :, top : top + h, left : left + w]  # N, C, h, w
    if (h, w) != (size, size):
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return crop.flip(-1) if flip else crop  # N, C, size, size


def _as_array(images: np.ndarray) -> np.ndarray:
    """Contiguous and writable (zarr hands out read-only arrays, which torch warns about); copies only if needed."""
    return np.require(images, requirements=["C", "W"])


def crop_resize_clip(frames: np.ndarray, box: Box, size: int, *, flip: bool) -> torch.Tensor:
    """Crop ``box`` out of every frame (T, H, W, 3 uint8), resize to size x size (bilinear,
    antialiased), flip horizontally if asked. Returns uint8 3, T, size, size."""
    images = torch.from_numpy(_as_array(frames)).permute(0, 3, 1, 2)  # T, 3, H, W (channels-last memory)
    return _crop_resize(images, box, size, flip).permute(1, 0, 2, 3).contiguous()  # 3, T, size, size


def crop_resize_map(
    soft: np.ndarray, box: Box, size: int, *, flip: bool, frame_shape: tuple[int, int] | None = None
) -> torch.Tensor:
    """The soft foreground map (H, W uint8, 0..255) through exactly the crop, resize and flip of
    its clip. Resampled in float, not rounded back to 256 levels: fewer ties when
    ``select_foreground`` ranks the pixels of the crop. ``frame_shape`` (H, W of the frames
    the box was drawn on): a map stored at another resolution is first resized to it
    (bilinear), so the box is cut at exactly the frames' place, not at the map's rounded pixels.
    Returns float32 size, size in [0, 1]."""
    images = torch.from_numpy(_as_array(soft))[None, None].float() / UINT8_MAX  # 1, 1, h, w
    if frame_shape is not None and tuple(frame_shape) != soft.shape:
        images = F.interpolate(images, size=tuple(frame_shape), mode="bilinear", align_corners=False)  # 1, 1, H, W
    return _crop_resize(images, box, size, flip)[0, 0].clamp(0, 1)  # size, size


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


class ClipDataset(Dataset):
    """Clips of the videos ``video_ids`` of a cache, ready for batching.

    ``mode``:

    - ``"pretrain"``: ``{"query", "key"}`` two different random clips of the video, each
      with its own random resized crop and flip (uint8 3, T, crop, crop); ``"mask"`` the
      query clip's soft map through the query's crop and flip (float crop, crop in [0, 1];
      only with ``with_masks``); ``"index"``.
    - ``"train"``: ``{"clip", "label", "index"}``: one random clip, random crop and flip.
    - ``"test"``: ``{"clips", "label", "index"}``: ``num_clips`` uniformly spaced clips,
      centre-cropped (uint8 num_clips, 3, T, crop, crop).

    The cache is opened lazily in each process (the dataset pickles into DataLoader
    workers). Randomness comes from ``(seed, epoch, index)`` (``set_epoch``), so a sample
    does not depend on the worker that draws it and a resumed run sees the same data.
    Works with a ``--no-frames`` cache: its reader decodes the frames from the source.
    """

    def __init__(
        self,
        cache_path: str | os.PathLike,
        video_ids: list[str],
        *,
        clip_len: int = 16,
        stride: int = 2,
        crop: int = 112,
        mode: str = "pretrain",
        num_clips: int = 10,
        with_masks: bool = True,
        seed: int = 0,
        scale: tuple[float, float] = CROP_SCALE,
        source: str | os.PathLike | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.cache_path = str(cache_path)
        self.video_ids = list(video_ids)
        self.clip_len = clip_len  # frames per clip
        self.stride = stride  # temporal stride between a clip's frames
        self.crop = crop  # output side in pixels
        self.mode = mode
        self.num_clips = num_clips  # clips per video in test mode
        self.with_masks = with_masks  # pretrain mode: also return the query's soft map
        self.seed = seed
        self.scale = scale  # area share range of the random resized crop
        self.source = None if source is None else str(source)  # where a --no-frames cache's videos are
        self.epoch = 0
        self._reader = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_reader": None}  # each worker opens its own reader

    @property
    def reader(self):
        if self._reader is None:
            self._reader = open_cache(self.cache_path, source=self.source)
        return self._reader

    def set_epoch(self, epoch: int) -> None:
        """Draw the random clips and crops of ``epoch`` (call before each epoch's loader)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.video_ids)

    def _random_view(self, video_id: str, info: dict, indices: np.ndarray, rng: np.random.Generator):
        box = random_resized_crop_box(info["height"], info["width"], scale=self.scale, rng=rng)
        flip = bool(rng.random() < 0.5)
        clip = crop_resize_clip(self.reader.frames(video_id, indices), box, self.crop, flip=flip)
        return clip, box, flip

    def __getitem__(self, index: int) -> dict:
        return self.sample(index, epoch=self.epoch)

    def sample(self, index: int, *, epoch: int) -> dict:
        """Video ``index`` with the randomness of ``epoch``."""
        video_id = self.video_ids[index]
        info = self.reader.info(video_id)
        rng = np.random.default_rng((self.seed, epoch, index))
        num_frames = info["num_frames"]
        sample = {"index": index}
        if self.mode == "test":
            clips = [
                crop_resize_clip(
                    self.reader.frames(video_id, indices),
                    center_crop_box(info["height"], info["width"], size=self.crop),
                    self.crop,
                    flip=False,
                )
                for indices in uniform_clip_indices(
                    num_frames, clip_len=self.clip_len, stride=self.stride, num_clips=self.num_clips
                )
            ]
            return {**sample, "clips": torch.stack(clips), "label": info["label"]}  # num_clips, 3, T, S, S
        query_indices = sample_clip_indices(num_frames, clip_len=self.clip_len, stride=self.stride, rng=rng)
        query, box, flip = self._random_view(video_id, info, query_indices, rng)
        if self.mode == "train":
            return {**sample, "clip": query, "label": info["label"]}
        key_indices = sample_clip_indices(
            num_frames, clip_len=self.clip_len, stride=self.stride, rng=rng, avoid_start=int(query_indices[0])
        )
        key, _, _ = self._random_view(video_id, info, key_indices, rng)
        sample.update(query=query, key=key)
        if self.with_masks:
            soft = self.reader.soft_mask(video_id, query_indices)  # H, W uint8
            frame_shape = (info["height"], info["width"])
            sample["mask"] = crop_resize_map(soft, box, self.crop, flip=flip, frame_shape=frame_shape)
        return sample
