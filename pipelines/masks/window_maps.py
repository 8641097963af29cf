"""Offline soft maps: the paper's steps 1-4 once per temporal window of a whole video.

The paper computes the soft map of every query clip on the GPU, batch by batch. We compute it
once, at preprocessing, for each temporal window of each whole video (``window_starts``), and
pretraining takes the map of the window nearest its clip (``window_for_clip``), cropped with the
clip; steps 5-6 stay online (``pipelines.fame.fame_merge``). ``video_soft_maps`` is
``pipelines.fame.soft_foreground_map`` on every window's clip, from exact integer sums of the
uint8 frames (``window_sums``); ``pool_neighbouring_windows`` is our option of pooling step 4's
histograms over neighbouring windows (``--colour-context``). See ``docs/method.md``.

Every function is pure (inputs are never modified) and runs on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.data.cache import window_for_clip  # noqa: F401  (the cache reader's rule, beside the windows it picks from)
from pipelines.data.clips import UINT8_MAX, clip_span
from pipelines.fame import (
    blur_and_normalise,
    colour_histograms,
    colour_ids,
    likelihood_from_histograms,
    seed_regions,
)


def window_starts(num_frames: int, *, window: int = 16, stride: int = 2, hop: int = 16) -> list[int]:
    """First frames of the windows a video is cut into: 0, hop, 2*hop, ... plus one ending at the last frame.

    A window starting at s covers frames s, s + stride, ..., s + (window - 1) * stride.
    """
    span = clip_span(window, stride)
    if num_frames < span:
        raise ValueError(f"a {window}x{stride} window needs {span} frames, the video has {num_frames}")
    last = num_frames - span
    starts = list(range(0, last + 1, hop))
    if starts[-1] != last:
        starts.append(last)
    return starts


def pad_to_window(frames: np.ndarray, *, window: int = 16, stride: int = 2) -> tuple[np.ndarray, int]:
    """A video shorter than one window's span, with its last frame repeated up to the span; and
    how many frames were added (0: ``frames`` itself, untouched).

    The same rule as the clip sampler (``pipelines.data.clips.sample_clip_indices`` repeats the last
    frame of a short video), so the one window of a short video covers exactly the frames its
    clips are made of. Repeating, not looping: a loop would put a jump from the last frame back to
    the first inside the window, motion that is not in the video. A 1-frame video becomes a
    still window (no motion evidence; each method's map of a still). Empty videos raise ValueError.
    """
    if len(frames) < 1:
        raise ValueError("a video with no frames has no mask window")
    missing = clip_span(window, stride) - len(frames)
    if missing <= 0:
        return frames, 0
    return np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)]), missing


def window_sums(frames: np.ndarray, starts, *, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer sums over each window of a uint8 video (T, H, W, 3), for windows starting at ``starts``.

    Returns the motion sums ``sum_j sum_c |x_j - x_{j+1}|`` over the window's ``window - 1``
    frame differences, in 1/255 units (float32 holding exact integers, G, H, W), and the sums
    of its ``window`` frames (unsigned integers, G, H, W, 3). Every sum is exact. Each window is
    summed from its own frames (no running sums: they cost more in memory traffic than the
    overlap of neighbouring windows saves), and channels are added after the time sums, on
    contiguous data.
    """
    largest = window * UINT8_MAX
    accumulator = np.uint16 if largest <= np.iinfo(np.uint16).max else np.uint32
    span = clip_span(window, stride)
    motion = np.empty((len(starts), *frames.shape[1:3]), np.float32)  # G, H, W
    colour = np.empty((len(starts), *frames.shape[1:]), accumulator)  # G, H, W, 3
    for i, start in enumerate(starts):
        clip = frames[start : start + span : stride]  # window, H, W, 3
        clip.sum(axis=0, dtype=accumulator, out=colour[i])
        later, earlier = clip[1:], clip[:-1]
        absolute = np.maximum(later, earlier)
        absolute -= np.minimum(later, earlier)  # |x_{j+1} - x_j| in uint8, window - 1, H, W, 3
        per_channel = absolute.sum(axis=0, dtype=accumulator)  # H, W, 3
        np.add(per_channel[..., 0], per_channel[..., 1], out=motion[i], dtype=np.float32)
        motion[i] += per_channel[..., 2]
    return motion, colour


def pool_neighbouring_windows(counts: torch.Tensor, radius: int) -> torch.Tensor:
    """Each window's histogram summed with those of the ``radius`` windows on each side (fewer
    at the ends of the video): counts (G, C) -> float64 G, C, exact. ``radius`` 0 returns ``counts``."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0:
        return counts
    running = F.pad(counts.double().cumsum(dim=0), (0, 0, 1, 0))  # G + 1, C: running[i] = sum of rows < i
    rows = torch.arange(len(counts))
    return running[(rows + radius + 1).clamp(max=len(counts))] - running[(rows - radius).clamp(min=0)]  # G, C


def video_soft_maps(
    frames,
    *,
    window: int = 16,
    stride: int = 2,
    hop: int = 16,
    fg_fraction: float = 0.5,
    bg_fraction: float = 0.1,
    bins: int = 10,
    kernel_size: int | None = None,
    colour_context: int = 0,
    windows_per_batch: int = 32,
) -> tuple[torch.Tensor, list[int]]:
    """Soft foreground maps (steps 1-4) of every window of a whole video, as uint8, on the CPU.

    ``frames`` is a uint8 T, H, W, 3 array or tensor. For each start s of ``window_starts`` the
    map is that of the clip ``frames[s : s + window * stride : stride]``: ``soft_foreground_map``
    on that clip, scaled to 0..255 and rounded, except that the window's motion and mean frame
    come from exact integer sums (``window_sums``) rather than from float32 values ``k/255``.
    The two mean frames can differ by one float32 ulp, which moves a pixel whose colour sits on
    a bin edge of step 3 to the neighbouring bin; the maps then differ by a few levels at a few
    pixels (measured in ``docs/method.md``, bounded in the tests).

    ``colour_context`` > 0 is our option, not the paper's: step 4's colour histograms of each
    window then pool the seeds of the ``colour_context`` windows on each side as well (more
    samples of what the mover and the background look like), while each pixel is still scored
    on its own window's mean frame. 0 is the paper's step 4, one window at a time.

    The windows go through steps 1-3 in batches of ``windows_per_batch`` (memory stays bounded
    on long videos), then through step 4. Returns (maps uint8 N, H, W, starts).
    """
    frames = frames.numpy(force=True) if torch.is_tensor(frames) else frames
    starts = window_starts(len(frames), window=window, stride=stride, hop=hop)
    groups = [starts[i : i + windows_per_batch] for i in range(0, len(starts), windows_per_batch)]
    ids, fg_counts, bg_counts = [], [], []
    for group in groups:  # steps 1-3, and the seed histograms of step 4
        motion, colour = window_sums(frames, group, window=window, stride=stride)
        saliency = torch.from_numpy(motion / np.float32(UINT8_MAX * (window - 1)))  # G, H, W
        mean_frame = np.ascontiguousarray(colour.transpose(0, 3, 1, 2)).astype(np.float32)
        mean_frame /= np.float32(UINT8_MAX * window)  # G, 3, H, W in [0, 1]
        fg, bg = seed_regions(blur_and_normalise(saliency, kernel_size), fg_fraction=fg_fraction,
                              bg_fraction=bg_fraction)  # G, H, W each
        ids.append(colour_ids(torch.from_numpy(mean_frame), bins=bins))  # G, H, W
        counts = colour_histograms(ids[-1], fg, bg, bins=bins)  # G, bins**3 each
        fg_counts.append(counts[0])
        bg_counts.append(counts[1])
    sizes = [len(group) for group in groups]
    fg_counts = pool_neighbouring_windows(torch.cat(fg_counts), colour_context).split(sizes)
    bg_counts = pool_neighbouring_windows(torch.cat(bg_counts), colour_context).split(sizes)
    maps = []
    for group_ids, group_fg, group_bg in zip(ids, fg_counts, bg_counts):  # step 4
        soft = likelihood_from_histograms(group_ids, group_fg, group_bg, kernel_size=kernel_size)  # G, H, W
        maps.append(torch.round(soft * UINT8_MAX).to(torch.uint8))
    return torch.cat(maps), starts
