"""pipelines.masks.motion: the camera-compensated ``motion`` maps, step by step, and as a whole on
videos whose camera motion and foreground are known."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipelines import fame
from pipelines.masks import motion as motion_masks, window_maps
from pipelines.masks.quality import foreground_kept, roc_auc


def textured_world(height, width, seed=0):
    """A smooth random texture (uint8 H, W, 3): gradients everywhere, no repeating pattern."""
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.random((1, 3, height // 4, width // 4), dtype=np.float32))
    smooth = F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False)[0]
    return (smooth.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def panning_video(frames=64, height=64, width=96, pan=(1.0, 0.5), box=(16, 14), seed=0):
    """A camera panning ``pan`` pixels per frame (x, y) over a textured world, and a flat red box
    moving across the frame on its own. Returns (uint8 T, H, W, 3, bool T, H, W truth)."""
    world = textured_world(height + 4 * frames, width + 4 * frames, seed)
    video = np.empty((frames, height, width, 3), np.uint8)
    truth = np.zeros((frames, height, width), bool)
    box_h, box_w = box
    for t in range(frames):
        top, left = int(round(10 + pan[1] * t)), int(round(10 + pan[0] * t))
        video[t] = world[top : top + height, left : left + width]
        y = height // 2 - box_h // 2 + int(6 * np.sin(t / 5))
        x = (8 + 3 * t) % (width - box_w)
        video[t, y : y + box_h, x : x + box_w] = (220, 30, 30)
        truth[t, y : y + box_h, x : x + box_w] = True
    return video, truth


def shift_theta(dx_pixels, dy_pixels, height, width, n=1):
    """The affine theta that samples a frame ``dx, dy`` pixels further on (normalised coordinates)."""
    theta = torch.eye(2, 3).repeat(n, 1, 1)
    theta[:, 0, 2] = 2 * dx_pixels / width
    theta[:, 1, 2] = 2 * dy_pixels / height
    return theta


# --------------------------------------------------------------------------------------------- steps


@pytest.mark.parametrize("shape, factor, evidence, stored", [
    ((128, 171), 2, (64, 85), (32, 42)), ((240, 320), 3, (80, 106), (40, 53)),
    ((48, 64), 1, (48, 64), (48, 64)), ((1080, 1920), 16, (67, 120), (33, 60))])
def test_map_factor_and_shape(shape, factor, evidence, stored):
    assert motion_masks.map_factor(*shape) == factor
    assert motion_masks.map_shape(*shape, store_short_side=64) == evidence  # stored as computed
    assert motion_masks.map_shape(*shape) == stored


@pytest.mark.parametrize("factor", [1, 2, 3, 7])
def test_evidence_frames_are_grey_block_means(factor):
    rng = np.random.default_rng(factor)
    frames = rng.integers(0, 256, size=(5, 23, 31, 3), dtype=np.uint8)
    got = motion_masks.evidence_frames(frames, [0, 2, 4], factor).numpy()
    h, w = 23 // factor, 31 // factor
    expected = np.zeros((3, h, w))
    for i, t in enumerate([0, 2, 4]):
        for y in range(h):
            for x in range(w):
                expected[i, y, x] = frames[t, y * factor : (y + 1) * factor, x * factor : (x + 1) * factor].mean() / 255
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("dx, dy", [(3.0, -2.0), (-5.5, 1.25), (0.0, 0.0)])
def test_camera_motion_is_recovered(dx, dy):
    """A frame and the same picture moved by (dx, dy) pixels: the fitted affine is that shift."""
    height, width = 64, 96
    world = torch.from_numpy(textured_world(height, width).mean(axis=2).astype(np.float32) / 255)[None]  # 1, H, W
    truth = shift_theta(dx, dy, height, width)
    moved, _ = motion_masks.warp(world[:, None], torch.linalg.inv(
        torch.cat([truth, torch.tensor([[[0.0, 0, 1]]])], dim=1))[:, :2])  # world seen from the moved camera
    theta = motion_masks.estimate_camera_motion(world, moved[:, 0])
    assert torch.allclose(theta, truth, atol=0.02), theta  # 0.02 normalised = under 1 pixel of 96


def test_camera_motion_ignores_an_independent_mover():
    """Tukey's weights: a box that moves on its own (a tenth of the frame) does not pull the fit."""
    video, _ = panning_video(frames=8, pan=(2.0, 1.0))
    grey = motion_masks.evidence_frames(video, list(range(8)), 1)  # 8, H, W
    # converged (more steps than the default budget): the fit is the camera's, within 1.5 pixels
    theta = motion_masks.estimate_camera_motion(grey[:-2], grey[2:], iterations=(5, 3, 2))  # pairs 4, 2 pixels apart
    height, width = grey.shape[-2:]
    expected = shift_theta(-4.0, -2.0, height, width, n=6)  # frame t is frame t + 2 seen 4, 2 pixels back
    assert torch.allclose(theta[:, :, 2], expected[:, :, 2], atol=0.03), theta[:, :, 2]
    default = motion_masks.estimate_camera_motion(grey[:-2], grey[2:])  # the default budget: within 2 pixels
    assert torch.allclose(default[:, :, 2], expected[:, :, 2], atol=0.045), default[:, :, 2]
    # the linear part is weakly determined on 64 x 96 frames whose texture is this smooth: loosely
    assert torch.allclose(theta[:, :, :2], expected[:, :, :2], atol=0.15)


