"""FAME: Foreground-bAckground MErging (Ding et al., CVPR 2022), one function per step.

In the paper's words, "we extract the moving foreground out of background regions via the
frame difference and color statistics, and shuffle the background regions among the videos".
The augmentation, as the paper's code runs it on every batch of query clips:

1. ``motion_saliency``        mean absolute frame difference, blurred, min-max normalised
2. ``seed_regions``           top 50% of pixels are foreground seeds, bottom 10% background
3. ``colour_ids``             temporal mean frame -> HSV -> hue on the saturation circle -> 10x10x10 ids
4. ``colour_likelihood``      p = Pfg(c) / (Pfg(c) + Pbg(c)), blurred, min-max normalised
5. ``select_foreground``      the hard mask: top ``beta`` of the pixels
6. ``merge_foreground_background``  x[perm] * (1 - M) + x * M

Step 4 is ``colour_histograms`` (of the seeds' colour ids) then ``likelihood_from_histograms``.
``soft_foreground_map`` is steps 1-4, ``fame_merge`` steps 5-6 and ``fame_augment`` steps 1-6.
Preprocessing computes steps 1-4 offline, once per temporal window of a whole video
(``pipelines.masks.window_maps``); see ``docs/method.md``.

Every function is pure (inputs are never modified) and takes its device from its input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# The paper's blur: sigma = kernel_size / 3 (the authors' GaussianBlur2d((k, k), (k / 3, k / 3))).
KERNEL_SIZE_PER_SIGMA = 3.0


# ---------------------------------------------------------------------------------------------
# Helpers shared by the steps
# ---------------------------------------------------------------------------------------------


def blur_kernel_size(side: int, fraction: float = 0.1) -> int:
    """The paper's odd blur kernel, about ``fraction`` of the crop side: ``int(0.1 * crop) // 2 * 2 + 1``."""
    return int(fraction * side) // 2 * 2 + 1


def gaussian_blur(maps: torch.Tensor, kernel_size: int, sigma: float | None = None) -> torch.Tensor:
    """Blur each map with a normalised, separable Gaussian of odd size ``kernel_size``.

    ``sigma`` defaults to ``kernel_size / 3`` as in the paper. Borders are padded by
    reflection without repeating the edge pixel (``dcb|abcd|cba``), which is what the authors'
    ``kornia.filters.GaussianBlur2d`` does by default (``border_type="reflect"``).
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    _, height, width = maps.shape  # B, H, W
    radius = kernel_size // 2
    if radius >= min(height, width):
        raise ValueError(f"kernel_size {kernel_size} is too large for {height}x{width} maps")
    if sigma is None:
        sigma = kernel_size / KERNEL_SIZE_PER_SIGMA
    offsets = torch.arange(kernel_size, dtype=torch.float64) - radius
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    taps = (taps / taps.sum()).tolist()  # k
    padded = F.pad(maps[:, None], (radius, radius, radius, radius), mode="reflect")[:, 0]  # B, H+2r, W+2r
    # Separable convolution written as in-place sums of shifted copies: on CPU this is about
    # ten times faster than conv2d for one-channel maps, and it runs unchanged on any device.
    rows = padded[:, :, :width] * taps[0]  # B, H+2r, W
    for i, tap in enumerate(taps[1:], start=1):
        rows.add_(padded[:, :, i : i + width], alpha=tap)
    blurred = rows[:, :height] * taps[0]  # B, H, W
    for i, tap in enumerate(taps[1:], start=1):
        blurred.add_(rows[:, i : i + height], alpha=tap)
    return blurred


def min_max_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Rescale each map to [0, 1]; a constant map becomes all zeros."""
    flat = maps.flatten(1)  # B, H*W
    low = flat.amin(dim=1, keepdim=True)  # B, 1 (amin/amax: no argmin/argmax, ~10x faster on CPU than min/max)
    spread = flat.amax(dim=1, keepdim=True) - low  # B, 1
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    return ((flat - low) / spread).view_as(maps)  # B, H, W


