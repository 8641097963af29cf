"""Videos shorter than one mask window (16 frames at stride 2 span 31) through the whole CLI:
``fame preprocess`` keeps them (one window, last frame repeated), ``fame pretrain`` trains on
them and ``fame evaluate`` tests them, clips repeating their last frame; and the window padding
itself. Issue 20: UCF101's shortest clips have ~29 frames, HMDB51 fewer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import moving_square_video, write_test_video
from pipelines.data.cache import open_cache, video_id_for
from pipelines.data.clips import ClipDataset
from pipelines.masks.methods import METHODS, MaskParameters, compute_video_masks
from pipelines.masks.window_maps import pad_to_window

LENGTHS = (1, 25, 30, 40)  # frames; a 16x2 window spans 31


def fame(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fame_cli", *args], capture_output=True, text=True, timeout=timeout)


def test_pad_to_window_repeats_the_last_frame():
    frames = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 3, 3), np.uint8)  # 5, 2, 3, 3
    padded, added = pad_to_window(frames, window=4, stride=3)  # span 10
    assert added == 5 and padded.shape == (10, 2, 3, 3)
    assert padded[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 4, 4, 4, 4, 4]
    same, added = pad_to_window(padded, window=4, stride=3)
    assert same is padded and added == 0
    with pytest.raises(ValueError, match="no frames"):
        pad_to_window(frames[:0], window=4, stride=3)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("length", [1, 25, 30])
def test_every_mask_method_maps_a_short_video_in_one_window(method, length):
    video = moving_square_video(frames=length, height=32, width=40)
    maps, starts = compute_video_masks(video, method, MaskParameters())
    assert starts == [0] and maps.shape[0] == 1 and maps.dtype == np.uint8
    # the window is the video with its last frame repeated: the same maps as computing on that
    padded, _ = pad_to_window(video)
    assert np.array_equal(compute_video_masks(padded, method, MaskParameters())[0], maps)


@pytest.fixture(scope="module")
def short_dataset(synth_dataset, tmp_path_factory) -> Path:
    """The 12-video synthetic dataset with its videos cut to 1, 25, 30 and 40 frames in turn."""
    out = tmp_path_factory.mktemp("short") / "data"
    shutil.copytree(synth_dataset, out)
    videos = sorted((out / "UCF-101").rglob("*.avi"))
    for i, path in enumerate(videos):
        write_test_video(path, moving_square_video(frames=LENGTHS[i % len(LENGTHS)], seed=i))
    return out


def test_short_videos_through_preprocess_pretrain_and_evaluate(short_dataset, tmp_path):
    cache, run = tmp_path / "c.zarr", tmp_path / "run"
    made = fame("preprocess", str(short_dataset / "UCF-101"), "--cache", str(cache), "--short-side", "32",
                "--workers", "1")  # the default 16x2 windows
    assert made.returncode == 0, made.stderr
    reader = open_cache(cache)
    assert len(reader.video_ids) == 12 and not reader.errors
    lengths = sorted(reader.info(v)["num_frames"] for v in reader.video_ids)
    assert lengths == sorted(LENGTHS * 3)
    for vid in reader.video_ids:
        info = reader.info(vid)
        if info["num_frames"] < 31:
            assert info["window_starts"] == [0] and info["window_padding"] == 31 - info["num_frames"]
            assert reader.soft_masks(vid).shape[0] == 1
        else:
            assert "window_padding" not in info

    trained = fame("pretrain", "--cache", str(cache), "--run-dir", str(run), "--arch", "small", "--epochs", "1",
                   "--batch-size", "4", "--clip-len", "16", "--stride", "2", "--crop", "24", "--queue", "64",
                   "--split", "all", "--workers", "0", "--device", "cpu", "--threads", "1")
    assert trained.returncode == 0, trained.stderr
    assert "threads: 1 torch thread(s) in this process (--threads)" in trained.stderr
    assert "9 video(s) shorter than one clip's 31 frames repeat their last frame" in trained.stderr
    assert (run / "checkpoints" / "latest.pt").is_file()

    output = tmp_path / "knn.json"
    tested = fame("evaluate", "--cache", str(cache), "--checkpoint", str(run), "--protocol", "knn",
                  "--clips-per-video", "2", "--workers", "0", "--device", "cpu", "--output", str(output),
                  "--run-dir", str(tmp_path / "knn"))
    assert tested.returncode == 0, tested.stderr
    result = json.loads(output.read_text())
    assert result["counts"]["videos"] == 3 and result["counts"]["clips"] == 6

    finetuned = fame("evaluate", "--cache", str(cache), "--checkpoint", str(run), "--protocol", "finetune",
                     "--epochs", "1", "--batch-size", "4", "--clips-per-video", "2", "--workers", "0",
                     "--device", "cpu", "--run-dir", str(tmp_path / "finetune"))
    assert finetuned.returncode == 0, finetuned.stderr


def test_clips_of_a_one_frame_video_repeat_it_and_frames_smaller_than_the_crop_are_upscaled(short_dataset, tmp_path):
    cache = tmp_path / "c.zarr"
    assert fame("preprocess", str(short_dataset / "UCF-101"), "--cache", str(cache), "--short-side", "32",
                "--workers", "1", "--limit", "4").returncode == 0
    reader = open_cache(cache)
    one = next(v for v in reader.video_ids if reader.info(v)["num_frames"] == 1)
    still = reader.frames(one, [0])[0]
    pairs = ClipDataset(cache, [one], clip_len=16, stride=2, crop=24, mode="pretrain")[0]
    assert pairs["query"].shape == (3, 16, 24, 24) and pairs["mask"].shape == (24, 24)
    assert all(np.array_equal(pairs["query"][:, t].numpy(), pairs["query"][:, 0].numpy()) for t in range(16))
    test = ClipDataset(cache, [one], clip_len=16, stride=2, crop=48, mode="test", num_clips=3)[0]  # 48 > 32: upscaled
    assert test["clips"].shape == (3, 3, 16, 48, 48)
    assert still.shape[:2] == (32, 43) and video_id_for(reader.info(one)["path"]) == one
