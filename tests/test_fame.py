"""pipelines.fame against slow, obviously-correct numpy / scikit-image references on tiny inputs."""

import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2hsv

from pipelines import fame
from pipelines.masks import window_maps

SHAPES = [(1, 3, 2, 9, 13), (2, 3, 4, 16, 16), (3, 3, 5, 11, 20)]  # B, C, T, H, W
KERNELS = [1, 3, 5]


# --------------------------------------------------------------------------------------------
# Slow references: loops over samples and pixels, straight from the method's description
# --------------------------------------------------------------------------------------------


def ref_blur(maps, kernel_size, sigma=None):
    sigma = kernel_size / 3 if sigma is None else sigma
    radius = kernel_size // 2
    taps = np.array([math.exp(-((i - radius) ** 2) / (2 * sigma**2)) for i in range(kernel_size)])
    kernel = np.outer(taps, taps) / taps.sum() ** 2
    out = np.zeros_like(maps, dtype=np.float64)
    for b in range(maps.shape[0]):
        padded = np.pad(maps[b], radius, mode="reflect")  # dcb|abcd|cba, like torch "reflect"
        for y in range(maps.shape[1]):
            for x in range(maps.shape[2]):
                out[b, y, x] = (padded[y : y + kernel_size, x : x + kernel_size] * kernel).sum()
    return out


def ref_normalise(maps):
    out = np.zeros_like(maps, dtype=np.float64)
    for b, m in enumerate(maps):
        if m.max() > m.min():
            out[b] = (m - m.min()) / (m.max() - m.min())
    return out


def ref_kernel(height, width, kernel_size):
    return int(0.1 * min(height, width)) // 2 * 2 + 1 if kernel_size is None else kernel_size


def ref_motion_saliency(clip, kernel_size):
    batch, channels, frames, height, width = clip.shape
    d = np.zeros((batch, height, width))
    for t in range(frames - 1):
        for c in range(channels):
            d += np.abs(clip[:, c, t] - clip[:, c, t + 1])
    d /= frames - 1
    return ref_normalise(ref_blur(d, ref_kernel(height, width, kernel_size)))


def ref_seeds(saliency, fg_fraction=0.5, bg_fraction=0.1):
    batch, height, width = saliency.shape
    pixels = height * width
    fg = np.zeros((batch, pixels), dtype=bool)
    bg = np.zeros((batch, pixels), dtype=bool)
    for b in range(batch):
        order = np.argsort(-saliency[b].ravel(), kind="stable")  # largest first, ties by index
        fg[b, order[: int(fg_fraction * pixels)]] = True
        bg[b, order[pixels - int(bg_fraction * pixels) :]] = True
    return fg.reshape(saliency.shape), bg.reshape(saliency.shape)


def ref_colour_ids(mean_frame, bins=10):
    out = np.zeros((mean_frame.shape[0], *mean_frame.shape[2:]), dtype=np.int64)
    for b in range(mean_frame.shape[0]):
        hsv = rgb2hsv(mean_frame[b].transpose(1, 2, 0))
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        hx = (s * np.cos(2 * np.pi * h) + 1) / 2
        hy = (s * np.sin(2 * np.pi * h) + 1) / 2
        qx, qy, qv = (np.round(a * (bins - 1)).astype(np.int64) for a in (hx, hy, v))
        out[b] = qx + bins * qy + bins * bins * qv
    return out


def ref_colour_likelihood(ids, fg, bg, bins, kernel_size, radius=0):
    """Step 4 per sample; with ``radius`` > 0 the histograms of sample b count the seeds of
    samples b - radius .. b + radius (the windows of one video, in order)."""
    batch, height, width = ids.shape
    p = np.zeros((batch, height, width))
    for b in range(batch):
        fg_hist = np.zeros(bins**3)
        bg_hist = np.ones(bins**3)
        for other in range(max(0, b - radius), min(batch, b + radius + 1)):
            for y in range(height):
                for x in range(width):
                    fg_hist[ids[other, y, x]] += fg[other, y, x]
                    bg_hist[ids[other, y, x]] += bg[other, y, x]
        fg_hist /= max(fg_hist.sum(), 1)
        bg_hist /= bg_hist.sum()
        for y in range(height):
            for x in range(width):
                c = ids[b, y, x]
                p[b, y, x] = fg_hist[c] / (fg_hist[c] + bg_hist[c])
    return ref_normalise(ref_blur(p, ref_kernel(height, width, kernel_size)))


