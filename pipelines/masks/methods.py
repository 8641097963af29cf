"""The named ways ``fame preprocess --masks`` computes a video's soft foreground maps.

Every method maps a whole video (uint8 T, H, W, 3) to one soft map per temporal window
(uint8 G, h, w, the windows of ``pipelines.masks.window_maps.window_starts``), so the cache, the
readers and pretraining treat them alike. A map may be smaller than the frames: readers
rescale it with the frames' crop (``pipelines.data.clips.crop_resize_map``).

- ``adaptive`` (the default since version 2): ``motion`` adapted to the footage
  (``pipelines.masks.motion.video_adaptive_maps``): per window, compensated or still-camera evidence,
  whichever is more concentrated, and a centre prior weighted by how much the camera moves and
  how spread the evidence is; the method that measured best on real footage, handheld and
  fixed cameras (``docs/method.md``). Its windows start every 8 frames (version 3), the
  others' every 16: ``MaskMethod.hop``, unless ``fame preprocess --hop`` says otherwise.
- ``motion`` (the default before): camera-compensated motion (``pipelines.masks.motion``), kept
  bit for bit; caches made with it open, resume and train as before.
- ``paper``: the paper's steps 1-4 (``pipelines.masks.window_maps.video_soft_maps``), bit for bit as this
  project computed them before the methods had names; caches made then are ``paper`` caches.
- ``frame-difference``, ``translation-difference`` and ``centre``: the simple baselines every
  method is judged beside: the paper's step 1 alone (mean absolute frame difference, blurred),
  the same on frames aligned by a global translation, and a centred Gaussian that never looks
  at the video. Cached like the others, e.g. for ablations.

A method's ``version`` is bumped whenever the maps it computes change; the cache records
method and version, and a resume with another is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

# torch and the methods' modules are imported when a method runs, not here: the settings of
# `fame preprocess` check names against this registry, and `fame --help` must not load torch.

DEFAULT_METHOD = "adaptive"
#: ``pipelines.masks.motion.VERSION`` and ``ADAPTIVE_VERSION`` (a test keeps them equal): bump
#: both when the maps change
MOTION_VERSION = 1
ADAPTIVE_VERSION = 3
#: frames between the ``adaptive`` maps' windows: ``pipelines.masks.motion.ADAPTIVE_HOP`` (a test
#: keeps them equal); the other methods' windows are ``DEFAULT_HOP`` frames apart
ADAPTIVE_HOP = 8
DEFAULT_HOP = 16
#: what a cache made before ``--masks`` existed holds
LEGACY_METHOD = "paper"


@dataclass(frozen=True)
class MaskParameters:
    """What a method may need besides the frames (the paper's constants for ``paper``)."""

    window: int = 16  # frames per mask window
    stride: int = 2  # temporal stride inside a window
    hop: int | None = None  # frames between window starts; None: the method's own (``MaskMethod.hop``)
    fg_fraction: float = 0.5  # paper, step 2
    bg_fraction: float = 0.1  # paper, step 2
    colour_bins: int = 10  # paper, step 3
    colour_context: int = 0  # paper, step 4 (ours: windows on each side pooled)


@dataclass(frozen=True)
class MaskMethod:
    name: str
    version: int
    summary: str  # one line, for --help and `fame info`
    compute: Callable[[np.ndarray, MaskParameters], tuple[torch.Tensor, list[int]]]
    uses_colour_settings: bool = False  # whether fg/bg fractions, colour bins and context matter
    hop: int = DEFAULT_HOP  # frames between its windows' starts unless asked otherwise (``fame preprocess --hop``)
    #: a simple baseline (one line of work on the frames): ``benchmarks/bench_masks.py --clip-every``
    #: computes it on each scored clip's own frames, as a user would, instead of on the cache's windows
    baseline: bool = False


def _paper(frames: np.ndarray, p: MaskParameters) -> tuple[torch.Tensor, list[int]]:
    from pipelines.masks import window_maps

    return window_maps.video_soft_maps(
        frames, window=p.window, stride=p.stride, hop=p.hop, fg_fraction=p.fg_fraction,
        bg_fraction=p.bg_fraction, bins=p.colour_bins, colour_context=p.colour_context,
    )


def _motion(frames: np.ndarray, p: MaskParameters) -> tuple[torch.Tensor, list[int]]:
    from pipelines.masks import motion as motion_masks

    return motion_masks.video_motion_maps(frames, window=p.window, stride=p.stride, hop=p.hop)


def _adaptive(frames: np.ndarray, p: MaskParameters) -> tuple[torch.Tensor, list[int]]:
    from pipelines.masks import motion as motion_masks

    return motion_masks.video_adaptive_maps(frames, window=p.window, stride=p.stride, hop=p.hop)


def _translation_difference(frames: np.ndarray, p: MaskParameters) -> tuple[torch.Tensor, list[int]]:
    from pipelines.masks import motion as motion_masks

    return motion_masks.video_translation_difference_maps(frames, window=p.window, stride=p.stride, hop=p.hop)


def _frame_difference(frames: np.ndarray, p: MaskParameters) -> tuple[torch.Tensor, list[int]]:
    """The paper's step 1 alone on each window, at the frames' resolution."""
    import torch

    from pipelines import fame
    from pipelines.data.clips import UINT8_MAX
    from pipelines.masks import window_maps

    starts = window_maps.window_starts(len(frames), window=p.window, stride=p.stride, hop=p.hop)
    motion, _ = window_maps.window_sums(np.asarray(frames), starts, window=p.window, stride=p.stride)  # G, H, W
    saliency = fame.blur_and_normalise(torch.from_numpy(motion), None)
    return torch.round(saliency * UINT8_MAX).to(torch.uint8), starts


def _centre(frames: np.ndarray, p: MaskParameters) -> tuple[torch.Tensor, list[int]]:
    """The centred Gaussian of the ``motion`` method's prior, the same for every window."""
    import torch

    from pipelines.data.clips import UINT8_MAX
    from pipelines.masks import motion as motion_masks, window_maps

    starts = window_maps.window_starts(len(frames), window=p.window, stride=p.stride, hop=p.hop)
    prior = motion_masks.centre_prior(*motion_masks.map_shape(frames.shape[1], frames.shape[2]))
    maps = torch.round(prior * UINT8_MAX).to(torch.uint8)
    return maps.expand(len(starts), *maps.shape).clone(), starts


METHODS: dict[str, MaskMethod] = {
    method.name: method
    for method in (
        MaskMethod("motion", MOTION_VERSION,
                   "camera-compensated motion: robust affine alignment, then differences (ours)", _motion),
        MaskMethod("paper", 1, "the paper's frame difference + colour statistics (steps 1-4)", _paper,
                   uses_colour_settings=True),
        MaskMethod("adaptive", ADAPTIVE_VERSION,
                   "motion adapted to the footage: compensated or still-camera evidence per window, "
                   "a centre prior weighted by camera motion and spread (ours)", _adaptive, hop=ADAPTIVE_HOP),
        MaskMethod("frame-difference", 1, "baseline: the paper's step 1 alone, no camera compensation",
                   _frame_difference, baseline=True),
        MaskMethod("translation-difference", 1,
                   "baseline: the paper's step 1 on frames aligned by a global translation", _translation_difference,
                   baseline=True),
        MaskMethod("centre", 1, "baseline: a centred Gaussian that never looks at the video", _centre, baseline=True),
    )
}


def get_method(name: str) -> MaskMethod:
    """The method called ``name``; ValueError (one line, listing the choices) otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"--masks {name!r}: choose one of {', '.join(METHODS)}") from None


def with_hop(parameters: MaskParameters, method: str) -> MaskParameters:
    """``parameters``, their hop the method's own (``MaskMethod.hop``) where it is None."""
    if parameters.hop is not None:
        return parameters
    return replace(parameters, hop=get_method(method).hop)


def compute_video_masks(frames, method: str, parameters: MaskParameters = MaskParameters()) -> tuple[np.ndarray, list[int]]:
    """The soft maps of every window of a video (uint8 T, H, W, 3): (uint8 G, h, w, starts), the
    windows every ``parameters.hop`` frames, or the method's own hop where that is None.

    A video shorter than one window's span gets one window, its frames with the last one
    repeated (``window_maps.pad_to_window``, the clip sampler's rule): starts ``[0]``."""
    import torch

    from pipelines.masks import window_maps

    frames = frames.numpy(force=True) if torch.is_tensor(frames) else np.asarray(frames)
    frames, _ = window_maps.pad_to_window(frames, window=parameters.window, stride=parameters.stride)
    maps, starts = get_method(method).compute(frames, with_hop(parameters, method))
    return maps.numpy(), list(starts)
