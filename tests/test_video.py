import numpy as np
import pytest

from helpers import moving_square_video, write_test_video
from pipelines.data.video import (
    CorruptVideoError, EmptyVideoError, MissingVideoError, decode_video, probe_video, read_clip, read_video,
    resized_shape,
)


@pytest.mark.parametrize("shape,short,expected", [((240, 320), 128, (128, 171)), ((320, 240), 128, (171, 128)),
                                                  ((121, 161), 64, (64, 85)), ((48, 64), None, (48, 64))])
def test_resized_shape_keeps_aspect(shape, short, expected):
    assert resized_shape(*shape, short) == expected


def test_read_video_returns_the_true_frames(tmp_path):
    truth = moving_square_video(frames=12, height=48, width=64)
    path = write_test_video(tmp_path / "lossless.avi", truth)
    frames, probe = read_video(path, short_side=None)
    assert frames.shape == truth.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - truth).max() <= 2  # ffv1 is lossless up to colour conversion
    assert probe.num_frames == 12 and probe.fps == 25.0


def test_read_video_resizes_at_decode_time(tmp_path):
    path = write_test_video(tmp_path / "v.avi", moving_square_video(frames=6, height=48, width=64))
    frames, probe = read_video(path, short_side=24)
    assert frames.shape == (6, 24, 32, 3)
    assert (probe.source_height, probe.source_width) == (48, 64)


def test_read_clip_matches_full_decode(tmp_path):
    path = write_test_video(tmp_path / "v.avi", moving_square_video(frames=20))
    frames, _ = read_video(path, short_side=None)
    clip = read_clip(path, [1, 3, 5, 17], short_side=None)
    assert np.array_equal(clip, frames[[1, 3, 5, 17]])


def test_grayscale_video_becomes_rgb(tmp_path):
    gray = moving_square_video(frames=6)[..., 0]
    path = write_test_video(tmp_path / "gray.avi", gray)
    frames, _ = read_video(path, short_side=None)
    assert frames.shape == (6, 48, 64, 3)
    assert np.array_equal(frames[..., 0], frames[..., 1])


def test_broken_inputs_raise_one_line_reasons(tmp_path):
    with pytest.raises(MissingVideoError):
        probe_video(tmp_path / "nope.avi")
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(EmptyVideoError, match="0 bytes"):
        probe_video(tmp_path / "empty.avi")
    (tmp_path / "text.avi").write_text("this is not a video\n" * 20)
    with pytest.raises(CorruptVideoError) as info:
        read_video(tmp_path / "text.avi")
    assert "\n" not in info.value.reason


def test_decode_video_returns_the_true_frames_like_read_video(tmp_path):
    truth = moving_square_video(frames=12, height=48, width=64)
    path = write_test_video(tmp_path / "lossless.avi", truth)
    frames, probe = decode_video(path, short_side=None)
    assert frames.shape == truth.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - truth).max() <= 2
    assert probe == read_video(path, short_side=None)[1]


@pytest.mark.parametrize("codec, pix_fmt", [("mpeg4", "yuv420p"), ("libx264", "yuv420p"), ("ffv1", "bgr0")])
def test_decode_video_resizes_like_read_video(tmp_path, codec, pix_fmt):
    """Same frame count, size and probe as decord; the same pictures up to the scaler's rounding."""
    truth = moving_square_video(frames=20, height=96, width=128)
    path = write_test_video(tmp_path / "v.avi", truth, codec=codec, pix_fmt=pix_fmt)
    frames, probe = decode_video(path, short_side=48)
    reference, reference_probe = read_video(path, short_side=48)
    assert frames.shape == reference.shape == (20, 48, 64, 3) and probe == reference_probe
    # against the true frames averaged over 2x2 blocks, the new decoder is about as close as decord
    # (the texture is per-pixel noise, the hardest case for scaling chroma before the RGB conversion)
    halved = truth.reshape(20, 48, 2, 64, 2, 3).mean(axis=(2, 4))
    ours, decords = (np.abs(x - halved).mean() for x in (frames.astype(np.float64), reference))
    assert ours < 1.5 * decords + 1, (ours, decords)


def test_decode_video_gray_and_broken_inputs(tmp_path):
    gray = moving_square_video(frames=6)[..., 0]
    frames, _ = decode_video(write_test_video(tmp_path / "gray.avi", gray), short_side=None)
    assert frames.shape == (6, 48, 64, 3) and np.array_equal(frames[..., 0], frames[..., 1])
    with pytest.raises(MissingVideoError):
        decode_video(tmp_path / "nope.avi")
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(EmptyVideoError, match="0 bytes"):
        decode_video(tmp_path / "empty.avi")
    (tmp_path / "text.avi").write_text("this is not a video\n" * 20)
    with pytest.raises(CorruptVideoError) as info:
        decode_video(tmp_path / "text.avi")
    assert "\n" not in info.value.reason
    whole = write_test_video(tmp_path / "whole.avi", moving_square_video(frames=60), codec="mpeg4", pix_fmt="yuv420p")
    (tmp_path / "cut.avi").write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with pytest.raises(CorruptVideoError, match="truncated or damaged: decoding stopped after"):
        decode_video(tmp_path / "cut.avi")  # decord returns the first 13 frames as if that were all