def test_compensated_difference_leaves_only_the_mover():
    video, truth = panning_video(frames=8, pan=(2.0, 1.0))
    grey = motion_masks.evidence_frames(video, list(range(8)), 1)
    theta = motion_masks.estimate_camera_motion(grey[:-2], grey[2:])
    difference = motion_masks.compensated_difference(grey[:-2], grey[2:], theta)  # 6, H, W
    plain = (grey[:-2] - grey[2:]).abs()
    mover = torch.from_numpy(truth[:-2] | truth[2:])
    inner = torch.zeros_like(mover)
    inner[:, 4:-4, 4:-4] = True  # away from where the warp leaves the picture
    background = ~mover & inner
    assert difference[background].mean() < 0.25 * plain[background].mean()  # the camera's motion is gone
    assert difference[mover].mean() > 3 * difference[background].mean()


def test_window_evidence_means_each_windows_pairs():
    differences = torch.arange(4 * 2 * 3, dtype=torch.float32).view(4, 2, 3)
    rows = torch.tensor([[0, 1], [2, 3], [1, 2]])
    got = motion_masks.window_evidence(differences, rows, blur_fraction=0.0)  # kernel 3 at least
    expected = fame.min_max_normalise(fame.gaussian_blur(torch.stack(
        [differences[[0, 1]].mean(0), differences[[2, 3]].mean(0), differences[[1, 2]].mean(0)]), 3))
    torch.testing.assert_close(got, expected)


def test_neighbouring_windows_weights_one_two_one():
    maps = torch.tensor([0.0, 4.0, 8.0])[:, None, None].expand(3, 2, 2)
    got = motion_masks.neighbouring_windows(maps)[:, 0, 0]
    torch.testing.assert_close(got, torch.tensor([1.0, 4.0, 7.0]))
    single = torch.rand(1, 3, 3)
    assert torch.equal(motion_masks.neighbouring_windows(single), single)


def test_neighbouring_windows_reach_two_weights_one_one_two_one_one():
    """Version 3 of ``adaptive``: windows every 8 frames, each averaged with the two on each side
    (those starting within 16 frames), itself twice; the ends repeat themselves."""
    maps = torch.tensor([0.0, 6.0, 12.0, 18.0, 24.0])[:, None, None].expand(5, 2, 2)
    got = motion_masks.neighbouring_windows(maps, reach=2)[:, 0, 0]
    # padded 0 0 | 0 6 12 18 24 | 24 24; window 0: (0 + 0 + 2 x 0 + 6 + 12) / 6 = 3, window 3: (6 + 12 + 2 x 18 + 24 + 24) / 6 = 17
    torch.testing.assert_close(got, torch.tensor([3.0, 7.0, 12.0, 17.0, 21.0]))
    assert motion_masks.ADAPTIVE_HOP == 8 and round(motion_masks.NEIGHBOUR_FRAMES / motion_masks.ADAPTIVE_HOP) == 2


def test_window_means_and_block_means():
    differences = torch.rand(7, 6, 9)
    rows = torch.tensor([[0, 1, 2], [2, 3, 4], [3, 5, 6]])
    torch.testing.assert_close(motion_masks.window_means(differences, rows), differences[rows].mean(dim=1))
    blocks = motion_masks.block_means(differences, 3)  # short side 6 -> 3: 2 x 2 blocks, the last column left out
    assert blocks.shape == (7, 3, 4)
    torch.testing.assert_close(blocks[:, 1, 2], differences[:, 2:4, 4:6].mean(dim=(1, 2)))