def blur_and_normalise(maps: torch.Tensor, kernel_size: int | None) -> torch.Tensor:
    """The blur and rescaling that end steps 1 and 4 (B, H, W); ``kernel_size`` None: the paper's."""
    if kernel_size is None:
        kernel_size = blur_kernel_size(min(maps.shape[-2:]))
    return min_max_normalise(gaussian_blur(maps, kernel_size))  # B, H, W


def _largest(flat: torch.Tensor, count: int) -> torch.Tensor:
    """True on the ``count`` largest values of each row; ties go to the earlier pixel.

    The same pixels as the first ``count`` of a stable descending sort, found in linear
    time: the count-th largest value by ``kthvalue``, then ties taken in row-major order.
    """
    pixels = flat.shape[1]
    if count <= 0:
        return torch.zeros_like(flat, dtype=torch.bool)
    if count >= pixels:
        return torch.ones_like(flat, dtype=torch.bool)
    threshold = torch.kthvalue(flat, pixels - count + 1, dim=1, keepdim=True).values  # B, 1
    at_least = flat >= threshold
    if bool((at_least.sum(dim=1) == count).all()):  # the usual case: no tie straddles the threshold
        return at_least
    above = flat > threshold
    ties = flat == threshold
    wanted = count - above.sum(dim=1, keepdim=True)  # B, 1: how many ties still to take
    return above | (ties & (torch.cumsum(ties, dim=1) <= wanted))


def _smallest(flat: torch.Tensor, count: int) -> torch.Tensor:
    """True on the ``count`` smallest values of each row; ties go to the later pixel (the
    last ``count`` of a stable descending sort)."""
    pixels = flat.shape[1]
    if count <= 0:
        return torch.zeros_like(flat, dtype=torch.bool)
    if count >= pixels:
        return torch.ones_like(flat, dtype=torch.bool)
    threshold = torch.kthvalue(flat, count, dim=1, keepdim=True).values  # B, 1
    at_most = flat <= threshold
    if bool((at_most.sum(dim=1) == count).all()):  # the usual case: no tie straddles the threshold
        return at_most
    below = flat < threshold
    ties = flat == threshold
    tie_count = ties.sum(dim=1, keepdim=True)  # B, 1
    wanted = count - below.sum(dim=1, keepdim=True)  # B, 1: how many ties still to take, from the end
    ties_from_here = tie_count - torch.cumsum(ties, dim=1) + ties.long()  # ties at this pixel or later
    return below | (ties & (ties_from_here <= wanted))


def _top_k_mask(values: torch.Tensor, counts: int) -> torch.Tensor:
    """True on the ``counts`` largest pixels of each map; ties go to the earlier pixel (row-major)."""
    return _largest(values.flatten(1), counts).view_as(values)  # B, H, W


# ---------------------------------------------------------------------------------------------
# Steps 1-4: the soft foreground map
# ---------------------------------------------------------------------------------------------


def motion_saliency(clip: torch.Tensor, *, kernel_size: int | None = None) -> torch.Tensor:
    """Step 1: where the clip moves.

    ``d = mean_t( sum_c |x_t - x_{t+1}| )`` over the clip (B, C, T, H, W, values in [0, 1]),
    Gaussian-blurred (kernel about 10% of the shorter side, sigma k/3) and min-max normalised
    per sample. Returns B, H, W in [0, 1].
    """
    if clip.shape[2] < 2:
        raise ValueError("motion saliency needs at least two frames")
    difference = (clip[:, :, 1:] - clip[:, :, :-1]).abs().sum(dim=1).mean(dim=1)  # B, H, W
    return blur_and_normalise(difference, kernel_size)


