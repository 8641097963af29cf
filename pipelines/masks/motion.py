"""The ``motion`` mask method: camera-compensated motion, one function per step.

The paper's map (``pipelines.fame``, steps 1-4) takes motion to be "the frame difference", which
on handheld footage is mostly the camera's: every edge of the background moves, and the colour
step then spreads that error over whatever shares the background's colours (DAVIS 2016: ROC-AUC
0.55 against the true masks, ``docs/method.md``). This method removes the camera's motion before
taking any motion evidence, as background-subtraction and motion-segmentation work does: a
dominant-motion model fitted robustly, the independently moving object left as the outliers.

1. ``evidence_frames``        the frames the windows pair up, grey, box-averaged to a short side
                              of at least 64 (``map_factor``)
2. ``estimate_camera_motion`` a global affine motion between each frame and the one ``pair_gap``
                              later: Gauss-Newton (Lucas-Kanade) with Tukey weights, coarse to
                              fine from the identity, so the mover is down-weighted as an outlier
3. ``compensated_difference`` ``|x_t - warp(x_{t+gap})|``: the change the camera does not explain
4. ``window_evidence``        its mean over each window's frame pairs, blurred (a fifth of the
                              short side) and min-max normalised
5. ``neighbouring_windows``   each window's map averaged with its neighbours' (weights 1-2-1)
6. ``with_centre_prior``      plus a weak centred Gaussian (0.3, sigma a quarter of each side):
                              where the motion says little, the subject is more likely near the
                              middle of the frame, where camera operators put it

``video_motion_maps`` runs them over every window of a video (the same windows as the paper's
method) and returns uint8 maps averaged down once more to a short side of at least 32:
blurred with a kernel of a fifth of their side, they carry nothing finer (measured: the same
ROC-AUC to the third decimal), so the cache stores them at that size, a sixteenth of the
frames' pixels, and the readers rescale them to the frames before cropping. ``docs/method.md`` measures each step and the cost.

``video_adaptive_maps`` (``--masks adaptive``, the default of ``fame preprocess``) adapts steps
3-6 to the footage: each pair also gets its still-camera difference and a verdict on whether
the camera moved (``camera_moves``), the still-camera evidence is taken over every frame a clip
samples and the next (``adjacent_evidence``), each window keeps the more concentrated of the
two kinds of evidence (``choose_evidence``), and the centre prior is weighted by the evidence's
spread and the camera's motion (``adaptive_centre_weight``).
``video_translation_difference_maps`` is a baseline.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.data.clips import UINT8_MAX
from pipelines.fame import blur_kernel_size, gaussian_blur, min_max_normalise
from pipelines.masks.window_maps import window_starts

#: bumped whenever the maps this method computes change; recorded in the cache's settings
VERSION = 1
#: the same for the ``adaptive`` maps (``video_adaptive_maps``); 3: windows every ``ADAPTIVE_HOP``
#: frames, each averaged with its neighbours within ``NEIGHBOUR_FRAMES`` (2: every 16 frames, one
#: neighbour on each side); 2: still-camera evidence from frames one stride apart (1: the
#: compensated pairs' frames, ``pair_gap`` apart)
ADAPTIVE_VERSION = 3
#: frames between the starts of the ``adaptive`` maps' windows (``pipelines.masks.methods`` keeps
#: the same number): every clip pretraining samples then lies at most 4 frames off a window
ADAPTIVE_HOP = 8
#: step 5 of the ``adaptive`` maps averages each window with the windows starting up to this many
#: frames before and after it, whatever the hop (at hop 16: one on each side, as ``motion``)
NEIGHBOUR_FRAMES = 16

#: short side (at least) of the frames the motion evidence is computed at
MAP_SHORT_SIDE = 64
#: short side (at least) of the maps as stored: the evidence's blocks averaged once more
STORE_SHORT_SIDE = 32
#: short sides of the coarse-to-fine levels at which the camera motion is fitted
PYRAMID = (8, 16, 32)
#: Gauss-Newton iterations at each pyramid level (the coarse levels do the large moves)
ITERATIONS = (3, 2, 1)
#: Tukey's biweight constant, in robust standard deviations of the residual (95% efficiency)
TUKEY_C = 4.685
#: the smallest range of a window's evidence that is rescaled to [0, 1]: one grey level
NOISE_FLOOR = 1 / UINT8_MAX
#: from the median absolute deviation to a standard deviation, for normal noise
MAD_TO_SIGMA = 1.4826

# The ``adaptive`` method (``video_adaptive_maps``)
#: a pair's camera moved if its fitted motion shifts the frame by more than this many evidence
#: pixels (corners and centre, on average): below it, compensating changes little anyway
#: (1.0 measured 0.004 lower on DAVIS: pairs with a small real motion lost their compensation)
CAMERA_MOTION_PIXELS = 0.5
#: the still-camera evidence is a candidate only where the fitted camera motion leaves at least
#: this share of the still-camera difference unexplained (below it, the camera clearly moved)
MIN_UNEXPLAINED = 0.5
#: a map's pixels above this share of its range count towards the area its evidence covers
AREA_LEVEL = 0.5
#: the centre prior's weight per unit of evidence area, when the camera moves (evidence over a
#: tenth of the frame gets the ``motion`` method's fixed 0.3 under a moving camera)
PRIOR_PER_AREA = 3.0
#: the pair medians of ``camera_moves`` are taken over every this-many-th pixel (as the fit's scale)
MEDIAN_EVERY = 16
#: the least weight of the prior: a tie-breaker where a window shows no motion at all
PRIOR_FLOOR = 0.02


def map_factor(height: int, width: int, short_side: int = MAP_SHORT_SIDE) -> int:
    """The whole number of pixels per map pixel along each side: the largest that keeps the
    map's short side at least ``short_side`` (1 for images smaller than that)."""
    return max(1, min(height, width) // short_side)


def map_shape(height: int, width: int, short_side: int = MAP_SHORT_SIDE,
              store_short_side: int = STORE_SHORT_SIDE) -> tuple[int, int]:
    """The stored map's size for frames of height x width: each side divided by ``map_factor``
    for the evidence, then once more for storing (the last few rows or columns, fewer than a
    factor, are left out)."""
    factor = map_factor(height, width, short_side)
    height, width = height // factor, width // factor
    factor = map_factor(height, width, store_short_side)
    return height // factor, width // factor


def _area_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N, C, H, W -> N, C, size (box averages; a no-op at the same size)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="area")


