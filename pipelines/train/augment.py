"""The per-clip colour augmentations that follow FAME, batched on the training device.

The paper's code runs, after the merge, on the GPU and "same on frame" (one set of
parameters per clip, applied to all its frames): random grayscale (p 0.2), colour jitter
(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1; p 0.8), Gaussian blur (p 0.5,
sigma in [0.1, 2]) and normalisation with the Kinetics mean and std. Here each is a pure
function of clips ``B, C, T, H, W`` (floats in [0, 1]) and per-clip parameters;
``sample_augment_params`` draws the parameters and ``ClipAugment`` holds the
hyperparameters.

Deliberate choices, where the paper's code is vague or slips:

- Colour jitter follows torchvision's definitions (brightness and contrast multiply,
  saturation blends with the grey image, hue rotates in HSV). The four operations run in
  one random order per batch (as kornia, which the paper's code uses, draws its order once
  per call); a clip without jitter gets identity factors. Contrast blends with the mean
  grey level of the whole clip, not of each frame, so every frame of a clip gets the same
  operation.
- Blur uses the FAME kernel size (``int(0.1 * crop) // 2 * 2 + 1``) and draws sigma per
  clip; the paper's code draws one sigma when it builds its augmentation and keeps it for
  the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.fame import rgb_to_hsv, blur_kernel_size

# The normalisation of the paper's code (Kinetics-400 statistics).
MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)
# ITU-R 601-2 luma, as torchvision's rgb_to_grayscale.
LUMA = (0.299, 0.587, 0.114)
JITTER_OPERATIONS = ("brightness", "contrast", "saturation", "hue")
HUE_SECTORS = 6  # HSV -> RGB works in sixths of a turn


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentations for a batch: one entry per clip (all tensors ``B``)."""

    grayscale: Tensor  # bool: convert the clip to grey
    brightness: Tensor  # multiplier (1: unchanged)
    contrast: Tensor  # blend factor with the clip's mean grey level (1: unchanged)
    saturation: Tensor  # blend factor with the grey image (1: unchanged)
    hue: Tensor  # rotation in turns (0: unchanged)
    jitter_order: Tensor  # long 4: order of JITTER_OPERATIONS for the whole batch
    blur_sigma: Tensor  # Gaussian sigma in pixels (0: no blur)


def _uniform(low: float, high: float, n: int, generator: torch.Generator | None, device) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


@dataclass(frozen=True)
class AugmentStrengths:
    """How often and how strongly each per-clip augmentation applies (the paper's values)."""

    grayscale_p: float = 0.2  # share of clips turned grey
    jitter_p: float = 0.8  # share of clips colour-jittered
    brightness: float = 0.4  # brightness factor drawn in [1 - b, 1 + b]
    contrast: float = 0.4  # contrast factor drawn in [1 - c, 1 + c]
    saturation: float = 0.4  # saturation factor drawn in [1 - s, 1 + s]
    hue: float = 0.1  # hue rotation drawn in [-h, h] turns
    blur_p: float = 0.5  # share of clips blurred
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # blur sigma range in pixels


def sample_augment_params(
    batch: int, strengths: AugmentStrengths = AugmentStrengths(), *, generator: torch.Generator | None = None
) -> AugmentParams:
    """Draw the paper's augmentation parameters for ``batch`` clips (on the generator's device)."""
    device = generator.device if generator is not None else None
    k = strengths

    def chosen(p: float) -> Tensor:
        return torch.rand(batch, generator=generator, device=device) < p  # B

    def factor(strength: float, keep: Tensor, centre: float = 1.0) -> Tensor:
        drawn = _uniform(centre - strength, centre + strength, batch, generator, device)
        return torch.where(keep, drawn, torch.full_like(drawn, centre))  # B

    gray = chosen(k.grayscale_p)
    jitter = chosen(k.jitter_p)
    blur = chosen(k.blur_p)
    return AugmentParams(
        grayscale=gray,
        brightness=factor(k.brightness, jitter).clamp(min=0),
        contrast=factor(k.contrast, jitter).clamp(min=0),
        saturation=factor(k.saturation, jitter).clamp(min=0),
        hue=factor(k.hue, jitter, centre=0.0),
        jitter_order=torch.randperm(len(JITTER_OPERATIONS), generator=generator, device=device),
        blur_sigma=torch.where(blur, _uniform(*k.blur_sigma, batch, generator, device), 0.0),
    )


# ---------------------------------------------------------------------------------------------
# The operations: clips B, C, T, H, W in [0, 1], parameters B
# ---------------------------------------------------------------------------------------------


def _per_clip(values: Tensor, clips: Tensor) -> Tensor:
    """B parameters shaped to broadcast over B, C, T, H, W."""
    return values.to(clips.dtype).view(-1, 1, 1, 1, 1)


def to_grayscale(clips: Tensor) -> Tensor:
    """Luma of each pixel: B, 1, T, H, W."""
    weights = torch.tensor(LUMA, dtype=clips.dtype, device=clips.device).view(1, 3, 1, 1, 1)
    return (clips * weights).sum(dim=1, keepdim=True)


def random_grayscale(clips: Tensor, chosen: Tensor) -> Tensor:
    """Chosen clips become grey (three equal channels)."""
    return torch.where(chosen.view(-1, 1, 1, 1, 1), to_grayscale(clips).expand_as(clips), clips)


def adjust_brightness(clips: Tensor, factor: Tensor) -> Tensor:
    return (clips * _per_clip(factor, clips)).clamp(0, 1)


