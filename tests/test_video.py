import numpy as np
import pytest

from helpers import moving_square_video, write_test_video
from pipelines.video import (
    CorruptVideoError, EmptyVideoError, MissingVideoError, probe_video, read_clip, read_video, resized_shape,
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