def test_adaptive_maps_reach_neighbours_within_sixteen_frames_whatever_the_hop():
    """At hop 16 the adaptive maps' step 5 is ``motion``'s (one window each side); at hop 8 two."""
    video, _ = panning_video()
    with torch.no_grad():
        at16, starts16 = motion_masks.video_adaptive_maps(video, hop=16)
        wider, _ = motion_masks.video_adaptive_maps(video, hop=16, neighbour_frames=32)
    assert starts16 == window_maps.window_starts(len(video), hop=16)
    assert not torch.equal(at16, wider)  # reach 2 at hop 16 is another map: the reach follows the frames


def test_centre_prior_peaks_in_the_middle_and_weighs_at_most_its_weight():
    prior = motion_masks.centre_prior(9, 13)
    assert prior.argmax() == 4 * 13 + 6 and 0 < prior.min() < prior.max() <= 1
    flat = motion_masks.with_centre_prior(torch.zeros(2, 9, 13))  # no evidence: the prior decides
    assert flat[0].argmax() == 4 * 13 + 6
    strong = torch.zeros(1, 9, 13)
    strong[0, 0, 0] = 1  # evidence in a corner still wins over the prior
    assert motion_masks.with_centre_prior(strong, weight=0.3)[0].argmax() == 0


def test_window_pairs_are_shared_and_cover_each_window():
    starts = [0, 16, 33]
    used, firsts, rows = motion_masks._window_pairs(starts, window=16, stride=2, gap=4)
    assert rows.shape == (3, 7)
    for start, row in zip(starts, rows.tolist()):
        assert [firsts[r] for r in row] == [start + 4 * k for k in range(7)]
    assert len(firsts) == len(set(firsts)) < 3 * 7  # windows 0 and 16 share pairs 16, 20, 24
    assert set(used) == set(firsts) | {f + 4 for f in firsts}


# --------------------------------------------------------------------------------------------- whole videos


def test_motion_maps_find_the_mover_under_a_panning_camera():
    """The claim of the method: under camera motion the compensated map ranks the true mover
    first, where the paper's map (frame difference + colour) and plain frame difference do not."""
    video, truth = panning_video()
    small, starts = motion_masks.video_motion_maps(video)
    assert small.dtype == torch.uint8 and small.shape == (len(starts), 32, 48)  # stored at half the evidence's size
    assert starts == window_maps.window_starts(len(video))
    maps = F.interpolate(small[:, None].float(), size=(64, 96), mode="bilinear", align_corners=False)[:, 0]
    paper, _ = window_maps.video_soft_maps(video)
    scores = {"motion": [], "paper": []}
    for i, start in enumerate(starts):
        union = truth[start : start + 31 : 2].any(axis=0)
        scores["motion"].append(roc_auc(maps[i].numpy(), union))
        scores["paper"].append(roc_auc(paper[i].numpy(), union))
        assert foreground_kept(maps[i].numpy(), union, beta=0.5) > 0.9
    assert np.mean(scores["motion"]) > 0.9
    assert np.mean(scores["motion"]) > np.mean(scores["paper"]) + 0.1


def test_motion_maps_of_a_still_video_are_the_centre_prior():
    video = np.repeat(textured_world(48, 64)[None], 40, axis=0)
    maps, starts = motion_masks.video_motion_maps(video)
    prior = motion_masks.with_centre_prior(torch.zeros(1, 48, 64))[0]
    for window_map in maps:
        torch.testing.assert_close(window_map.float() / 255, prior, atol=1 / 255, rtol=0)


@pytest.mark.parametrize("frames, window, stride, hop", [(31, 16, 2, 16), (40, 8, 1, 4), (90, 16, 3, 16)])
def test_motion_maps_window_settings(frames, window, stride, hop):
    video, _ = panning_video(frames=frames)
    maps, starts = motion_masks.video_motion_maps(video, window=window, stride=stride, hop=hop)
    assert starts == window_maps.window_starts(frames, window=window, stride=stride, hop=hop)
    assert len(maps) == len(starts) and int(maps.max()) >= 250 and int(maps.min()) <= 5  # block means of [0, 1] maps


def test_pair_gap_is_checked():
    video, _ = panning_video(frames=31)
    with pytest.raises(ValueError, match="pair_gap 3"):
        motion_masks.video_motion_maps(video, pair_gap=3)
    with pytest.raises(ValueError, match="pair_gap 32"):
        motion_masks.video_motion_maps(video, pair_gap=32)
    maps, _ = motion_masks.video_motion_maps(video, pair_gap=2)  # every frame of the window
    assert maps.shape == (1, 32, 48)