def seed_regions(
    saliency: torch.Tensor, *, fg_fraction: float = 0.5, bg_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 2: the top 50% of pixels by motion are foreground seeds, the bottom 10% background.

    Counts are ``int(fraction * H * W)`` as in the authors' code. Pixels are ranked as by one
    stable sort, ties going to the earlier pixel, so the two seed sets never overlap when the fractions
    sum to at most 1 (even on a motionless clip). Returns two bool B, H, W masks.
    """
    pixels = saliency.shape[-2] * saliency.shape[-1]
    flat = saliency.flatten(1)  # B, H*W
    fg = _largest(flat, int(fg_fraction * pixels))  # B, H*W
    bg = _smallest(flat, int(bg_fraction * pixels))  # B, H*W
    return fg.view_as(saliency), bg.view_as(saliency)


def rgb_to_hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB (B, 3, H, W in [0, 1]) to hue, saturation and value, each B, H, W in [0, 1].

    Same convention as ``skimage.color.rgb2hsv``: hue is a fraction of a turn, grey has hue 0.
    """
    red, green, blue = rgb.unbind(dim=1)  # B, H, W each
    value = rgb.amax(dim=1)  # B, H, W
    chroma = value - rgb.amin(dim=1)  # B, H, W
    coloured = chroma > 0
    safe_chroma = torch.where(coloured, chroma, torch.ones_like(chroma))
    saturation = torch.where(coloured, chroma / torch.where(value > 0, value, torch.ones_like(value)), 0)
    sector = torch.where(
        blue == value,
        4 + (red - green) / safe_chroma,
        torch.where(green == value, 2 + (blue - red) / safe_chroma, (green - blue) / safe_chroma),
    )  # B, H, W, in sixths of a turn
    hue = torch.where(coloured, torch.remainder(sector / 6, 1), 0)
    return hue, saturation, value


def colour_ids(mean_frame: torch.Tensor, *, bins: int = 10) -> torch.Tensor:
    """Step 3: quantised colour of every pixel of the temporal mean frame.

    The frame (B, 3, H, W, RGB in [0, 1]) goes to HSV; hue is put on the saturation circle,
    ``hx = (s cos(2 pi h) + 1) / 2``, ``hy = (s sin(2 pi h) + 1) / 2``, and hx, hy, v are each
    rounded to ``bins`` levels. Returns long B, H, W ids ``qx + bins * qy + bins**2 * qv`` in
    [0, bins**3) (the authors' ids minus one).

    Hue is taken in turns (as the paper writes it). The authors' code feeds kornia's hue, which
    is in radians, to ``cos(2 pi h)``; we follow the paper's formula, not that slip.
    """
    hue, saturation, value = rgb_to_hsv(mean_frame)  # B, H, W each
    angle = math.tau * hue
    hue_x = (saturation * torch.cos(angle) + 1) / 2  # B, H, W in [0, 1]
    hue_y = (saturation * torch.sin(angle) + 1) / 2  # B, H, W in [0, 1]
    ids = torch.round(hue_x * (bins - 1))  # whole numbers below bins**3: exact in float32
    ids += bins * torch.round(hue_y * (bins - 1))
    ids += bins**2 * torch.round(value * (bins - 1))
    return ids.long()  # B, H, W


def colour_histograms(
    ids: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, *, bins: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 4, first half: the histograms of the colour ids of the foreground seeds and of the
    background seeds, each float32 B, bins**3 (counts of pixels)."""
    colours = bins**3
    flat_ids = ids.flatten(1)  # B, H*W
    histograms = []
    for seeds in (fg, bg):
        counts = torch.zeros(ids.shape[0], colours, device=ids.device)  # B, bins**3
        histograms.append(counts.scatter_add_(1, flat_ids, seeds.flatten(1).float()))
    return histograms[0], histograms[1]


def likelihood_from_histograms(
    ids: torch.Tensor,
    fg_counts: torch.Tensor,
    bg_counts: torch.Tensor,
    *,
    kernel_size: int | None = None,
    bg_pseudocount: float = 1.0,
) -> torch.Tensor:
    """Step 4, second half: ``p = Pfg(c) / (Pfg(c) + Pbg(c))`` for every pixel's colour id.

    The seed histograms (B, bins**3) are normalised to distributions, after adding
    ``bg_pseudocount`` to every background bin; the per-pixel ratio is then blurred and
    min-max normalised. Returns float32 B, H, W in [0, 1].
    """
    flat_ids = ids.flatten(1)  # B, H*W
    bg_counts = bg_counts + bg_pseudocount  # B, bins**3
    fg_total = fg_counts.sum(dim=1, keepdim=True)  # B, 1
    p_fg = fg_counts / torch.where(fg_total > 0, fg_total, torch.ones_like(fg_total))
    p_bg = bg_counts / bg_counts.sum(dim=1, keepdim=True)
    ratio = p_fg / (p_fg + p_bg)  # B, bins**3: each colour's p, then looked up per pixel (one gather)
    likelihood = ratio.gather(1, flat_ids).view(ids.shape).to(torch.float32)  # B, H, W
    return blur_and_normalise(likelihood, kernel_size)


def colour_likelihood(
    ids: torch.Tensor,
    fg: torch.Tensor,
    bg: torch.Tensor,
    *,
    bins: int = 10,
    kernel_size: int | None = None,
    bg_pseudocount: float = 1.0,
) -> torch.Tensor:
    """Step 4: how much more likely each pixel's colour is among the foreground seeds.

    Histogram the colour ids of the foreground and of the background seeds (adding
    ``bg_pseudocount`` = 1 to every background bin), normalise each to a distribution, and give
    each pixel ``p = Pfg(c) / (Pfg(c) + Pbg(c))``; then blur (same kernel as step 1, by default
    about 10% of the shorter side) and min-max normalise. Returns float32 B, H, W in [0, 1].
    """
    fg_counts, bg_counts = colour_histograms(ids, fg, bg, bins=bins)  # B, bins**3 each
    return likelihood_from_histograms(ids, fg_counts, bg_counts, kernel_size=kernel_size, bg_pseudocount=bg_pseudocount)


def _refine_with_colour(
    saliency: torch.Tensor,
    mean_frame: torch.Tensor,
    *,
    fg_fraction: float,
    bg_fraction: float,
    bins: int,
    kernel_size: int | None,
) -> torch.Tensor:
    """Steps 2-4 given the step-1 saliency (B, H, W) and the temporal mean frame (B, 3, H, W)."""
    fg, bg = seed_regions(saliency, fg_fraction=fg_fraction, bg_fraction=bg_fraction)
    ids = colour_ids(mean_frame, bins=bins)
    return colour_likelihood(ids, fg, bg, bins=bins, kernel_size=kernel_size)  # B, H, W


def soft_foreground_map(
    clip: torch.Tensor,
    *,
    fg_fraction: float = 0.5,
    bg_fraction: float = 0.1,
    bins: int = 10,
    kernel_size: int | None = None,
) -> torch.Tensor:
    """Steps 1-4 on a clip (B, C, T, H, W, values in [0, 1]): the soft foreground map, B, H, W in [0, 1].

    ``kernel_size`` defaults to ``blur_kernel_size(min(H, W))``.
    """
    saliency = motion_saliency(clip, kernel_size=kernel_size)  # B, H, W
    # The mean frame is summed in float64, where sums of float32 values in [0, 1] are exact, so it
    # does not depend on summation order or batch layout. This matters: a hue of a whole quarter
    # turn, frequent with integer RGB such as (157, 120, 194), puts hx or hy on a bin edge of
    # step 3, where one ulp changes the pixel's colour id (the integer sums of
    # window_maps.video_soft_maps can land one ulp away; docs/method.md measures what that changes).
    mean_frame = clip.mean(dim=2, dtype=torch.float64).to(clip.dtype)  # B, C, H, W
    return _refine_with_colour(
        saliency,
        mean_frame,
        fg_fraction=fg_fraction,
        bg_fraction=bg_fraction,
        bins=bins,
        kernel_size=kernel_size,
    )


# ---------------------------------------------------------------------------------------------
# Steps 5-6: the hard mask and the merge
# ---------------------------------------------------------------------------------------------


def select_foreground(soft: torch.Tensor, *, beta: float | torch.Tensor = 0.5) -> torch.Tensor:
    """Step 5: the hard mask M is the top ``beta`` ("portion of the foreground") of the pixels.

    Exactly ``round(beta * H * W)`` pixels per sample are True; ties go to the earlier pixel.
    ``beta`` is one fraction for the batch, as in the paper, or one per sample (a B tensor, e.g.
    from ``fitted_foreground_fraction``). Returns bool B, H, W.
    """
    pixels = soft.shape[-2] * soft.shape[-1]
    if not torch.is_tensor(beta):
        return _top_k_mask(soft, round(beta * pixels))
    counts = torch.round(beta.double() * pixels).long().tolist()  # B
    return torch.stack([_top_k_mask(soft[i : i + 1], count)[0] for i, count in enumerate(counts)])  # B, H, W


def fitted_foreground_fraction(
    soft: torch.Tensor, *, bins: int = 64, lowest: float = 0.1, highest: float = 0.5
) -> torch.Tensor:
    """Our ``--beta auto`` (not the paper's): the share of each soft map (B, H, W) above the map's
    own Otsu threshold, clipped to [``lowest``, ``highest``]. Returns float32 B.

    A fixed beta of 0.5 keeps half of every clip, though the mover usually covers far less (DAVIS
    2016: 19% on average), so what is kept beyond it is the clip's own background. Otsu's
    threshold splits each map's histogram (``bins`` levels of its min-max range) where the
    between-class variance is largest: a map with one clear peak keeps about the peak. The
    bounds keep some foreground in every clip and never more than the paper's half.
    """
    flat = soft.flatten(1).to(torch.float32)  # B, P
    low = flat.amin(dim=1, keepdim=True)
    spread = (flat.amax(dim=1, keepdim=True) - low).clamp(min=1e-12)
    levels = ((flat - low) / spread * bins).long().clamp(max=bins - 1)  # B, P in [0, bins)
    counts = torch.zeros(len(flat), bins, device=flat.device).scatter_add_(1, levels, torch.ones_like(flat))
    share = counts / flat.shape[1]  # B, bins
    centres = (torch.arange(bins, device=flat.device, dtype=torch.float32) + 0.5)[None]  # 1, bins
    below = share.cumsum(dim=1)  # B, bins: weight of levels <= k
    below_mean = (share * centres).cumsum(dim=1)
    total_mean = below_mean[:, -1:]
    between = (total_mean * below - below_mean) ** 2 / (below * (1 - below)).clamp(min=1e-12)  # B, bins
    between[:, -1] = -1  # a split must leave something above it
    split = between.argmax(dim=1, keepdim=True)  # B, 1: the last level of the background class
    above = 1 - below.gather(1, split)[:, 0]  # B
    return above.clamp(lowest, highest)


#: ``beta`` that asks for ``fitted_foreground_fraction`` of each map instead of one fixed share
BETA_AUTO = "auto"


def parse_beta(value) -> float | str:
    """A beta as given on a command line or in a recipe: a share in (0, 1), or ``"auto"``.
    Raises ValueError (one line) otherwise."""
    if isinstance(value, str) and value.strip().lower() == BETA_AUTO:
        return BETA_AUTO
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"beta {value!r}: give a share of the frame in (0, 1), or auto") from None
    if not 0 < share < 1:
        raise ValueError(f"beta {value!r}: give a share of the frame in (0, 1), or auto")
    return share


def foreground_fraction(soft: torch.Tensor, beta: float | str) -> float | torch.Tensor:
    """Step 5's share for the maps ``soft`` (B, H, W): ``beta`` itself, or with ``"auto"`` each
    map's ``fitted_foreground_fraction`` (a B tensor)."""
    return fitted_foreground_fraction(soft) if beta == BETA_AUTO else beta


def merge_foreground_background(
    clip: torch.Tensor,
    mask: torch.Tensor,
    perm: torch.Tensor | None = None,
    *,
    backgrounds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Step 6: ``x_fused = x[perm] * (1 - M) + x * M``, M (B, H, W) broadcast over C and T.

    The paper composes "the moving foreground region of the selected video onto the static
    background of others": clip i keeps its own foreground and takes the background of clip
    ``perm[i]``. ``backgrounds`` (B', C, T, H, W) takes the backgrounds from other clips than
    ``clip`` (the background-swap test sets pair each video with another one's clip); ``perm``
    then indexes into them, and None pairs clip i with background i. With a binary M the
    formula picks each pixel from one of the two clips, so it is computed as that choice:
    exact in any dtype (uint8 clips stay uint8). This is the one merge of the project:
    training, the ``--bg-swap`` and swap-retrieval test sets and ``visualize-masks`` call it.
    Returns B, C, T, H, W in the dtype of ``clip``.
    """
    source = clip if backgrounds is None else backgrounds
    background = source if perm is None else source[perm]  # B, C, T, H, W
    if background.shape != clip.shape:
        raise ValueError(f"backgrounds {tuple(background.shape)} do not match the clips {tuple(clip.shape)}")
    return torch.where(mask.bool()[:, None, None], clip, background.to(clip.dtype))  # B, C, T, H, W


def fame_merge(
    clip: torch.Tensor, soft: torch.Tensor, *, beta: float | str = 0.5, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 5-6 on a batch of clips (B, C, T, H, W, any dtype) and their soft maps (B, H, W):
    the hard mask is the top ``beta`` of each map (``select_foreground``; ``"auto"``: each map's
    ``fitted_foreground_fraction``) and each clip keeps it
    on the background of another clip of the batch (a ``random_derangement``). Returns the
    fused clips (dtype of ``clip``), the masks (bool B, H, W) and the permutation."""
    mask = select_foreground(soft, beta=foreground_fraction(soft, beta))  # B, H, W
    perm = random_derangement(clip.shape[0], generator=generator, device=clip.device)  # B
    return merge_foreground_background(clip, mask, perm), mask, perm


def random_derangement(
    n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed point when n > 1; identity when n == 1.

    The paper merges with a plain ``randperm``, so a clip sometimes gets its own background
    back and is left unchanged. We draw permutations until none maps a clip to itself, which
    samples uniformly among derangements (about e draws on average).
    """
    draw_device = generator.device if generator is not None else device
    identity = torch.arange(n, device=draw_device)
    while True:
        perm = torch.randperm(n, generator=generator, device=draw_device)
        if n == 1 or bool((perm != identity).all()):
            return perm if device is None else perm.to(device)


def fame_augment(
    clip: torch.Tensor, *, beta: float = 0.5, generator: torch.Generator | None = None, **map_kwargs
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1-6 on a batch of clips (B, C, T, H, W in [0, 1]), as the paper runs them online.

    ``map_kwargs`` go to ``soft_foreground_map``. Returns the fused clips (B, C, T, H, W), the
    hard masks (bool B, H, W) and the permutation whose backgrounds were used.
    """
    soft = soft_foreground_map(clip, **map_kwargs)  # B, H, W
    return fame_merge(clip, soft, beta=beta, generator=generator)


class FameAugment(nn.Module):
    """``fame_augment`` with its hyperparameters held; ``forward`` returns (fused, mask, perm)."""

    def __init__(
        self,
        *,
        beta: float = 0.5,
        fg_fraction: float = 0.5,
        bg_fraction: float = 0.1,
        bins: int = 10,
        kernel_size: int | None = None,
    ) -> None:
        super().__init__()
        self.beta = beta  # share of each clip kept as foreground (step 5)
        self.fg_fraction = fg_fraction  # share of pixels that seed the foreground (step 2)
        self.bg_fraction = bg_fraction  # share of pixels that seed the background (step 2)
        self.bins = bins  # colour levels per axis (step 3)
        self.kernel_size = kernel_size  # blur kernel; None: ~10% of the shorter side

    def forward(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return fame_augment(
            clip,
            beta=self.beta,
            generator=generator,
            fg_fraction=self.fg_fraction,
            bg_fraction=self.bg_fraction,
            bins=self.bins,
            kernel_size=self.kernel_size,
        )