def ref_soft_map(clip, kernel_size, bins=10):
    saliency = ref_motion_saliency(clip, kernel_size)
    fg, bg = ref_seeds(saliency)
    ids = ref_colour_ids(clip.mean(axis=2), bins)
    return ref_colour_likelihood(ids, fg, bg, bins, kernel_size)


def random_clip(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


BACKGROUND_PALETTE = np.array([[20, 60, 150], [40, 120, 60], [90, 90, 100], [10, 30, 80], [60, 160, 170]], np.uint8)
SQUARE_PALETTE = np.array([[220, 40, 30], [250, 120, 40], [180, 20, 60]], np.uint8)


def moving_square_video(frames=40, height=24, width=30, side=8, seed=0):
    """uint8 T, H, W, 3 and bool T, H, W: a textured warm square moving right, 1 px a frame,
    over a static background textured with cool colours; the second array is its true mask."""
    rng = np.random.default_rng(seed)
    video = np.repeat(BACKGROUND_PALETTE[rng.integers(0, len(BACKGROUND_PALETTE), (1, height, width))], frames, 0)
    square = SQUARE_PALETTE[rng.integers(0, len(SQUARE_PALETTE), (side, side))]
    truth = np.zeros((frames, height, width), dtype=bool)
    for t in range(frames):
        x = t % (width - side)
        video[t, 8 : 8 + side, x : x + side] = square
        truth[t, 8 : 8 + side, x : x + side] = True
    return video, truth


def as_clip(video):
    """uint8 T, H, W, 3 -> float32 1, 3, T, H, W in [0, 1]."""
    return torch.from_numpy(video).permute(3, 0, 1, 2)[None].float() / 255


# --------------------------------------------------------------------------------------------
# Helpers and steps 1-4
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "expected"), [(112, 11), (224, 23), (128, 13), (9, 1), (20, 3), (30, 3)])
def test_blur_kernel_size(side, expected):
    assert fame.blur_kernel_size(side) == expected


@pytest.mark.parametrize("shape", [(1, 9, 13), (2, 16, 16), (3, 11, 20)])
@pytest.mark.parametrize("kernel_size", [1, 3, 7])
def test_gaussian_blur_matches_reference(shape, kernel_size):
    maps = random_clip(shape)
    expected = ref_blur(maps.numpy(), kernel_size)
    np.testing.assert_allclose(fame.gaussian_blur(maps, kernel_size).numpy(), expected, atol=1e-12)
    sigma = 1.7
    np.testing.assert_allclose(
        fame.gaussian_blur(maps, kernel_size, sigma).numpy(), ref_blur(maps.numpy(), kernel_size, sigma), atol=1e-12
    )


def test_gaussian_blur_rejects_bad_kernels():
    with pytest.raises(ValueError):
        fame.gaussian_blur(torch.zeros(1, 8, 8), 4)
    with pytest.raises(ValueError):
        fame.gaussian_blur(torch.zeros(1, 3, 8), 7)


def test_min_max_normalise():
    maps = torch.tensor([[[1.0, 3.0], [5.0, 2.0]], [[4.0, 4.0], [4.0, 4.0]]])
    out = fame.min_max_normalise(maps)
    np.testing.assert_allclose(out[0].numpy(), [[0.0, 0.5], [1.0, 0.25]])
    assert torch.equal(out[1], torch.zeros(2, 2))  # a constant map is safe


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kernel_size", [None, 3])
def test_motion_saliency_matches_reference(shape, kernel_size):
    clip = random_clip(shape)
    out = fame.motion_saliency(clip, kernel_size=kernel_size)
    assert out.shape == (shape[0], shape[3], shape[4])
    np.testing.assert_allclose(out.numpy(), ref_motion_saliency(clip.numpy(), kernel_size), atol=1e-10)


