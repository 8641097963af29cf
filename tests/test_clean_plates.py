"""Clean plates on clips whose answer is known: a subject moving over a static textured
background (still camera) and over a panning one, against the background without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.masks.clean_plates import (
    DILATION,
    background_change,
    camera_is_still,
    clean_plate,
    clean_plates,
    dilate,
    fill_from_surroundings,
    plate_hole,
    subject_hole,
)

SUBJECT_COLOUR = (250.0, 20.0, 20.0)  # red; the backgrounds hold no red


def textured_background(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth random green-blue texture: 3, H, W on the 0..255 scale, red channel 0-60."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 1, (1, 3, height // 8 + 2, width // 8 + 2))).float()
    texture = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]
    scale = torch.tensor([60.0, 200.0, 200.0])[:, None, None]
    return texture * scale + torch.tensor([0.0, 30.0, 30.0])[:, None, None]


def moving_square(frames: int, height: int, width: int, *, side: int = 8, pan: int = 0, seed: int = 0):
    """(clip uint8 3, T, H, W; subject bool T, H, W; background of each frame float 3, T, H, W):
    a red square walking left to right over the background, which pans ``pan`` pixels a frame."""
    wide = textured_background(height, width + pan * frames, seed)
    backgrounds = torch.stack([wide[:, :, t * pan : t * pan + width] for t in range(frames)], dim=1)  # 3, T, H, W
    subject = torch.zeros(frames, height, width, dtype=torch.bool)
    top = height // 2 - side // 2
    for t in range(frames):
        left = 2 + t * (width - side - 4) // max(frames - 1, 1)
        subject[t, top : top + side, left : left + side] = True
    colour = torch.tensor(SUBJECT_COLOUR)[:, None, None, None]
    clip = torch.where(subject[None], colour, backgrounds)
    return clip.round().to(torch.uint8), subject, backgrounds


def test_dilate_grows_by_the_radius():
    mask = torch.zeros(9, 9, dtype=torch.bool)
    mask[4, 4] = True
    assert int(dilate(mask, 2).sum()) == 25 and bool(dilate(mask, 0)[4, 4]) and int(dilate(mask, 0).sum()) == 1


def test_a_still_camera_is_told_from_a_panning_one():
    still, subject, _ = moving_square(8, 32, 48)
    panning, subject_p, _ = moving_square(8, 32, 48, pan=3)
    assert background_change(still, dilate(subject)) == 0.0
    assert camera_is_still(still, subject) and not camera_is_still(panning, subject_p)
    hole, is_still = plate_hole(still, subject)
    assert is_still and torch.equal(hole, dilate(subject, DILATION))  # each frame its own hole
    moving_hole = subject_hole(subject_p, still=False)
    assert all(torch.equal(moving_hole[t], dilate(subject_p, DILATION).any(dim=0)) for t in range(8))


def test_still_camera_gets_its_true_background_back():
    clip, subject, backgrounds = moving_square(8, 32, 48)
    plate = clean_plate(clip, subject)
    assert plate.dtype == torch.uint8 and plate.shape == clip.shape
    # the square walks, so every pixel is background in some frame: the plate is the background
    assert float((plate.float() - backgrounds.round()).abs().max()) <= 1.0
    assert not bool((plate[0] > 200).any())  # no red left


@pytest.mark.parametrize("pan", [3, 0])
def test_fill_leaves_no_colour_and_no_edge_of_the_subject(pan):
    clip, subject, backgrounds = moving_square(8, 32, 48, side=10, pan=pan)
    if pan == 0:  # a subject that never moves: no frame shows its background, the fill is spatial
        subject = subject[:1].expand_as(subject)
        clip = torch.where(subject[None], torch.tensor(SUBJECT_COLOUR)[:, None, None, None], backgrounds).round().byte()
    plate = clean_plate(clip, subject).float()
    hole = dilate(subject, DILATION).any(dim=0) if pan else dilate(subject[0], DILATION)
    outside = ~dilate(hole, 3)
    # colour: the fill's red is the background's, nowhere near the subject's 250
    assert float(plate[0][:, hole].max()) <= 61
    fill_mean, background_mean = plate[:, :, hole].mean(dim=(1, 2)), backgrounds[:, :, hole].mean(dim=(1, 2))
    assert float((fill_mean - background_mean).abs().max()) < 25
    # edge: the seam of the hole is no stronger than the background's own texture edges
    gradient = (plate[:, :, :, 1:] - plate[:, :, :, :-1]).abs().mean(dim=(0, 1))  # H, W-1
    rim = (dilate(hole, 1) & ~dilate(~hole, 1))[:, 1:]  # the hole's outline
    assert float(gradient[rim].mean()) <= 1.5 * float(gradient[outside[:, 1:]].mean()) + 1.0
    # outside the hole nothing changes
    keep = ~dilate(subject, DILATION).any(dim=0) if pan else ~hole
    assert torch.equal(plate[:, :, keep], clip.float()[:, :, keep])


def test_fill_from_surroundings_keeps_the_background_and_handles_empty_frames():
    images = torch.rand(2, 3, 17, 23) * 255
    hole = torch.zeros(2, 17, 23, dtype=torch.bool)
    hole[0, 5:12, 4:20] = True
    hole[1] = True  # no background at all
    filled = fill_from_surroundings(images, hole)
    assert torch.equal(filled[0][:, ~hole[0]], images[0][:, ~hole[0]])
    assert torch.allclose(filled[1], torch.full_like(filled[1], 127.5))
    assert float(filled[0][:, hole[0]].min()) >= float(images[0].min()) - 1e-3  # a mean of background values
    assert float(filled[0][:, hole[0]].max()) <= float(images[0].max()) + 1e-3


def test_a_clip_without_a_subject_is_left_alone_and_batches_work():
    clip, subject, _ = moving_square(4, 16, 24)
    assert torch.equal(clean_plate(clip, torch.zeros_like(subject)), clip)
    batch = clean_plates(torch.stack([clip, clip]), torch.stack([subject, subject[0].expand_as(subject)]))
    assert batch.shape == (2, *clip.shape)
    assert torch.equal(batch[0], clean_plate(clip, subject))
    assert torch.equal(clean_plate(clip, subject[0]), batch[1])  # one H, W mask for the whole clip
