"""The background-swap test set behind ``fame evaluate --bg-swap``: a direct score of how
much a model's predictions rest on the static background.

Each test video keeps its moving foreground and takes the background of another test
video: FAME's merge (step 6, ``x_fused = x[perm] * (1 - M) + x * M``) applied at test time,
with the pairing fixed by a seeded derangement of the test videos, so no video keeps its
own background and every run swaps the same pairs. The clips are the usual test clips
(``num_clips`` uniformly spaced, centre crop); clip j of a video is merged with clip j of
its partner. The mask ``M`` of each clip is the cache's soft foreground map of that clip's
window, taken through the same centre crop and resize as the frames, then binarised to
its top ``beta`` share (the paper's "portion of the foreground", 0.5), exactly as
pretraining binarises per crop. With a ground-truth folder (``pipelines.masks.ground_truth``) the
mask is instead the true foreground: the union of the clip's true masks over its frames,
through the same crop (then the set does not depend on the quality of the soft maps).

**Clean plates.** Before another foreground is pasted on it, every background clip has its
own subject taken out (``pipelines.masks.clean_plates``): with ground truth its true foreground,
otherwise the cache's map at a generous share (``PLATE_SHARE``), dilated and filled from the
clip's own background. Pasted onto the raw clip instead, the background would still show
its own subject wherever the pasted foreground does not cover it, and a model that follows
the subject would be counted as following the background. ``backgrounds="raw"`` keeps the
old sets (schema 1 of the evaluate JSON) for comparison.

A model that recognises the action from its motion keeps its accuracy on the swapped set;
one that recognises the scene loses it (and tends to predict the partner's class). The
score is ``gap = metric(normal) - metric(swapped)``. Whatever lies outside the mask comes
from the partner's clean plate, including the motion of its background (water, leaves, a
panning camera): that is background too.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from pipelines.data.clips import UINT8_MAX, ClipDataset, center_crop_box, crop_resize_map, uniform_clip_indices
from pipelines.fame import merge_foreground_background, random_derangement, select_foreground
from pipelines.masks.clean_plates import clean_plates
from pipelines.masks.ground_truth import clip_ground_truth

BETA = 0.5  # share of each crop kept as foreground (the paper's default)
SWAP_SEED = 0  # seed of the pairing, so every run and every process swaps the same pairs
BACKGROUNDS = ("clean", "raw")  # each background without its own subject (clean plate), or as it is
# Without ground truth, the share of each background crop taken as its subject (the top of
# the cache's map) and removed: generous, as a subject left in the plate costs more than
# background filled in from its surroundings.
PLATE_SHARE = 0.5


def swap_partners(n: int, *, seed: int = SWAP_SEED) -> np.ndarray:
    """``partners[i]``: the video whose background video ``i`` gets; a derangement of
    ``range(n)`` drawn from ``seed`` (identity for a single video)."""
    generator = torch.Generator().manual_seed(seed)
    return random_derangement(n, generator=generator).numpy()


class SwappedClipDataset(Dataset):
    """The test clips of ``video_ids`` with their foregrounds merged onto the backgrounds
    of ``partners`` (indices into ``video_ids``).

    Items are ``{"clips": uint8 num_clips, 3, T, S, S, "label": the foreground video's
    label, "index", "partner"}``, the layout of ``ClipDataset(mode="test")``.
    """

    def __init__(
        self,
        cache_path: str | os.PathLike,
        video_ids: list[str],
        partners,
        *,
        clip_len: int,
        stride: int,
        crop: int,
        num_clips: int = 10,
        beta: float = BETA,
        source: str | os.PathLike | None = None,
        ground_truth: str | os.PathLike | None = None,
        backgrounds: str = "clean",
    ):
        if len(partners) != len(video_ids):
            raise ValueError(f"{len(partners)} partners for {len(video_ids)} videos")
        if backgrounds not in BACKGROUNDS:
            raise ValueError(f"backgrounds must be one of {', '.join(BACKGROUNDS)}, got {backgrounds!r}")
        self.clips = ClipDataset(
            cache_path, video_ids, clip_len=clip_len, stride=stride, crop=crop, mode="test",
            num_clips=num_clips, with_masks=False, source=source,
        )
        self.partners = [int(p) for p in partners]
        self.beta = beta  # share of each crop kept as foreground (cache masks)
        self.ground_truth = None if ground_truth is None else str(ground_truth)  # true masks instead
        self.backgrounds = backgrounds  # "clean": each background without its own subject

    def __len__(self) -> int:
        return len(self.partners)

    def _clip_geometry(self, index: int):
        """(video id, info, H x W of its frames, the centre crop box, each test clip's frame indices)."""
        clips = self.clips
        video_id = clips.video_ids[index]
        info = clips.reader.info(video_id)
        frame_shape = (info["height"], info["width"])
        clip_frames = uniform_clip_indices(
            info["num_frames"], clip_len=clips.clip_len, stride=clips.stride, num_clips=clips.num_clips
        )
        return video_id, info, frame_shape, center_crop_box(*frame_shape, size=clips.crop), clip_frames

    def _true_foreground(self, index: int) -> np.ndarray:
        """The true foreground of every frame of video ``index``'s test clips: uint8 (0 or 255)
        num_clips, T, H, W at the cached frames' size (one read of the ground truth)."""
        _, info, frame_shape, _, clip_frames = self._clip_geometry(index)
        truth = clip_ground_truth(self.ground_truth, info["path"], np.concatenate(clip_frames),
                                  height=frame_shape[0], width=frame_shape[1])  # num_clips * T, H, W
        return truth.reshape(len(clip_frames), -1, *frame_shape).astype(np.uint8) * UINT8_MAX

    def _cropped(self, index: int, maps) -> torch.Tensor:
        """``maps`` (..., H, W uint8 at the frames' size) through the centre crop: float ..., S, S in [0, 1]."""
        _, _, _, box, _ = self._clip_geometry(index)
        return torch.stack([crop_resize_map(m, box, self.clips.crop, flip=False) for m in maps])

    def _cache_maps(self, index: int) -> torch.Tensor:
        """The cache's soft map of each test clip's window through the centre crop: float num_clips, S, S."""
        video_id, _, frame_shape, box, clip_frames = self._clip_geometry(index)
        reader = self.clips.reader
        return torch.stack([
            crop_resize_map(reader.soft_mask(video_id, indices), box, self.clips.crop, flip=False,
                            frame_shape=frame_shape)
            for indices in clip_frames
        ])

    def foreground_masks(self, index: int) -> torch.Tensor:
        """Binary masks of video ``index``'s test clips: bool num_clips, S, S."""
        if self.ground_truth is not None:  # the true foreground, every pixel it covers in the clip
            union = self._true_foreground(index).max(axis=1)  # num_clips, H, W
            return self._cropped(index, union) >= 0.5  # num_clips, S, S
        return select_foreground(self._cache_maps(index), beta=self.beta)  # num_clips, S, S

    def subject_masks(self, index: int) -> torch.Tensor:
        """What a clean plate of video ``index`` removes: bool num_clips, T, S, S (the true
        foreground of each frame) or num_clips, S, S (the top ``PLATE_SHARE`` of the cache's map)."""
        if self.ground_truth is not None:
            truth = self._true_foreground(index)  # num_clips, T, H, W
            return self._cropped(index, truth.reshape(-1, *truth.shape[2:])).reshape(
                *truth.shape[:2], self.clips.crop, self.clips.crop) >= 0.5
        return select_foreground(self._cache_maps(index), beta=max(self.beta, PLATE_SHARE))

    def background_clips(self, index: int) -> torch.Tensor:
        """Video ``index``'s test clips as a background: its clean plates, or as they are
        (``backgrounds="raw"``). uint8 num_clips, 3, T, S, S."""
        clips = self.clips[index]["clips"]
        return clean_plates(clips, self.subject_masks(index)) if self.backgrounds == "clean" else clips

    def __getitem__(self, index: int) -> dict:
        own = self.clips[index]
        partner = self.partners[index]
        background = self.background_clips(partner)  # num_clips, 3, T, S, S
        merged = merge_foreground_background(own["clips"], self.foreground_masks(index), backgrounds=background)
        return {"clips": merged, "label": own["label"], "index": index, "partner": partner}