@pytest.mark.parametrize("shape", [(1, 9, 13), (2, 16, 16), (3, 11, 20)])
def test_seed_regions_match_reference(shape):
    saliency = random_clip(shape)
    saliency[0, :3] = 0.25  # ties are broken by pixel index
    fg, bg = fame.seed_regions(saliency)
    ref_fg, ref_bg = ref_seeds(saliency.numpy())
    np.testing.assert_array_equal(fg.numpy(), ref_fg)
    np.testing.assert_array_equal(bg.numpy(), ref_bg)
    pixels = shape[1] * shape[2]
    assert (fg.flatten(1).sum(1) == int(0.5 * pixels)).all()
    assert (bg.flatten(1).sum(1) == int(0.1 * pixels)).all()
    assert not (fg & bg).any()


def test_seed_regions_are_disjoint_on_a_still_clip():
    fg, bg = fame.seed_regions(torch.zeros(2, 10, 10))
    assert fg.sum() == 2 * 50 and bg.sum() == 2 * 10 and not (fg & bg).any()


def special_colours():
    """Greys, primaries, secondaries, black, white and hues on quarter turns: the bin edges of step 3."""
    values = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]]
    values += [[1, 0, 1], [157, 120, 194], [58, 56, 60], [173, 165, 181], [200, 30, 30], [30, 200, 115]]
    colours = np.array(values, dtype=np.float64)
    colours[9:] /= 255
    return colours


@pytest.mark.parametrize("shape", [(1, 3, 9, 13), (2, 3, 16, 16), (3, 3, 11, 20)])
@pytest.mark.parametrize("bins", [10, 4])
def test_colour_ids_match_skimage(shape, bins):
    frame = random_clip(shape)
    colours = torch.from_numpy(special_colours())
    frame[0].view(3, -1)[:, : len(colours)] = colours.T  # the awkward colours come first
    ids = fame.colour_ids(frame, bins=bins)
    assert ids.dtype == torch.int64
    assert ids.min() >= 0 and ids.max() < bins**3
    np.testing.assert_array_equal(ids.numpy(), ref_colour_ids(frame.numpy(), bins))


@pytest.mark.parametrize("shape", [(1, 9, 13), (2, 16, 16), (3, 11, 20)])
@pytest.mark.parametrize("kernel_size", [None, 3])
def test_colour_likelihood_matches_reference(shape, kernel_size):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 40, shape, generator=generator)  # few colours, so bins are shared
    fg, bg = fame.seed_regions(torch.rand(shape, generator=generator))
    out = fame.colour_likelihood(ids, fg, bg, kernel_size=kernel_size)
    expected = ref_colour_likelihood(ids.numpy(), fg.numpy(), bg.numpy(), 10, kernel_size)
    assert out.shape == shape and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kernel_size", [None, 3])