def test_batches_of_pairs_do_not_change_the_maps():
    """Up to float rounding: BLAS sums a batch's normal equations in another order."""
    video, _ = panning_video(frames=80)
    whole, _ = motion_masks.video_motion_maps(video)
    batched, _ = motion_masks.video_motion_maps(video, pairs_per_batch=3)
    difference = (whole.int() - batched.int()).abs()
    assert int(difference.max()) <= 2 and float((difference > 0).float().mean()) < 0.02


def test_stored_maps_are_block_means_of_the_evidence_maps():
    video, _ = panning_video(frames=40)
    full, _ = motion_masks.video_motion_maps(video, store_short_side=64)  # 64 x 96: stored as computed
    small, _ = motion_masks.video_motion_maps(video)  # 32 x 48
    assert full.shape[1:] == (64, 96) and small.shape[1:] == (32, 48)
    means = F.avg_pool2d(full[:, None].float(), 2)[:, 0]
    assert (means - small.float()).abs().max() <= 1  # the block means before rounding vs after


# --------------------------------------------------------------------------------------------- adaptive


# sha256 of the uint8 maps `video_motion_maps(panning_video(frames=80)[0])` computed at commit
# 3506819, before the `adaptive` method was added: `--masks motion` must keep computing exactly these.
MOTION_DIGEST = "cc63d57989c7327c8dc264a005d75370de50c471479356ce24f3dcbc79922bd0"


def test_motion_maps_are_those_of_version_1_bit_for_bit():
    import hashlib

    maps, starts = motion_masks.video_motion_maps(panning_video(frames=80)[0])
    assert starts == [0, 16, 32, 48, 49]
    assert hashlib.sha256(maps.numpy().tobytes()).hexdigest() == MOTION_DIGEST


def fixed_camera_video(frames=64, height=64, width=96, box=(12, 10), seed=0):
    """A fixed camera over a textured world and a flat box moving along the top edge, far from
    the centre. Returns (uint8 T, H, W, 3, bool T, H, W truth)."""
    world = textured_world(height, width, seed)
    video = np.repeat(world[None], frames, axis=0).copy()
    truth = np.zeros((frames, height, width), bool)
    box_h, box_w = box
    for t in range(frames):
        x = (4 + 2 * t) % (width - box_w)
        video[t, 2 : 2 + box_h, x : x + box_w] = (30, 200, 40)
        truth[t, 2 : 2 + box_h, x : x + box_w] = True
    return video, truth


def test_camera_moves_under_a_pan_and_not_on_a_fixed_camera():
    for video, expected in [(panning_video(frames=8, pan=(2.0, 1.0))[0], True), (fixed_camera_video(frames=8)[0], False)]:
        grey = motion_masks.evidence_frames(video, list(range(8)), 1)
        reference, moving = grey[:-4], grey[4:]
        theta = motion_masks.estimate_camera_motion(reference, moving)
        compensated, inside = motion_masks._compensated_difference_and_inside(reference, moving, theta)
        still = motion_masks.still_camera_difference(reference, moving)
        moves = motion_masks.camera_moves(compensated, inside, still, theta)
        assert moves.tolist() == [expected] * 4


def test_camera_moves_rejects_a_fit_that_aligns_the_frame_worse_than_no_motion():
    grey = torch.from_numpy(textured_world(48, 64).mean(axis=2).astype(np.float32) / 255)[None]
    wrong = shift_theta(3.0, 0.0, 48, 64)  # a shift the frames do not show
    compensated, inside = motion_masks._compensated_difference_and_inside(grey, grey, wrong)
    still = motion_masks.still_camera_difference(grey, grey)
    assert motion_masks.camera_displacement(wrong, 48, 64).item() == pytest.approx(3.0)
    assert not motion_masks.camera_moves(compensated, inside, still, wrong).item()


def test_sampled_grey_reads_the_green_of_each_blocks_top_left_pixel():
    video = np.zeros((3, 9, 12, 3), np.uint8)
    video[..., 1] = np.arange(9 * 12, dtype=np.uint8).reshape(9, 12)  # green: the pixel's number
    video[..., 0] = 255  # red and blue are not read
    grey = motion_masks.sampled_grey(video, [2, 0], 2)
    assert grey.shape == (2, 4, 6) and grey.dtype == torch.float32
    expected = np.arange(9 * 12).reshape(9, 12)[0:8:2, 0:12:2] / 255
    torch.testing.assert_close(grey[0], torch.from_numpy(expected).float())


