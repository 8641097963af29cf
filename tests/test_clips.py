"""Clip sampling, crops that frames and masks share, and the clip datasets on a real cache."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from helpers import SMALL_CACHE, tiny_cache
from pipelines.data.cache import open_cache
from pipelines.data.clips import (
    ClipDataset,
    center_crop_box,
    clip_span,
    crop_resize_clip,
    crop_resize_map,
    random_resized_crop_box,
    sample_clip_indices,
    uniform_clip_indices,
)
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess


@pytest.fixture(scope="module")
def cache(synth_dataset, tmp_path_factory):
    return tiny_cache(synth_dataset, tmp_path_factory.mktemp("clips"), "c.zarr")


# --------------------------------------------------------------------------- frame indices


@pytest.mark.parametrize("clip_len, stride", [(16, 2), (8, 4), (4, 1), (1, 3)])
def test_sample_clip_indices_are_strided_and_inside(clip_len, stride):
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(300):
        idx = sample_clip_indices(40, clip_len=clip_len, stride=stride, rng=rng)
        assert idx.shape == (clip_len,) and idx.min() >= 0 and idx.max() < 40
        assert (np.diff(idx) == stride).all()
        starts.add(int(idx[0]))
    assert starts == set(range(40 - clip_span(clip_len, stride) + 1))  # every start is drawn


def test_short_video_repeats_its_last_frame():
    idx = sample_clip_indices(5, clip_len=4, stride=2, rng=np.random.default_rng(0))
    assert idx.tolist() == [0, 2, 4, 4]


def test_second_clip_differs_whenever_the_video_allows():
    rng = np.random.default_rng(1)
    for _ in range(200):
        first = sample_clip_indices(20, clip_len=4, stride=2, rng=rng)
        second = sample_clip_indices(20, clip_len=4, stride=2, rng=rng, avoid_start=int(first[0]))
        assert second[0] != first[0]
    only = sample_clip_indices(7, clip_len=4, stride=2, rng=rng, avoid_start=0)  # one possible start
    assert only[0] == 0


def test_uniform_clip_indices_cover_the_video_evenly():
    clips = uniform_clip_indices(100, clip_len=16, stride=2, num_clips=10)
    starts = [int(c[0]) for c in clips]
    assert len(clips) == 10 and starts[0] == 0 and clips[-1][-1] == 99
    assert max(np.diff(starts)) - min(np.diff(starts)) <= 1
    short = uniform_clip_indices(8, clip_len=8, stride=2, num_clips=3)
    assert all(c.tolist() == [0, 2, 4, 6, 7, 7, 7, 7] for c in short)


# --------------------------------------------------------------------------- crop boxes


def test_random_resized_crop_box_respects_scale_ratio_and_bounds():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = random_resized_crop_box(128, 171, rng=rng)
        assert 0 <= top and top + h <= 128 and 0 <= left and left + w <= 171
        assert 0.2 * 0.9 <= h * w / (128 * 171) <= 1.0
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1


def test_random_resized_crop_box_falls_back_to_a_centred_box():
    # A 4x100 strip cannot hold any box with aspect in [3/4, 4/3] and area >= 20%.
    top, left, h, w = random_resized_crop_box(4, 100, rng=np.random.default_rng(0))
    assert (h, w) == (4, 5) and left == (100 - 5) // 2


def test_center_crop_box_is_the_papers_test_crop():
    assert center_crop_box(128, 171, size=112) == (8, 29, 112, 112)  # resize 128, centre 112: no resampling
    top, left, h, w = center_crop_box(32, 43, size=112)
    assert h == w == 28 and top == 2 and left == 7  # the same share (7/8) of a smaller frame


# --------------------------------------------------------------------------- frames and masks share crops


def _marked(height=40, width=56, seed=0):
    """Random frames whose red channel is exactly the soft map (a bright marker on noise)."""
    rng = np.random.default_rng(seed)
    soft = rng.integers(0, 60, (height, width), dtype=np.uint8)
    soft[10:16, 30:38] = 255  # the marker
    frames = rng.integers(0, 256, (5, height, width, 3), dtype=np.uint8)
    frames[..., 0] = soft
    return frames, soft


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("box", [(0, 0, 40, 56), (4, 20, 20, 30), (8, 28, 12, 12), (0, 0, 40, 40)])
def test_frames_and_mask_get_the_same_crop_and_flip(box, flip):
    frames, soft = _marked()
    clip = crop_resize_clip(frames, box, 24, flip=flip)  # 3, T, 24, 24 uint8
    mask = crop_resize_map(soft, box, 24, flip=flip)  # 24, 24 float
    assert clip.shape == (3, 5, 24, 24) and clip.dtype == torch.uint8
    assert mask.dtype == torch.float32 and 0 <= mask.min() and mask.max() <= 1
    for t in range(5):  # the red channel went through the same resampling as the map (uint8 vs float rounding)
        assert (clip[0, t].float() - mask * 255).abs().max() <= 1.0


def test_mask_at_lower_resolution_is_cropped_at_the_same_place():
    frames, soft = _marked(height=40, width=56)
    half = soft[::2, ::2].copy()  # the map stored at half resolution
    box = (4, 20, 20, 30)
    for flip in (False, True):
        clip = crop_resize_clip(frames, box, 40, flip=flip)[0, 0].float()
        mask = crop_resize_map(half, box, 40, flip=flip, frame_shape=(40, 56))

        def centre(image):
            ys, xs = torch.nonzero(image > 200, as_tuple=True)
            return ys.float().mean(), xs.float().mean()

        for a, b in zip(centre(clip), centre(mask * 255)):
            assert abs(float(a - b)) <= 2.0


def test_flip_mirrors_the_crop():
    frames, soft = _marked()
    box = (4, 20, 20, 30)
    flipped = crop_resize_clip(frames, box, 24, flip=True)
    assert torch.equal(flipped, crop_resize_clip(frames, box, 24, flip=False).flip(-1))


# --------------------------------------------------------------------------- datasets


def test_pretrain_samples_two_clips_and_the_query_mask(cache):
    reader = open_cache(cache)
    ds = ClipDataset(cache, reader.video_ids, clip_len=4, stride=2, crop=24, mode="pretrain")
    sample = ds[3]
    assert sample["query"].shape == sample["key"].shape == (3, 4, 24, 24)
    assert sample["query"].dtype == torch.uint8 and sample["mask"].shape == (24, 24)
    assert not torch.equal(sample["query"], sample["key"])
    again = ds[3]
    assert all(torch.equal(sample[k], again[k]) for k in ("query", "key", "mask"))  # (seed, epoch, index) decides
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["query"], sample["query"])
    assert "mask" not in ClipDataset(cache, reader.video_ids, clip_len=4, crop=24, with_masks=False)[0]


def test_train_and_test_modes(cache):
    reader = open_cache(cache)
    vid = reader.video_ids[5]
    train = ClipDataset(cache, [vid], clip_len=4, stride=2, crop=24, mode="train")[0]
    assert train["clip"].shape == (3, 4, 24, 24) and train["label"] == reader.info(vid)["label"]
    test = ClipDataset(cache, [vid], clip_len=4, stride=2, crop=24, mode="test", num_clips=3)[0]
    assert test["clips"].shape == (3, 3, 4, 24, 24) and test["index"] == 0
    info = reader.info(vid)
    first = uniform_clip_indices(info["num_frames"], clip_len=4, stride=2, num_clips=3)[0]
    box = center_crop_box(info["height"], info["width"], size=24)
    expected = crop_resize_clip(reader.frames(vid, first), box, 24, flip=False)
    assert torch.equal(test["clips"][0], expected)


def test_dataset_pickles_without_its_reader(cache):
    ds = ClipDataset(cache, open_cache(cache).video_ids, clip_len=4, crop=24)
    ds[0]  # opens the reader
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._reader is None and torch.equal(copy[0]["query"], ds[0]["query"])


def test_no_frames_cache_decodes_the_same_clips(synth_dataset, cache, tmp_path):
    no_frames, lossless = tmp_path / "nf.zarr", tmp_path / "zstd.zarr"
    source = str(synth_dataset / "UCF-101")
    # training decodes a --no-frames cache's clips with decord: a lossless cache of decord's frames holds the same
    # (JPEG frames, the default, and the default decoder's frames are close to decord's, not equal)
    run_preprocess(PreprocessSettings(source=source, cache=str(no_frames), frames=False, decoder="decord", **SMALL_CACHE))
    run_preprocess(PreprocessSettings(source=source, cache=str(lossless), frame_codec="zstd", decoder="decord", **SMALL_CACHE))
    cache = lossless
    ids = open_cache(no_frames).video_ids[:2]
    assert not open_cache(no_frames).has_frames
    for mode in ("pretrain", "test"):
        decoded = ClipDataset(no_frames, ids, clip_len=4, crop=24, mode=mode, num_clips=2)[1]
        cached = ClipDataset(cache, ids, clip_len=4, crop=24, mode=mode, num_clips=2)[1]
        for key in ("query", "mask", "clips"):
            if key in cached:
                assert torch.equal(decoded[key], cached[key])