def test_soft_foreground_map_matches_reference(shape, kernel_size):
    clip = random_clip(shape, seed=2)
    out = fame.soft_foreground_map(clip, kernel_size=kernel_size)
    np.testing.assert_allclose(out.numpy(), ref_soft_map(clip.numpy(), kernel_size), atol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_soft_map_of_a_moving_square_covers_it(seed):
    video, truth = moving_square_video(frames=16, height=32, width=40, seed=seed)
    soft = fame.soft_foreground_map(as_clip(video))
    mask = fame.select_foreground(soft)[0].numpy()
    middle = truth[len(truth) // 2]  # the square halfway through the clip: in view half the time
    assert mask[middle].mean() > 0.95


# --------------------------------------------------------------------------------------------
# Steps 5-6
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 9, 13), (2, 16, 16), (3, 11, 20)])
@pytest.mark.parametrize("beta", [0.5, 0.3, 0.0, 1.0])
def test_select_foreground_keeps_exactly_the_top_pixels(shape, beta):
    soft = random_clip(shape)
    soft[-1, 2:5] = 0.5  # ties
    mask = fame.select_foreground(soft, beta=beta)
    kept = round(beta * shape[1] * shape[2])
    assert mask.dtype == torch.bool
    assert (mask.flatten(1).sum(1) == kept).all()
    for b in range(shape[0]):
        order = np.argsort(-soft[b].numpy().ravel(), kind="stable")
        expected = np.zeros(shape[1] * shape[2], dtype=bool)
        expected[order[:kept]] = True
        np.testing.assert_array_equal(mask[b].numpy().ravel(), expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_merge_takes_foreground_from_own_clip_and_the_rest_from_perm(shape):
    clip = random_clip(shape)
    generator = torch.Generator().manual_seed(3)
    mask = torch.rand(shape[0], shape[3], shape[4], generator=generator) > 0.5
    perm = torch.randperm(shape[0], generator=generator)
    fused = fame.merge_foreground_background(clip, mask, perm)
    assert fused.shape == clip.shape
    for b in range(shape[0]):
        for t in range(shape[2]):
            for c in range(shape[1]):
                own, other, out = clip[b, c, t], clip[perm[b], c, t], fused[b, c, t]
                assert torch.equal(out[mask[b]], own[mask[b]])
                assert torch.equal(out[~mask[b]], other[~mask[b]])


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_random_derangement_has_no_fixed_points(n):
    generator = torch.Generator().manual_seed(n)
    for _ in range(50):
        perm = fame.random_derangement(n, generator=generator)
        assert sorted(perm.tolist()) == list(range(n))
        assert (perm != torch.arange(n)).all()


def test_random_derangement_of_one_is_identity_and_seeded_draws_repeat():
    assert fame.random_derangement(1).tolist() == [0]
    first = fame.random_derangement(6, generator=torch.Generator().manual_seed(7))
    again = fame.random_derangement(6, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, again)


@pytest.mark.parametrize("shape", SHAPES)
def test_fame_augment_runs_steps_1_to_6(shape):
    clip = random_clip(shape)
    original = clip.clone()
    fused, mask, perm = fame.fame_augment(clip, beta=0.5, generator=torch.Generator().manual_seed(0), kernel_size=3)
    assert torch.equal(clip, original)
    expected_mask = fame.select_foreground(fame.soft_foreground_map(clip, kernel_size=3), beta=0.5)
    assert torch.equal(mask, expected_mask)
    assert torch.equal(fused, fame.merge_foreground_background(clip, mask, perm))
    if shape[0] > 1:
        assert (perm != torch.arange(shape[0])).all()
    module_out = fame.FameAugment(kernel_size=3)(clip, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(module_out, (fused, mask, perm)))


def test_functions_do_not_modify_their_inputs():
    clip = random_clip((2, 3, 4, 16, 16))
    saliency = random_clip((2, 16, 16))
    ids = torch.randint(0, 1000, (2, 16, 16))
    fg, bg = fame.seed_regions(saliency)
    video, _ = moving_square_video(frames=31)
    saved = [t.clone() for t in (clip, saliency, ids, fg, bg)] + [video.copy()]
    fame.gaussian_blur(saliency, 3)
    fame.min_max_normalise(saliency)
    fame.motion_saliency(clip)
    fame.seed_regions(saliency)
    fame.colour_ids(clip[:, :, 0])
    fame.colour_likelihood(ids, fg, bg, kernel_size=3)
    fame.soft_foreground_map(clip)
    fame.select_foreground(saliency)
    fame.merge_foreground_background(clip, fg, torch.tensor([1, 0]))
    fame.fame_augment(clip)
    window_maps.video_soft_maps(video)
    window_maps.video_soft_maps(torch.from_numpy(video))
    for before, after in zip(saved, [clip, saliency, ids, fg, bg, video]):
        assert (before == after).all()


# --------------------------------------------------------------------------------------------
# The offline path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_frames", "kwargs", "expected"),
    [
        (31, {}, [0]),
        (32, {}, [0, 1]),
        (39, {}, [0, 8]),
        (40, {}, [0, 9]),
        (47, {}, [0, 16]),
        (64, {}, [0, 16, 32, 33]),
        (40, {"hop": 8}, [0, 8, 9]),
        (47, {"hop": 8}, [0, 8, 16]),
        (10, {"window": 4, "stride": 3, "hop": 2}, [0]),
        (12, {"window": 4, "stride": 1, "hop": 3}, [0, 3, 6, 8]),
        (5, {"window": 5, "stride": 1, "hop": 4}, [0]),
    ],
)
def test_window_starts(num_frames, kwargs, expected):
    starts = window_maps.window_starts(num_frames, **kwargs)
    assert starts == expected
    window, stride = kwargs.get("window", 16), kwargs.get("stride", 2)
    assert starts[-1] + (window - 1) * stride == num_frames - 1  # the last window ends on the last frame