def evidence_frames(frames: np.ndarray, indices, factor: int) -> torch.Tensor:
    """Step 1: frames ``indices`` of a uint8 T, H, W, 3 video in grey (the mean of R, G and B),
    each ``factor`` x ``factor`` block averaged: float32 N, H // factor, W // factor in [0, 1].
    Blocks and channels are summed in integers (16-bit up to a factor of 6) before anything
    becomes a float."""
    total = factor * factor * 3 * UINT8_MAX
    accumulator = torch.int16 if total <= torch.iinfo(torch.int16).max else torch.int32
    picked = torch.from_numpy(np.ascontiguousarray(frames[indices]))  # N, H, W, 3 uint8
    height, width = (side // factor * factor for side in picked.shape[1:3])
    sums = picked[:, 0:height:factor].to(accumulator)  # N, H / factor, W, 3
    for row in range(1, factor):
        sums += picked[:, row:height:factor]
    blocks = sums[:, :, 0:width:factor].clone()  # N, h, W / factor, 3
    for column in range(1, factor):
        blocks += sums[:, :, column:width:factor]
    grey = blocks.sum(dim=-1, dtype=accumulator)  # N, h, w: sums of factor**2 * 3 values
    return grey.to(torch.float32).div_(total)


def _identity(n: int) -> torch.Tensor:
    return torch.eye(2, 3).repeat(n, 1, 1)  # n, 2, 3


def warp(images: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``images`` (N, C, H, W) at the affine map ``theta`` (N, 2, 3, normalised coordinates
    as in ``F.affine_grid``). Returns the warped images and where they were sampled inside the
    picture (bool N, H, W)."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # N, H, W, 2
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = grid.abs().amax(dim=-1) <= 1  # N, H, W
    return warped, inside


def _gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Twice the central differences of N, H, W images along x and y (zero on the border)."""
    gx = F.pad(images[..., 2:] - images[..., :-2], (1, 1))
    gy = F.pad(images[..., 2:, :] - images[..., :-2, :], (0, 0, 1, 1))
    return gx, gy


class _Level:
    """What every Gauss-Newton step at one pyramid level shares: the pixel coordinates, in
    ``F.affine_grid``'s normalised units, as the basis ``[x, y, 1]`` (P, 3) of the Jacobian
    and the six products ``x^2, xy, x, y^2, y, 1`` (P, 6) of the Hessian's 3x3 blocks."""

    #: where block entry (k, l) of [x, y, 1] x [x, y, 1] finds its product
    BLOCK_ENTRY = torch.tensor([[0, 1, 2], [1, 3, 4], [2, 4, 5]])

    def __init__(self, height: int, width: int):
        ys = torch.linspace(-1 + 1 / height, 1 - 1 / height, height)
        xs = torch.linspace(-1 + 1 / width, 1 - 1 / width, width)
        y, x = (c.flatten() for c in torch.meshgrid(ys, xs, indexing="ij"))  # P each
        one = torch.ones_like(x)
        self.basis = torch.stack([x, y, one], dim=1)  # P, 3
        self.products = torch.stack([x * x, x * y, x, y * y, y, one], dim=1)  # P, 6
        self.shape = (height, width)


@functools.lru_cache(maxsize=64)
def _level(height: int, width: int) -> _Level:
    """The shared constants of one level size, made once per process."""
    return _Level(height, width)


def _affine_step(reference: torch.Tensor, moving: torch.Tensor, theta: torch.Tensor, level: _Level,
                 *, scale_every: int = 4) -> torch.Tensor:
    """One robust Gauss-Newton step of ``theta`` so that ``warp(moving, theta)`` matches ``reference``
    (both N, H, W grey). Pixels are weighted by Tukey's biweight of their residual, scaled by
    the pair's median absolute residual (taken over every ``scale_every``-th pixel), so a moving
    object does not pull the fit.

    The affine Jacobian of a pixel is ``[gx, gy] (x) [x, y, 1]``, so the 6x6 normal equations
    are assembled from three weighted gradient products against the six coordinate products,
    and the right-hand side comes out in theta's 2x3 shape.
    """
    n, height, width = reference.shape
    grid = (level.basis @ theta.transpose(1, 2)).view(n, height, width, 2)  # = F.affine_grid(theta)
    warped = F.grid_sample(moving[:, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    warped = warped[:, 0]  # N, H, W
    residual = (warped - reference).flatten(1)  # N, P
    gx, gy = _gradients(warped)
    gx = gx.flatten(1) * (width / 4)  # central difference (halved) per unit of normalised x
    gy = gy.flatten(1) * (height / 4)
    scale = MAD_TO_SIGMA * residual[:, ::scale_every].abs().median(dim=1, keepdim=True).values  # N, 1
    u = residual / (TUKEY_C * scale.clamp(min=1e-4))
    weight = (1 - u * u).clamp(min=0).square() * (grid.flatten(1, 2).abs().amax(dim=-1) <= 1)  # N, P
    weighted_gx, weighted_gy = weight * gx, weight * gy
    rhs = torch.stack([weighted_gx * residual, weighted_gy * residual], dim=1) @ level.basis  # N, 2, 3
    sums = torch.stack([weighted_gx * gx, weighted_gx * gy, weighted_gy * gy], dim=1) @ level.products  # N, 3, 6
    blocks = sums[:, :, level.BLOCK_ENTRY]  # N, 3 (xx, xy, yy), 3, 3
    hessian = torch.cat([torch.cat([blocks[:, 0], blocks[:, 1]], dim=2),
                         torch.cat([blocks[:, 1], blocks[:, 2]], dim=2)], dim=1)  # N, 6, 6
    hessian.diagonal(dim1=1, dim2=2).add_(1e-6)
    return theta - torch.linalg.solve(hessian, rhs.reshape(n, 6, 1)).view(n, 2, 3)


def _pyramid_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    scale = min(1.0, short_side / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def estimate_camera_motion(
    reference: torch.Tensor, moving: torch.Tensor, *, pyramid=PYRAMID, iterations=ITERATIONS
) -> torch.Tensor:
    """Step 2: the dominant (camera) motion between pairs of grey frames (N, H, W each), as the
    affine ``theta`` (N, 2, 3) with ``warp(moving, theta) ~ reference``.

    Fitted coarse to fine, starting from the identity at a short side of ``pyramid[0]``, with
    ``iterations`` robust Gauss-Newton steps per level (one number, or one per level) (``_affine_step``): the direct, dense
    counterpart of matching features with RANSAC, at a fraction of its cost on small frames.
    """
    theta = _identity(len(reference))
    steps = tuple(iterations) if isinstance(iterations, (tuple, list)) else (iterations,) * len(pyramid)
    for short_side, count in zip(pyramid, steps, strict=True):
        size = _pyramid_shape(*reference.shape[-2:], short_side)
        small_reference = _area_resize(reference[:, None], size)[:, 0]
        small_moving = _area_resize(moving[:, None], size)[:, 0]
        level = _level(*size)
        for _ in range(count):
            theta = _affine_step(small_reference, small_moving, theta, level)
    return theta


def compensated_difference(reference: torch.Tensor, moving: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Step 3: ``|reference - warp(moving, theta)|`` for grey frames N, H, W: the change the
    camera's motion does not explain. Zero where the warp samples outside the picture."""
    return _compensated_difference_and_inside(reference, moving, theta)[0]


def _compensated_difference_and_inside(reference: torch.Tensor, moving: torch.Tensor,
                                       theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``compensated_difference`` and where the warp stayed inside the picture (bool N, H, W)."""
    warped, inside = warp(moving[:, None], theta)
    return (warped[:, 0] - reference).abs() * inside, inside


def window_evidence(
    differences: torch.Tensor, pair_rows: torch.Tensor, *, blur_fraction: float = 0.2, noise_floor: float = NOISE_FLOOR
) -> torch.Tensor:
    """Step 4: each window's mean compensated difference over its frame pairs, blurred with a
    Gaussian of about ``blur_fraction`` of the short side and rescaled to [0, 1] by its own range,
    or by ``noise_floor`` when the range is smaller: a still window (range below one grey level)
    stays near 0 instead of having its rounding noise stretched into a map.
    ``differences`` is P, H, W; ``pair_rows`` (G, pairs per window) indexes it. Returns G, H, W."""
    return rescaled_evidence(window_means(differences, pair_rows), blur_fraction=blur_fraction, noise_floor=noise_floor)


def window_means(differences: torch.Tensor, pair_rows: torch.Tensor) -> torch.Tensor:
    """Each window's mean over its rows of ``differences`` (P, H, W; ``pair_rows`` G, k): G, H, W;
    step 4 of both methods. Window by window: one gather of every window's rows at once measured
    2-7x slower with windows every 8 frames (a G x k copy of the maps), running sums slower too;
    ``motion``'s maps are the same bit for bit either way."""
    return torch.stack([differences.index_select(0, rows).mean(dim=0) for rows in pair_rows])


def rescaled_evidence(evidence: torch.Tensor, *, blur_fraction: float = 0.2, noise_floor: float = NOISE_FLOOR) -> torch.Tensor:
    """The rest of step 4 for windows' mean differences (G, H, W): blurred and rescaled to [0, 1]
    as ``window_evidence`` says."""
    kernel = max(3, blur_kernel_size(min(evidence.shape[-2:]), blur_fraction))
    blurred = gaussian_blur(evidence, kernel).flatten(1)  # G, H*W
    low = blurred.amin(dim=1, keepdim=True)
    spread = (blurred.amax(dim=1, keepdim=True) - low).clamp(min=noise_floor)
    return ((blurred - low) / spread).view_as(evidence)  # G, H, W


def neighbouring_windows(maps: torch.Tensor, reach: int = 1) -> torch.Tensor:
    """Step 5: each window's map averaged with the ``reach`` windows before and after it, weight 1
    each, and itself, weight 2 (the ends repeat themselves; ``reach`` 1: weights 1-2-1): a mover
    seen in one window is likely there in the next."""
    if len(maps) < 2:
        return maps
    count = len(maps)
    padded = torch.cat([maps[:1]] * reach + [maps] + [maps[-1:]] * reach)  # G + 2 reach, H, W
    total = padded[:count]
    for offset in range(1, 2 * reach + 1):  # reach 1: (a + 2 b) + c, as before the option
        shifted = padded[offset : offset + count]
        total = total + (2 * shifted if offset == reach else shifted)
    return total / (2 * reach + 2)


def centre_prior(height: int, width: int, *, sigma: float = 0.25) -> torch.Tensor:
    """A centred Gaussian, ``sigma`` a fraction of each side, 1 at the centre: H, W."""
    ys = (torch.arange(height) + 0.5) / height - 0.5
    xs = (torch.arange(width) + 0.5) / width - 0.5
    return torch.exp(-(ys[:, None] ** 2 + xs[None] ** 2) / (2 * sigma**2))


def with_centre_prior(maps: torch.Tensor, *, weight: float = 0.3, sigma: float = 0.25) -> torch.Tensor:
    """Step 6: ``maps + weight * centre_prior``, min-max normalised (G, H, W). A tie-breaker where
    the motion evidence is flat, never more than ``weight`` of the map's range."""
    return min_max_normalise(maps + weight * centre_prior(*maps.shape[-2:], sigma=sigma))


def _window_pairs(starts: list[int], *, window: int, stride: int, gap: int) -> tuple[list[int], list[int], torch.Tensor]:
    """The frames the windows' pairs use, the first frame of every distinct pair (t, t + gap),
    and for each window the rows of its pairs (G, pairs per window). A window starting at s
    pairs s, s + gap, s + 2 gap, ... up to its last frame."""
    per_window = (window - 1) * stride // gap
    firsts = sorted({s + gap * k for s in starts for k in range(per_window)})
    row_of = {frame: row for row, frame in enumerate(firsts)}
    used = sorted(set(firsts) | {f + gap for f in firsts})
    rows = torch.tensor([[row_of[s + gap * k] for k in range(per_window)] for s in starts])
    return used, firsts, rows


def still_camera_difference(reference: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """``|reference - moving|`` for grey frames N, H, W: the change if the camera did not move
    (the paper's step 1, on the evidence frames)."""
    return (moving - reference).abs()


def sampled_grey(frames: np.ndarray, indices, factor: int) -> torch.Tensor:
    """Step 1 as ``adjacent_evidence`` takes it, cheaper: frames ``indices`` of a uint8 T, H, W, 3
    video at ``evidence_frames``' size, each pixel the green value of the top-left frame pixel
    of its ``factor`` x ``factor`` block (green carries most of the luma, 0.587 in BT.601):
    float32 N, H // factor, W // factor in [0, 1]. ``adjacent_evidence`` pairs every frame a
    clip samples, twice the frames of the compensated pairs, and reading one value in
    ``3 factor**2`` keeps that cheap; block means of the grey measured no better once the maps
    are blurred (``docs/method.md``)."""
    height, width = frames.shape[1] // factor * factor, frames.shape[2] // factor * factor
    frames = np.asarray(frames)
    if not frames.flags.writeable:  # torch shares the memory and would warn (a read-only map, a broadcast)
        frames = frames.copy()
    lines = torch.from_numpy(frames)[:, 0:height:factor].index_select(0, torch.tensor(list(indices)))
    return lines[:, :, 0:width:factor, 1].to(torch.float32).div_(UINT8_MAX)  # N, h, w


def adjacent_evidence(frames: np.ndarray, starts: list[int], *, window: int, stride: int,
                      map_short_side: int = MAP_SHORT_SIDE) -> torch.Tensor:
    """The still-camera evidence of ``video_adaptive_maps``: each window's mean
    ``still_camera_difference`` over its pairs of frames one ``stride`` apart (the frames a clip
    samples, each with the next), on ``sampled_grey`` frames at the evidence maps' size:
    G, h, w, not yet blurred (``rescaled_evidence`` does that).

    These pairs are closer in time than the compensated ones (``pair_gap``, two strides), and
    measured better (``docs/method.md``): under a slowly moving camera the still-camera map is
    less often taken for the more concentrated one by mistake (DAVIS ``tennis``: in half of its
    windows with two-stride pairs, in none with these), and on fixed cameras it is taken more
    often and is sharper (``fgseg-dev``: 0.952 -> 0.955 ROC-AUC)."""
    used, firsts, rows = _window_pairs(starts, window=window, stride=stride, gap=stride)
    grey = sampled_grey(frames, used, map_factor(frames.shape[1], frames.shape[2], map_short_side))  # U, h, w
    position = {frame: i for i, frame in enumerate(used)}
    first = torch.tensor([position[f] for f in firsts])
    second = torch.tensor([position[f + stride] for f in firsts])
    # most pairs are neighbours in ``grey``: difference those in one pass, the rest (a window that
    # starts between two others' frames) one by one
    differences = still_camera_difference(grey[:-1], grey[1:])  # row i: frames i and i + 1 of grey
    apart = (second != first + 1).nonzero().flatten()
    row_of_pair = first.clone()
    if len(apart):
        row_of_pair[apart] = len(differences) + torch.arange(len(apart))
        differences = torch.cat([differences, still_camera_difference(grey[first[apart]], grey[second[apart]])])
    return window_means(differences, row_of_pair[rows])  # G, h, w


def camera_displacement(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """How far the affine ``theta`` (N, 2, 3) moves the frame's four corners and its centre, in
    pixels of an H x W frame, on average: N."""
    points = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    moved = points @ theta.transpose(1, 2)  # N, 5, 2
    return ((moved - points[:, :2]) * torch.tensor([width / 2, height / 2])).norm(dim=-1).mean(dim=1)


def camera_moves(compensated: torch.Tensor, inside: torch.Tensor, still: torch.Tensor, theta: torch.Tensor,
                 *, min_pixels: float = CAMERA_MOTION_PIXELS) -> torch.Tensor:
    """Whether each pair's camera moved (bool N): its fitted motion moves the frame by more than
    ``min_pixels`` (``camera_displacement``) *and* explains the pair better than a still camera
    does (the median compensated difference, where the warp stays inside the picture, is below
    the median still-camera difference; both medians over every ``MEDIAN_EVERY``-th pixel). On a fixed camera the fit can lock onto a large mover or
    onto water and report a shift; the second test rejects such a fit when it leaves the rest of
    the frame worse aligned than no motion at all."""
    height, width = compensated.shape[-2:]
    every = MEDIAN_EVERY
    kept = compensated.flatten(1)[:, ::every].masked_fill(~inside.flatten(1)[:, ::every], float("nan"))
    compensated_median = kept.nanmedian(dim=1).values.nan_to_num(nan=float("inf"))  # nothing inside: no fit
    still_median = still.flatten(1)[:, ::every].median(dim=1).values.clamp(min=NOISE_FLOOR)
    return (camera_displacement(theta, height, width) > min_pixels) & (compensated_median < still_median)


def evidence_area(maps: torch.Tensor, *, level: float = AREA_LEVEL) -> torch.Tensor:
    """The share of each map's pixels above ``level`` (G, H, W maps in [0, 1] -> G): how spread
    the motion evidence is. A mover makes a compact blob (a small share); a camera motion left
    uncompensated, or compensated wrongly, and dynamic texture (water, foliage) spread it."""
    return (maps > level).float().flatten(1).mean(dim=1)


def more_concentrated(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per window, whether the second of two maps (G, H, W each) covers less of the frame than the
    first (``evidence_area``; ties: the first): bool G."""
    return evidence_area(second) < evidence_area(first)


def choose_evidence(compensated_maps: torch.Tensor, still_maps: torch.Tensor, compensated_mean: torch.Tensor,
                    still_mean: torch.Tensor, *, min_unexplained: float = MIN_UNEXPLAINED) -> torch.Tensor:
    """Per window, the compensated or the still-camera map (G, H, W each): the still-camera map
    where it is the more concentrated (``more_concentrated``) and the camera's fitted motion
    left at least ``min_unexplained`` of the still-camera difference unexplained (the windows'
    mean differences, G each). Where the fit explains most of the change the camera did move,
    and a still-camera map, however compact it looks once rescaled, shows the camera's motion
    (e.g. the strongest edges of a smooth background)."""
    use_still = more_concentrated(compensated_maps, still_maps) & (compensated_mean >= min_unexplained * still_mean)
    return torch.where(use_still[:, None, None], still_maps, compensated_maps)


def adaptive_centre_weight(maps: torch.Tensor, moving_share: torch.Tensor, *, per_area: float = PRIOR_PER_AREA,
                           floor: float = PRIOR_FLOOR) -> torch.Tensor:
    """The centre prior's weight for each window (G): ``per_area`` times the share of the frame
    its evidence covers, times the share of its frame pairs whose camera moved, at least
    ``floor``. Camera operators centre what they follow, and spread evidence says little, so
    the prior counts when the camera moves and the evidence is diffuse; a fixed camera
    (surveillance, a tripod) puts its subject anywhere and gets ``floor``, a tie-breaker for
    windows without motion."""
    return (per_area * evidence_area(maps) * moving_share).clamp(min=floor)


def _pair_differences(frames: np.ndarray, starts: list[int], *, window: int, stride: int, gap: int,
                      map_short_side: int, pyramid, iterations, pairs_per_batch: int, still: bool = False):
    """Steps 1-3 for every distinct frame pair of the windows: (compensated differences P, h, w,
    the rows of each window's pairs G, k, and with ``still``: the still-camera differences
    P, h, w and whether each pair's camera moved, P; else None, None). With ``still``, a pair
    whose camera did not move (``camera_moves``: no shift, or a fit worse than none) has its
    still-camera difference in place of the compensated one."""
    used, firsts, pair_rows = _window_pairs(starts, window=window, stride=stride, gap=gap)
    grey = evidence_frames(frames, used, map_factor(frames.shape[1], frames.shape[2], map_short_side))  # U, h, w
    position = {frame: i for i, frame in enumerate(used)}
    first = torch.tensor([position[f] for f in firsts])
    second = torch.tensor([position[f + gap] for f in firsts])
    differences, still_differences, moves = [], [], []
    for batch in torch.arange(len(firsts)).split(pairs_per_batch):  # memory stays bounded on long videos
        reference, moving = grey[first[batch]], grey[second[batch]]
        theta = estimate_camera_motion(reference, moving, pyramid=pyramid, iterations=iterations)  # B, 2, 3
        compensated, inside = _compensated_difference_and_inside(reference, moving, theta)  # B, h, w each
        differences.append(compensated)
        if still:
            plain = still_camera_difference(reference, moving)
            moved = camera_moves(compensated, inside, plain, theta)
            compensated[~moved] = plain[~moved]  # a rejected fit is not used
            still_differences.append(plain)
            moves.append(moved)
    if not still:
        return torch.cat(differences), pair_rows, None, None
    return torch.cat(differences), pair_rows, torch.cat(still_differences), torch.cat(moves)


def _pair_gap(window: int, stride: int, pair_gap: int | None) -> int:
    span = (window - 1) * stride
    gap = min(2 * stride, span) if pair_gap is None else pair_gap
    if gap % stride or not stride <= gap <= span:
        raise ValueError(f"pair_gap {gap} must be a multiple of the stride {stride} no longer than a window ({span})")
    return gap


def block_means(maps: torch.Tensor, short_side: int) -> torch.Tensor:
    """Maps G, h, w averaged over whole blocks to a short side of at least ``short_side``."""
    factor = map_factor(*maps.shape[-2:], short_side)
    if factor > 1:
        height, width = (side // factor * factor for side in maps.shape[-2:])
        maps = F.avg_pool2d(maps[:, None, :height, :width], factor)[:, 0]
    return maps


def _stored(maps: torch.Tensor, store_short_side: int) -> torch.Tensor:
    """[0, 1] maps G, h, w averaged over whole blocks to a short side of at least
    ``store_short_side``, as uint8."""
    return torch.round(block_means(maps, store_short_side) * UINT8_MAX).to(torch.uint8)


def video_translation_difference_maps(
    frames, *, window: int = 16, stride: int = 2, hop: int = 16, blur_fraction: float = 0.1,
    map_short_side: int = MAP_SHORT_SIDE, store_short_side: int = STORE_SHORT_SIDE, pairs_per_batch: int = 64,
) -> tuple[torch.Tensor, list[int]]:
    """A baseline: the paper's step 1 on frames aligned by a global translation. Each window's
    consecutive frames (one stride apart) are aligned by the translation part of the fitted
    camera motion (``estimate_camera_motion``), differenced, averaged over the window, blurred
    with the paper's kernel (a tenth of the short side) and min-max normalised: no affine
    terms, no neighbouring windows, no prior. Same return as ``video_motion_maps``."""
    frames = frames.numpy(force=True) if torch.is_tensor(frames) else np.asarray(frames)
    starts = window_starts(len(frames), window=window, stride=stride, hop=hop)
    used, firsts, pair_rows = _window_pairs(starts, window=window, stride=stride, gap=stride)
    grey = evidence_frames(frames, used, map_factor(frames.shape[1], frames.shape[2], map_short_side))
    position = {frame: i for i, frame in enumerate(used)}
    first = torch.tensor([position[f] for f in firsts])
    second = torch.tensor([position[f + stride] for f in firsts])
    differences = []
    for batch in torch.arange(len(firsts)).split(pairs_per_batch):
        reference, moving = grey[first[batch]], grey[second[batch]]
        theta = estimate_camera_motion(reference, moving)
        theta[:, :, :2] = torch.eye(2)  # the translation alone
        differences.append(compensated_difference(reference, moving, theta))
    maps = window_evidence(torch.cat(differences), pair_rows, blur_fraction=blur_fraction)
    return _stored(maps, store_short_side), starts


def video_motion_maps(
    frames,
    *,
    window: int = 16,
    stride: int = 2,
    hop: int = 16,
    pair_gap: int | None = None,
    map_short_side: int = MAP_SHORT_SIDE,
    store_short_side: int = STORE_SHORT_SIDE,
    pyramid=PYRAMID,
    iterations=ITERATIONS,
    blur_fraction: float = 0.2,
    centre_weight: float = 0.3,
    centre_sigma: float = 0.25,
    pairs_per_batch: int = 64,
) -> tuple[torch.Tensor, list[int]]:
    """Steps 1-6 for every window of a whole video (uint8 T, H, W, 3 array or tensor), on the CPU.

    Windows are those of ``pipelines.masks.window_maps.window_starts``, as for the paper's method. Inside a
    window, frames ``pair_gap`` apart are paired (default: two strides, every other frame of the
    window, which halves the cost of one stride and lets slow movers move further; at most the
    window's span); each distinct pair is aligned once, however many windows share it. The maps
    are computed at a short side of ``map_short_side`` and stored at ``store_short_side`` (whole
    blocks averaged: they are blurred with a kernel of a fifth of their side, so the smaller
    map holds what they carry). Returns (maps uint8 G, h, w at ``map_shape(H, W,
    map_short_side, store_short_side)``, starts).
    """
    frames = frames.numpy(force=True) if torch.is_tensor(frames) else np.asarray(frames)
    starts = window_starts(len(frames), window=window, stride=stride, hop=hop)
    gap = _pair_gap(window, stride, pair_gap)
    differences, pair_rows, _, _ = _pair_differences(
        frames, starts, window=window, stride=stride, gap=gap, map_short_side=map_short_side, pyramid=pyramid,
        iterations=iterations, pairs_per_batch=pairs_per_batch)
    maps = window_evidence(differences, pair_rows, blur_fraction=blur_fraction)  # G, h, w
    maps = with_centre_prior(neighbouring_windows(maps), weight=centre_weight, sigma=centre_sigma)
    return _stored(maps, store_short_side), starts


def video_adaptive_maps(
    frames,
    *,
    window: int = 16,
    stride: int = 2,
    hop: int = ADAPTIVE_HOP,
    pair_gap: int | None = None,
    map_short_side: int = MAP_SHORT_SIDE,
    store_short_side: int = STORE_SHORT_SIDE,
    pyramid=PYRAMID,
    iterations=ITERATIONS,
    blur_fraction: float = 0.2,
    neighbour_frames: int = NEIGHBOUR_FRAMES,
    prior_per_area: float = PRIOR_PER_AREA,
    centre_sigma: float = 0.25,
    pairs_per_batch: int = 64,
) -> tuple[torch.Tensor, list[int]]:
    """The ``adaptive`` maps: ``video_motion_maps``' steps, adapted to what each window shows.

    Each pair gives two differences, compensated for the fitted camera motion and as if the
    camera were still, and a verdict on whether the camera moved (``camera_moves``; where it
    did not, the compensated difference is the still-camera one). The still-camera evidence
    of a window is taken over every frame it samples and the next (``adjacent_evidence``, one
    stride apart; the compensated pairs are ``pair_gap`` apart). Each
    kind is turned into window maps as in steps 4-5, and each window keeps the map whose
    evidence is more concentrated, unless the fit explained most of the change
    (``choose_evidence``): on a fixed camera a spurious fit (locked onto the mover, or onto
    water) spreads the compensated evidence, and under a moving camera the still-camera
    difference covers the whole background. The centre prior
    is then added with a weight that grows with the spread of the kept evidence and with the
    share of the window's pairs whose camera moved (``adaptive_centre_weight``): none beyond a
    tie-breaker on a fixed camera. Same arguments and return as ``video_motion_maps``, with
    ``prior_per_area`` in place of a fixed ``centre_weight``, windows every ``ADAPTIVE_HOP``
    frames by default, and step 5 over the windows starting within ``neighbour_frames`` of each
    (``neighbouring_windows``; the same time as ``motion``'s one window on each side at hop 16).
    Windows every 8 frames put a window's frames where a clip's are: a clip pretraining samples
    is at most 4 frames off its window, not 8 (``docs/method.md``: +0.006 ROC-AUC on fixed
    cameras pooled over clips, none lost on handheld footage).
    """
    frames = frames.numpy(force=True) if torch.is_tensor(frames) else np.asarray(frames)
    starts = window_starts(len(frames), window=window, stride=stride, hop=hop)
    gap = _pair_gap(window, stride, pair_gap)
    compensated, pair_rows, still, moves = _pair_differences(
        frames, starts, window=window, stride=stride, gap=gap, map_short_side=map_short_side, pyramid=pyramid,
        iterations=iterations, pairs_per_batch=pairs_per_batch, still=True)
    reach = max(1, round(neighbour_frames / hop))
    # steps 4-6 on the stored maps' blocks, a quarter of the evidence's pixels: windows every 8
    # frames are twice as many (fgseg-dev: 0.969 ROC-AUC pooled at 1.36-1.42x motion's cost;
    # blurred before the blocks are averaged, 0.970 at 1.56x)
    compensated_means = block_means(window_means(compensated, pair_rows), store_short_side)
    adjacent = block_means(adjacent_evidence(frames, starts, window=window, stride=stride, map_short_side=map_short_side),
                           store_short_side)
    compensated_maps = neighbouring_windows(rescaled_evidence(compensated_means, blur_fraction=blur_fraction), reach)
    still_maps = neighbouring_windows(rescaled_evidence(adjacent, blur_fraction=blur_fraction), reach)
    maps = choose_evidence(compensated_maps, still_maps, compensated.flatten(1).mean(dim=1)[pair_rows].mean(dim=1),
                           still.flatten(1).mean(dim=1)[pair_rows].mean(dim=1))  # G, h, w
    weight = adaptive_centre_weight(maps, moves.float()[pair_rows].mean(dim=1), per_area=prior_per_area)
    maps = min_max_normalise(maps + weight[:, None, None] * centre_prior(*maps.shape[-2:], sigma=centre_sigma))
    return _stored(maps, store_short_side), starts
