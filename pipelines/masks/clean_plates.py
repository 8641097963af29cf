"""Clean plates: a clip's background with its own subject taken out.

The background-swap test sets (``--bg-swap``, swap-retrieval's gallery) paste one video's
foreground onto another video's clip. Pasted onto the raw clip, that background still holds
its own subject and its motion wherever the pasted foreground does not cover it; where
subjects are small (a fixed camera watching a street) the "background" item is then nearly
the original clip, and a model that recognises the subject's motion picks it and is counted
as taking the background shortcut. Film makers call a shot of the set without the actors a
*clean plate*; this module makes one for every background clip before anything is pasted
on it:

1. **The subject's hole** (``subject_hole``): the clip's subject mask (the true foreground of
   each frame, or the cache's soft map at a generous share) dilated by ``dilation`` pixels,
   so that the subject's edge (blended pixels, compression ringing, a shadow's rim) goes
   with it and no colour of the subject survives at the border.
2. **Filled from the clip's own background**:

   - *still camera* (``camera_is_still``: the pixels outside the holes change little from
     frame to frame): each hole pixel takes the median of the same pixel in the frames of
     the clip where it is background (``fill_from_other_frames``), the background the
     subject walked in front of;
   - *moving camera*, and pixels the subject covers in every frame: a spatial fill from the
     surroundings (``fill_from_surroundings``, a push-pull pyramid: the hole takes the
     weighted mean of the nearest background at the coarsest scale that reaches it, blended
     back up). With a moving camera the hole is the union of the subject over the clip, held
     still, so no filled shape moves along the subject's path.

Nothing of the subject's colour enters the fill (the dilated hole is excluded from every
average) and the filled area has no edge of its own; ``tests/test_clean_plates.py`` measures
both, and ``tests/test_swap_retrieval.py`` scores an encoder that looks at the filled hole
alone (its outline and its mean colour) at chance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Pixels the subject's mask grows by before it is removed, at the resolution of the clip.
DILATION = 2
# Mean absolute change of a background pixel between consecutive frames of a clip (0..255)
# below which the camera counts as still. On the real dev footage (8-frame clips at stride
# 4, crop 64) fixed cameras measure 0.1-4 (a busy road 10-15: its other cars move), handheld
# clips 4.4-40, most above 6. Wrongly taken as still, a slowly panning clip's hole takes
# the median of other background pixels, still no colour of its subject.
STILL_CAMERA_CHANGE = 4.0
# The grey (0..255 scale) a hole takes when a frame has no background pixel at all.
EMPTY_FILL = 127.5


def dilate(masks: torch.Tensor, radius: int = DILATION) -> torch.Tensor:
    """Grow bool ``..., H, W`` masks by ``radius`` pixels (a square structuring element)."""
    if radius <= 0:
        return masks.bool()
    shape = masks.shape
    flat = masks.reshape(-1, 1, *shape[-2:]).float()  # N, 1, H, W
    grown = F.max_pool2d(flat, 2 * radius + 1, stride=1, padding=radius)
    return grown.reshape(shape) > 0


def subject_hole(subject: torch.Tensor, *, still: bool, dilation: int = DILATION) -> torch.Tensor:
    """Step 1: what is removed from a clip, bool T, H, W from its subject masks (bool T, H, W):
    each frame's dilated mask when the camera is still (its other frames fill it), else the
    dilated union over the clip, the same in every frame."""
    hole = dilate(subject, dilation)  # T, H, W
    return hole if still else hole.any(dim=0, keepdim=True).expand_as(hole)


def background_change(clip: torch.Tensor, hole: torch.Tensor) -> float:
    """Median over consecutive frame pairs of the mean absolute change (0..255 scale) of the
    pixels that are background in the whole clip: near 0 for a still camera. ``clip`` 3, T,
    H, W (any dtype, 0..255), ``hole`` bool T, H, W."""
    if clip.shape[1] < 2:
        return 0.0
    outside = ~hole.any(dim=0)  # H, W
    if not bool(outside.any()):
        return float("inf")  # nothing to judge by: treat as moving
    frames = clip.float()
    change = (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=0)  # T-1, H, W
    return float(change[:, outside].mean(dim=1).median())


def camera_is_still(clip: torch.Tensor, subject: torch.Tensor, *, threshold: float = STILL_CAMERA_CHANGE,
                    dilation: int = DILATION) -> bool:
    """Whether the background of ``clip`` (3, T, H, W, 0..255) holds still around its subject
    (bool T, H, W): ``background_change`` below ``threshold``."""
    return background_change(clip, dilate(subject, dilation)) < threshold


def fill_from_surroundings(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Step 2, spatial: every hole pixel of ``images`` (float N, C, H, W, 0..255) from the background
    around it (``hole`` bool N, H, W). A push-pull pyramid: halve the image, averaging only
    background pixels, until every cell holds some background; then, back up, each level's
    cells keep their background mean weighted by their background share and take the rest
    from the coarser level (bilinear). Background pixels come back exactly; an image with no
    background at all becomes ``EMPTY_FILL`` grey."""
    weight = (~hole).to(images.dtype)[:, None]  # N, 1, H, W
    levels = [(images * weight, weight)]
    while levels[-1][1].shape[-1] > 1 or levels[-1][1].shape[-2] > 1:
        value, w = levels[-1]
        if bool((w > 0).all()):
            break
        levels.append((F.avg_pool2d(value, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    value, w = levels[-1]
    filled = torch.where(w > 0, value / w.clamp_min(1e-12), torch.full_like(value, EMPTY_FILL))
    for value, w in reversed(levels[:-1]):
        coarse = F.interpolate(filled, size=value.shape[-2:], mode="bilinear", align_corners=False)
        share = w.clamp(0, 1)
        filled = value / w.clamp_min(1e-12) * share + coarse * (1 - share)  # the weight of w's mean is w
    return torch.where(hole[:, None], filled, images)


def fill_from_other_frames(clip: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 2, temporal (still camera): each hole pixel of ``clip`` (float C, T, H, W) takes the
    median of the same pixel over the frames where it is not in ``hole`` (bool T, H, W).
    Returns the filled clip and the pixels no frame shows (bool H, W), left for the spatial fill."""
    visible = ~hole  # T, H, W
    samples = clip.masked_fill(hole[None], float("nan"))  # C, T, H, W
    plate = samples.nanmedian(dim=1).values  # C, H, W (NaN where never visible)
    never = ~visible.any(dim=0)  # H, W
    plate = torch.nan_to_num(plate, nan=0.0)
    filled = torch.where(hole[None], plate[:, None].expand_as(clip), clip)
    return filled, never


def plate_hole(clip: torch.Tensor, subject: torch.Tensor, *, dilation: int = DILATION,
               still_threshold: float = STILL_CAMERA_CHANGE, still: bool | None = None) -> tuple[torch.Tensor, bool]:
    """Step 1 for one clip (3, T, H, W, 0..255) and its subject masks (bool T, H, W): the hole
    that ``clean_plate`` fills (bool T, H, W) and whether the camera counted as still
    (``still``: already decided)."""
    if still is None:
        still = camera_is_still(clip, subject, threshold=still_threshold, dilation=dilation)
    return subject_hole(subject, still=still, dilation=dilation), still


def clean_plate(clip: torch.Tensor, subject: torch.Tensor, *, dilation: int = DILATION,
                still_threshold: float = STILL_CAMERA_CHANGE, still: bool | None = None) -> torch.Tensor:
    """One clip (3, T, H, W, uint8 or float on the 0..255 scale) without its subject (bool
    T, H, W, or H, W for one mask over the clip): steps 1-2. ``still``: whether the camera is
    still, if already decided (``camera_is_still``). Returns the clip's dtype."""
    if subject.dim() == 2:
        subject = subject[None].expand(clip.shape[1], -1, -1)
    subject = subject.bool()
    if not bool(subject.any()):
        return clip.clone()
    hole, still = plate_hole(clip, subject, dilation=dilation, still_threshold=still_threshold, still=still)  # T, H, W
    frames = clip.float()
    if still:
        frames, never = fill_from_other_frames(frames, hole)
        hole = hole & never[None]  # what no frame showed: filled from the surroundings below
    if bool(hole.any()):
        frames = fill_from_surroundings(frames.transpose(0, 1), hole).transpose(0, 1)  # per frame: T, 3, H, W
    return frames.round().clamp(0, 255).to(clip.dtype) if not clip.is_floating_point() else frames.to(clip.dtype)


def clean_plates(clips: torch.Tensor, subjects: torch.Tensor, **kwargs) -> torch.Tensor:
    """``clean_plate`` of each clip: ``clips`` N, 3, T, H, W, ``subjects`` bool N, T, H, W (or N, H, W)."""
    return torch.stack([clean_plate(clip, subject, **kwargs) for clip, subject in zip(clips, subjects)])