def test_window_starts_rejects_short_videos():
    with pytest.raises(ValueError):
        window_maps.window_starts(30)
    with pytest.raises(ValueError):
        window_maps.window_starts(6, window=4, stride=2, hop=1)


def test_window_for_clip():
    starts = [0, 8, 16, 20]  # window centres 15, 23, 31, 35
    assert window_maps.window_for_clip(starts, range(0, 32, 2)) == 0  # centre 15
    assert window_maps.window_for_clip(starts, range(9, 41, 2)) == 1  # centre 24
    assert window_maps.window_for_clip(starts, np.arange(12, 44, 2)) == 1  # centre 27: halfway, the earlier window
    assert window_maps.window_for_clip(starts, [100, 102]) == 3
    assert window_maps.window_for_clip(starts, [2, 3, 4, 5], window=4, stride=1) == 0


def per_window_maps(video, starts, window, stride, **kwargs):
    maps = []
    for s in starts:
        soft = fame.soft_foreground_map(as_clip(video[s : s + window * stride : stride]), **kwargs)
        maps.append(torch.round(soft[0] * 255).to(torch.uint8))
    return torch.stack(maps)


@pytest.mark.parametrize(
    ("frames", "kwargs"),
    [
        (40, {}),
        (24, {"window": 4, "stride": 2, "hop": 3, "windows_per_batch": 2}),
        (17, {"window": 5, "stride": 3, "hop": 1, "kernel_size": 5, "windows_per_batch": 1}),
    ],
)
@pytest.mark.parametrize("texture", ["square", "noise"])
def test_video_soft_maps_equal_per_window_soft_maps(frames, kwargs, texture):
    video, _ = moving_square_video(frames=frames)
    if texture == "noise":  # every pixel moves
        video = np.random.default_rng(5).integers(0, 256, video.shape, dtype=np.uint8)
    window, stride, hop = kwargs.get("window", 16), kwargs.get("stride", 2), kwargs.get("hop", 16)
    maps, starts = window_maps.video_soft_maps(video, **kwargs)
    assert starts == window_maps.window_starts(frames, window=window, stride=stride, hop=hop)
    assert maps.dtype == torch.uint8 and maps.shape == (len(starts), *video.shape[1:3])
    map_kwargs = {"kernel_size": kwargs["kernel_size"]} if "kernel_size" in kwargs else {}
    expected = per_window_maps(video, starts, window, stride, **map_kwargs)
    # integer window sums vs float32 clips: a mean colour one ulp apart can land in the
    # neighbouring colour bin, which moves the map by a few levels at a few pixels
    difference = (maps.int() - expected.int()).abs()
    assert difference.max() <= 4
    assert (difference > 1).float().mean() < 1e-3


@pytest.mark.parametrize("count", [0, 1, 7, 50, 99, 100])
def test_linear_time_selection_equals_a_stable_sort_with_many_ties(count):
    from pipelines.fame import _largest, _smallest

    values = torch.randint(0, 4, (3, 100)).float()  # heavy ties
    order = torch.argsort(values, dim=1, descending=True, stable=True)
    top = torch.zeros_like(values, dtype=torch.bool).scatter_(1, order[:, :count], True)
    bottom = torch.zeros_like(values, dtype=torch.bool).scatter_(1, order[:, values.shape[1] - count:], True)
    assert torch.equal(_largest(values, count), top)
    assert torch.equal(_smallest(values, count), bottom if count else torch.zeros_like(bottom))


def test_pool_neighbouring_windows_sums_each_window_with_its_neighbours():
    counts = torch.tensor([[1.0, 0], [2, 1], [4, 0], [8, 2]])
    assert window_maps.pool_neighbouring_windows(counts, 0) is counts
    assert window_maps.pool_neighbouring_windows(counts, 1).tolist() == [[3, 1], [7, 1], [14, 3], [12, 2]]
    assert window_maps.pool_neighbouring_windows(counts, 10).tolist() == [[15, 3]] * 4  # the whole video
    with pytest.raises(ValueError):
        window_maps.pool_neighbouring_windows(counts, -1)


