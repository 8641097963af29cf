"""The post-FAME colour augmentations against slow references (colorsys, scipy)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from pipelines.train.augment import (
    LUMA,
    MEAN,
    STD,
    AugmentParams,
    ClipAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_clips,
    gaussian_blur_clips,
    random_grayscale,
    sample_augment_params,
)


def _clips(batch=4, frames=3, size=12, seed=0) -> torch.Tensor:
    return torch.rand(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _identity(batch: int, **changes) -> AugmentParams:
    values = dict(
        grayscale=torch.zeros(batch, dtype=torch.bool), brightness=torch.ones(batch), contrast=torch.ones(batch),
        saturation=torch.ones(batch), hue=torch.zeros(batch), jitter_order=torch.arange(4),
        blur_sigma=torch.zeros(batch),
    )
    return AugmentParams(**{**values, **changes})


def test_every_frame_of_a_clip_gets_the_same_augmentation():
    still = _clips(batch=16, frames=1, size=24).expand(16, 3, 5, 24, 24).contiguous()  # 5 equal frames per clip
    out = ClipAugment()(still, torch.Generator().manual_seed(3))
    assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-6)
    assert not torch.allclose(out[0], out[1])  # and clips differ


def test_uint8_clips_are_scaled_and_the_result_normalised():
    clips = (_clips() * 255).to(torch.uint8)
    params = _identity(4)
    expected = augment_clips(clips.float() / 255, params)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1, 1)
    assert torch.allclose(expected, (clips.float() / 255 - mean) / std, atol=1e-5)  # identity params: only normalise


def test_identity_parameters_change_nothing_but_the_normalisation():
    clips = _clips()
    params = _identity(4)
    assert torch.allclose(adjust_hue(clips, params.hue), clips, atol=1e-5)
    assert torch.allclose(adjust_contrast(clips, params.contrast), clips, atol=1e-6)


def test_grayscale_only_on_chosen_clips():
    clips = _clips()
    out = random_grayscale(clips, torch.tensor([True, False, True, False]))
    luma = sum(w * clips[0, c] for c, w in enumerate(LUMA))
    assert torch.allclose(out[0, 0], luma) and torch.equal(out[0, 0], out[0, 2])
    assert torch.equal(out[1], clips[1])


def test_brightness_contrast_saturation_match_their_definitions():
    clips = _clips(batch=2)
    factor = torch.tensor([0.6, 1.4])
    assert torch.allclose(adjust_brightness(clips, factor), (clips * factor.view(-1, 1, 1, 1, 1)).clamp(0, 1))
    grey = sum(w * clips[:, c] for c, w in enumerate(LUMA))  # B, T, H, W
    for b in range(2):
        f = float(factor[b])
        mean = grey[b].mean()  # one mean over the whole clip
        assert torch.allclose(adjust_contrast(clips, factor)[b], (f * clips[b] + (1 - f) * mean).clamp(0, 1), atol=1e-6)
        expected = (f * clips[b] + (1 - f) * grey[b][None]).clamp(0, 1)
        assert torch.allclose(adjust_saturation(clips, factor)[b], expected, atol=1e-6)


@pytest.mark.parametrize("shift", [-0.1, 0.05, 0.1])
def test_hue_rotation_matches_colorsys(shift):
    clips = _clips(batch=1, frames=2, size=6, seed=1)
    out = adjust_hue(clips, torch.tensor([shift]))
    pixels = clips[0].permute(1, 2, 3, 0).reshape(-1, 3).tolist()
    expected = []
    for r, g, b in pixels:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        expected.append(colorsys.hsv_to_rgb((h + shift) % 1, s, v))
    got = out[0].permute(1, 2, 3, 0).reshape(-1, 3)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-5)


def test_blur_matches_scipy_with_each_clips_sigma():
    clips = _clips(batch=2, frames=2, size=20).double()
    sigma = torch.tensor([0.5, 1.7], dtype=torch.float64)
    out = gaussian_blur_clips(clips, sigma, kernel_size=11)
    for b in range(2):
        s = float(sigma[b])
        ref = gaussian_filter1d(clips[b].numpy(), s, axis=-1, mode="mirror", truncate=5 / s)
        ref = gaussian_filter1d(ref, s, axis=-2, mode="mirror", truncate=5 / s)
        np.testing.assert_allclose(out[b].numpy(), ref, atol=1e-10)


def test_sampled_parameters_follow_the_papers_probabilities():
    params = sample_augment_params(20000, generator=torch.Generator().manual_seed(0))
    assert abs(params.grayscale.float().mean() - 0.2) < 0.02
    jittered = params.brightness != 1
    assert abs(jittered.float().mean() - 0.8) < 0.02
    assert ((params.hue == 0) == ~jittered).all() and ((params.contrast == 1) == ~jittered).all()
    assert params.brightness.min() >= 0.6 and params.brightness.max() <= 1.4 and params.hue.abs().max() <= 0.1
    blurred = params.blur_sigma > 0
    assert abs(blurred.float().mean() - 0.5) < 0.02
    assert params.blur_sigma[blurred].min() >= 0.1 and params.blur_sigma.max() <= 2.0
    assert sorted(params.jitter_order.tolist()) == [0, 1, 2, 3]


def test_same_generator_state_same_augmentation():
    clips = _clips(batch=6, size=16)
    a = ClipAugment()(clips, torch.Generator().manual_seed(5))
    b = ClipAugment()(clips, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(clips, _clips(batch=6, size=16))  # the input is not modified
