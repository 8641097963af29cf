"""pipelines.masks.methods: the named mask methods, and ``paper`` kept bit for bit."""

import hashlib

import numpy as np
import pytest
import torch

from pipelines import fame
from pipelines.masks import methods as mask_methods, motion as motion_masks, window_maps


def panning_video(frames=40, height=48, width=64, seed=0):
    """A deterministic video (no codec): a camera panning over noise, and a red box moving."""
    rng = np.random.default_rng(seed)
    world = rng.integers(0, 256, size=(height + 40, width + 80, 3)).astype(np.uint8)
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        video[t] = world[10 : 10 + height, t : t + width]
        y, x = 14 + (t % 7), 10 + 2 * t % 40
        video[t, y : y + 12, x : x + 10] = (230, 40, 40)
    return video


# sha256 of the uint8 maps that `video_soft_maps(panning_video(), hop=8)` computed before mask
# methods had names (commit 6d1719c), without and with colour_context=1: `--masks paper` must
# keep computing exactly these.
PAPER_DIGESTS = {0: "fd164c57f3bc6f3c5ec6fcc96c0f5225d1125bed4926647a4e0a82070ce9a778",
                 1: "404a962f2d5d5a1092f80323469dfe518c8458444f3c1ec74e4cf4d7845e0d4d"}


@pytest.mark.parametrize("context", [0, 1])
def test_paper_method_reproduces_the_maps_made_before_methods_had_names(context):
    parameters = mask_methods.MaskParameters(hop=8, colour_context=context)
    maps, starts = mask_methods.compute_video_masks(panning_video(), "paper", parameters)
    assert starts == [0, 8, 9]
    assert hashlib.sha256(maps.tobytes()).hexdigest() == PAPER_DIGESTS[context]


def test_paper_method_is_video_soft_maps():
    video = panning_video(seed=1)
    parameters = mask_methods.MaskParameters(window=8, stride=2, hop=4, fg_fraction=0.4, bg_fraction=0.2,
                                             colour_bins=8)
    maps, starts = mask_methods.compute_video_masks(video, "paper", parameters)
    expected, expected_starts = window_maps.video_soft_maps(video, window=8, stride=2, hop=4, fg_fraction=0.4,
                                                     bg_fraction=0.2, bins=8)
    assert starts == expected_starts and np.array_equal(maps, expected.numpy())


def test_motion_method_is_video_motion_maps_at_the_evidence_size():
    video = np.repeat(np.repeat(panning_video(), 3, axis=1), 3, axis=2)  # 144 x 192: evidence at half size
    maps, starts = mask_methods.compute_video_masks(video, "motion")
    expected, _ = motion_masks.video_motion_maps(video)
    assert maps.shape == (len(starts), 36, 48) and np.array_equal(maps, expected.numpy())  # stored at a quarter
    assert mask_methods.METHODS["motion"].version == motion_masks.VERSION


def test_adaptive_method_is_video_adaptive_maps():
    video = np.repeat(np.repeat(panning_video(), 3, axis=1), 3, axis=2)
    maps, starts = mask_methods.compute_video_masks(video, "adaptive")
    expected, _ = motion_masks.video_adaptive_maps(video)
    assert maps.shape == (len(starts), 36, 48) and np.array_equal(maps, expected.numpy())
    assert mask_methods.METHODS["adaptive"].version == motion_masks.ADAPTIVE_VERSION


def test_adaptive_is_the_default_of_preprocess():
    from pipelines.masks.preprocess import PreprocessSettings

    assert mask_methods.DEFAULT_METHOD == "adaptive" == PreprocessSettings.masks
    assert mask_methods.ADAPTIVE_VERSION == 3  # version 1 was offered beside `motion`, never the default


def test_adaptive_windows_start_every_eight_frames_the_others_every_sixteen():
    from pipelines.masks.preprocess import PreprocessSettings

    assert mask_methods.ADAPTIVE_HOP == motion_masks.ADAPTIVE_HOP == 8
    assert {name: method.hop for name, method in mask_methods.METHODS.items()} == {
        "motion": 16, "paper": 16, "adaptive": 8, "frame-difference": 16, "translation-difference": 16, "centre": 16}
    video = panning_video()  # 40 frames
    _, starts = mask_methods.compute_video_masks(video, "adaptive")
    assert starts == [0, 8, 9]
    _, starts = mask_methods.compute_video_masks(video, "motion")
    assert starts == [0, 9]
    _, starts = mask_methods.compute_video_masks(video, "adaptive", mask_methods.MaskParameters(hop=16))
    assert starts == [0, 9]
    assert PreprocessSettings(source="s", cache="c").hop == 8  # --hop 0: the method's own, recorded resolved
    assert PreprocessSettings(source="s", cache="c", masks="motion").hop == 16
    assert PreprocessSettings(source="s", cache="c", masks="motion", hop=4).hop == 4


# sha256 of `compute_video_masks(panning_video(), "motion")` at commit 3506819, before the
# `adaptive` method, on one torch thread: adding methods must not change what `--masks motion`
# caches. (On this small video the maps depend on the thread count, at that commit too: BLAS
# sums the fit's normal equations in another order, and one pixel rounds the other way.)
MOTION_DIGEST = "53e8681348eed2ff2934caf6ea009f4062ed499e6afa2b88b327bc4ee57fdce5"


def test_motion_method_keeps_its_maps_bit_for_bit():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        maps, starts = mask_methods.compute_video_masks(panning_video(), "motion")
    finally:
        torch.set_num_threads(threads)
    assert starts == [0, 9] and mask_methods.METHODS["motion"].version == 1
    assert hashlib.sha256(maps.tobytes()).hexdigest() == MOTION_DIGEST


def test_baselines():
    video = panning_video()
    difference, starts = mask_methods.compute_video_masks(video, "frame-difference")
    clip = torch.from_numpy(video[starts[0] : starts[0] + 31 : 2]).permute(3, 0, 1, 2)[None].float() / 255
    expected = torch.round(fame.motion_saliency(clip) * 255).to(torch.uint8)[0].numpy()
    assert np.abs(difference[0].astype(int) - expected.astype(int)).max() <= 1  # integer vs float sums
    centre, _ = mask_methods.compute_video_masks(video, "centre")
    assert centre.shape == (len(starts), 48, 64) and (centre == centre[0]).all()  # frames too small to shrink
    assert np.unravel_index(centre[0].argmax(), centre[0].shape) in {(23, 31), (23, 32), (24, 31), (24, 32)}
    aligned, aligned_starts = mask_methods.compute_video_masks(video, "translation-difference")
    assert aligned_starts == starts and aligned.shape == (len(starts), 48, 64) and aligned.max() == 255


def test_unknown_method_is_one_line_naming_the_choices():
    with pytest.raises(ValueError, match="--masks 'optical-flow': choose one of motion, paper, adaptive, frame-difference, "
                                           "translation-difference, centre"):
        mask_methods.get_method("optical-flow")