def adjust_contrast(clips: Tensor, factor: Tensor) -> Tensor:
    """Blend with the clip's mean grey level (one value per clip, over all its frames)."""
    mean = to_grayscale(clips).mean(dim=(1, 2, 3, 4), keepdim=True)  # B, 1, 1, 1, 1
    f = _per_clip(factor, clips)
    return (f * clips + (1 - f) * mean).clamp(0, 1)


def adjust_saturation(clips: Tensor, factor: Tensor) -> Tensor:
    f = _per_clip(factor, clips)
    return (f * clips + (1 - f) * to_grayscale(clips)).clamp(0, 1)


def hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """HSV (each ``B, ...``, hue in turns) to RGB stacked on dim 1."""
    channels = []
    for offset in (5, 3, 1):  # red, green, blue
        k = torch.remainder(offset + hue * HUE_SECTORS, HUE_SECTORS)
        channels.append(value - value * saturation * torch.minimum(k, 4 - k).clamp(0, 1))
    return torch.stack(channels, dim=1)


def adjust_hue(clips: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` turns."""
    hue, saturation, value = rgb_to_hsv(clips)  # B, T, H, W each
    hue = torch.remainder(hue + shift.to(clips.dtype).view(-1, 1, 1, 1), 1)
    return hsv_to_rgb(hue, saturation, value)  # B, 3, T, H, W


def colour_jitter(clips: Tensor, params: AugmentParams) -> Tensor:
    """Brightness, contrast, saturation and hue, in ``params.jitter_order``."""
    operations = {
        "brightness": lambda x: adjust_brightness(x, params.brightness),
        "contrast": lambda x: adjust_contrast(x, params.contrast),
        "saturation": lambda x: adjust_saturation(x, params.saturation),
        "hue": lambda x: adjust_hue(x, params.hue),
    }
    for index in params.jitter_order.tolist():
        clips = operations[JITTER_OPERATIONS[index]](clips)
    return clips


def gaussian_blur_clips(clips: Tensor, sigma: Tensor, *, kernel_size: int) -> Tensor:
    """Blur every frame of clip b with a Gaussian of ``sigma[b]`` (reflect borders, separable)."""
    batch, channels, frames, height, width = clips.shape
    radius = kernel_size // 2
    offsets = torch.arange(kernel_size, device=clips.device, dtype=clips.dtype) - radius  # k
    taps = torch.exp(-(offsets**2) / (2 * _per_clip(sigma, clips).view(-1, 1) ** 2))  # B, k
    taps = (taps / taps.sum(dim=1, keepdim=True)).repeat_interleave(channels * frames, dim=0)  # B*C*T, k
    planes = clips.reshape(1, batch * channels * frames, height, width)
    planes = F.pad(planes, (radius, radius, radius, radius), mode="reflect")
    groups = planes.shape[1]
    planes = F.conv2d(planes, taps.view(groups, 1, 1, kernel_size), groups=groups)  # along W
    planes = F.conv2d(planes, taps.view(groups, 1, kernel_size, 1), groups=groups)  # along H
    return planes.view_as(clips)


def random_gaussian_blur(clips: Tensor, sigma: Tensor, *, kernel_size: int) -> Tensor:
    """Blur the clips whose sigma is positive; the others are returned as they are."""
    chosen = (sigma > 0).nonzero().flatten()  # indices of the blurred clips
    if chosen.numel() == 0:
        return clips
    out = clips.clone()
    out[chosen] = gaussian_blur_clips(clips[chosen], sigma[chosen], kernel_size=kernel_size)
    return out


def normalise(clips: Tensor, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> Tensor:
    shape = (1, -1, 1, 1, 1)
    mean_t = torch.tensor(mean, dtype=clips.dtype, device=clips.device).view(shape)
    std_t = torch.tensor(std, dtype=clips.dtype, device=clips.device).view(shape)
    return (clips - mean_t) / std_t


def augment_clips(clips: Tensor, params: AugmentParams, *, kernel_size: int | None = None) -> Tensor:
    """Grayscale, colour jitter, blur, normalise (the order of the paper's code) on clips
    ``B, 3, T, H, W`` in [0, 1]; returns normalised float clips of the same shape."""
    if kernel_size is None:
        kernel_size = blur_kernel_size(min(clips.shape[-2:]))
    clips = random_grayscale(clips, params.grayscale.to(clips.device))
    clips = colour_jitter(clips, _on(params, clips.device))
    clips = random_gaussian_blur(clips, params.blur_sigma.to(clips.device), kernel_size=kernel_size)
    return normalise(clips)


def _on(params: AugmentParams, device: torch.device) -> AugmentParams:
    return AugmentParams(**{name: value.to(device) for name, value in vars(params).items()})


class ClipAugment(nn.Module):
    """The post-FAME augmentations (``strengths``: the paper's by default); ``forward(clips,
    generator)`` takes uint8 (0..255) or float ([0, 1]) clips ``B, 3, T, H, W`` and returns
    normalised float32 clips."""

    def __init__(self, strengths: AugmentStrengths = AugmentStrengths(), *, kernel_size: int | None = None):
        super().__init__()
        self.strengths = strengths  # probabilities and ranges of each augmentation
        self.kernel_size = kernel_size  # blur kernel; None: the FAME kernel of the crop

    def forward(self, clips: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if clips.dtype == torch.uint8:
            clips = clips.float() / 255
        params = sample_augment_params(clips.shape[0], self.strengths, generator=generator)
        return augment_clips(clips, params, kernel_size=self.kernel_size)