@pytest.mark.parametrize("radius", [1, 2, 50])
def test_colour_context_pools_the_seeds_of_neighbouring_windows(radius):
    """video_soft_maps(colour_context=r) against a slow reference: steps 1-3 per window, then
    step 4 with each window's histograms counting the seeds of r windows on each side."""
    video, _ = moving_square_video(frames=40)
    kwargs = {"window": 4, "stride": 2, "hop": 6}
    maps, starts = window_maps.video_soft_maps(video, colour_context=radius, windows_per_batch=2, **kwargs)
    clips = [video[s : s + 8 : 2].transpose(3, 0, 1, 2)[None].astype(np.float64) / 255 for s in starts]
    ids, fg, bg = [], [], []
    for clip in clips:
        seeds = ref_seeds(ref_motion_saliency(clip, None))
        fg.append(seeds[0][0])
        bg.append(seeds[1][0])
        ids.append(ref_colour_ids(clip.mean(axis=2))[0])
    expected = ref_colour_likelihood(np.stack(ids), np.stack(fg), np.stack(bg), 10, None, radius=radius)
    difference = (maps.int() - torch.from_numpy(np.round(expected * 255)).int()).abs()
    assert difference.max() <= 4  # integer window sums vs float64 clips, as for the paper's step 4
    assert (difference > 1).float().mean() < 1e-3
    paper, _ = window_maps.video_soft_maps(video, **kwargs)
    assert not torch.equal(maps, paper)


# --------------------------------------------------------------------------------------------
# Step 5 with a fitted share (--beta auto, ours)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.12, 0.2, 0.35])
def test_fitted_foreground_fraction_finds_the_share_of_a_two_level_map(share):
    rng = np.random.default_rng(0)
    height, width = 40, 50
    soft = rng.normal(0.2, 0.03, size=(height * width,))
    high = rng.permutation(height * width)[: round(share * height * width)]
    soft[high] = rng.normal(0.8, 0.03, size=len(high))
    fitted = fame.fitted_foreground_fraction(torch.from_numpy(soft.reshape(1, height, width)).float())
    assert abs(float(fitted[0]) - share) < 0.01


def test_fitted_foreground_fraction_stays_within_its_bounds():
    flat = torch.zeros(1, 8, 8)
    mostly_high = torch.ones(1, 10, 10)
    mostly_high[0, 0, :3] = 0  # 97% of the map is "foreground": capped at the paper's half
    ramp = torch.linspace(0, 1, 100).view(1, 10, 10)
    fitted = fame.fitted_foreground_fraction(torch.cat([flat, mostly_high[:, :8, :8] * 0 + flat, ramp[:, :8, :8]]))
    assert float(fitted[0]) == pytest.approx(0.1) and float(fitted[1]) == pytest.approx(0.1)
    assert 0.1 <= float(fitted[2]) <= 0.5
    assert float(fame.fitted_foreground_fraction(mostly_high)[0]) == pytest.approx(0.5)
    assert float(fame.fitted_foreground_fraction(mostly_high, lowest=0.2, highest=0.9)[0]) == pytest.approx(0.9)


def test_select_foreground_with_one_share_per_sample():
    soft = torch.rand(3, 6, 7)
    beta = torch.tensor([0.1, 0.5, 0.25])
    masks = fame.select_foreground(soft, beta=beta)
    for i, share in enumerate(beta.tolist()):
        assert torch.equal(masks[i], fame.select_foreground(soft[i : i + 1], beta=share)[0])
        assert int(masks[i].sum()) == round(share * 42)


def test_parse_beta_and_foreground_fraction():
    assert fame.parse_beta("auto") == "auto" and fame.parse_beta(" AUTO ") == "auto"
    assert fame.parse_beta("0.3") == 0.3 and fame.parse_beta(0.5) == 0.5
    for bad in ("0", "1", "1.5", "half", None):
        with pytest.raises(ValueError, match="give a share of the frame in \\(0, 1\\), or auto"):
            fame.parse_beta(bad)
    soft = torch.rand(2, 5, 5)
    assert fame.foreground_fraction(soft, 0.3) == 0.3
    assert torch.equal(fame.foreground_fraction(soft, "auto"), fame.fitted_foreground_fraction(soft))