def test_adjacent_evidence_is_each_windows_mean_change_over_one_stride():
    """``adaptive``'s still-camera evidence (version 2): each window's mean absolute change between
    the frames a clip samples, each with the next, including a window that starts between two
    others' frames (its pairs are not neighbours among the frames read)."""
    values = np.arange(48) ** 2 // 10  # frame t: every pixel t^2 / 10, so each pair differs
    video = np.zeros((48, 8, 12, 3), np.uint8)
    video[..., 1] = values[:, None, None]
    starts = [0, 16, 17]
    evidence = motion_masks.adjacent_evidence(video, starts, window=16, stride=2)
    assert evidence.shape == (3, 8, 12)
    for g, start in enumerate(starts):
        frames = values[start : start + 31 : 2]
        expected = np.abs(np.diff(frames)).mean() / 255
        torch.testing.assert_close(evidence[g], torch.full((8, 12), expected, dtype=torch.float32))


def test_choose_evidence_keeps_the_more_concentrated_map_unless_the_camera_clearly_moved():
    compact = torch.zeros(1, 10, 10)
    compact[0, 4:6, 4:6] = 1
    spread = torch.zeros(1, 10, 10)
    spread[0, :, :6] = 1
    assert motion_masks.evidence_area(compact).item() == pytest.approx(0.04)
    assert motion_masks.more_concentrated(spread, compact).tolist() == [True]
    assert motion_masks.more_concentrated(compact, compact.clone()).tolist() == [False]  # ties: the first
    similar, explained = torch.tensor([0.8]), torch.tensor([0.3])  # compensated mean / still mean = 0.8, 0.3
    assert torch.equal(motion_masks.choose_evidence(spread, compact, similar, torch.tensor([1.0])), compact)
    assert torch.equal(motion_masks.choose_evidence(compact, spread, similar, torch.tensor([1.0])), compact)
    assert torch.equal(motion_masks.choose_evidence(spread, compact, explained, torch.tensor([1.0])), spread)


def test_adaptive_centre_weight_grows_with_area_and_camera_motion():
    maps = torch.zeros(3, 10, 10)
    maps[:, :, :2] = 1  # a fifth of each map
    weight = motion_masks.adaptive_centre_weight(maps, torch.tensor([1.0, 0.5, 0.0]))
    torch.testing.assert_close(weight, torch.tensor([3 * 0.2, 3 * 0.2 * 0.5, motion_masks.PRIOR_FLOOR]))


def window_scores(small, starts, truth):
    height, width = truth.shape[1:]
    maps = F.interpolate(small[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    scores = []
    for i, start in enumerate(starts):
        union = truth[start : start + 31 : 2].any(axis=0)
        scores.append(roc_auc(maps[i].numpy(), union))
    return float(np.mean(scores))


def test_adaptive_maps_find_the_mover_under_a_panning_camera():
    video, truth = panning_video()
    small, starts = motion_masks.video_adaptive_maps(video)
    assert small.dtype == torch.uint8 and small.shape == (len(starts), 32, 48)
    assert starts == window_maps.window_starts(len(video), hop=motion_masks.ADAPTIVE_HOP)
    assert window_scores(small, starts, truth) > 0.9


def test_adaptive_maps_drop_the_centre_prior_on_a_fixed_camera():
    """A mover along the top edge of a fixed camera's frame: the ``motion`` map's fixed centre
    prior pulls its map towards the middle; the adaptive map keeps to the evidence."""
    video, truth = fixed_camera_video()
    adaptive, starts = motion_masks.video_adaptive_maps(video)
    motion, motion_starts = motion_masks.video_motion_maps(video)
    assert window_scores(adaptive, starts, truth) > 0.95
    assert window_scores(adaptive, starts, truth) > window_scores(motion, motion_starts, truth)


def test_adaptive_maps_of_a_still_video_are_the_centre_prior():
    video = np.repeat(textured_world(48, 64)[None], 40, axis=0)
    maps, _ = motion_masks.video_adaptive_maps(video)
    prior = motion_masks.with_centre_prior(torch.zeros(1, 48, 64))[0]  # the prior, rescaled to [0, 1]
    for window_map in maps:
        torch.testing.assert_close(window_map.float() / 255, prior, atol=1 / 255, rtol=0)
