"""JPEG chunks: n independent images after a small index."""

import numpy as np
import pytest

from pipelines.data.jpeg_frames import decode_frames, encode_frames


def gradient(frames=3, channels=3):
    x = np.linspace(0, 255, 40)
    image = np.broadcast_to(x[None, :, None], (24, 40, channels))
    return np.stack([np.roll(image, 2 * t, axis=1) for t in range(frames)]).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_is_close(channels):
    frames = gradient(channels=channels)
    decoded = decode_frames(encode_frames(frames, 95), np.empty_like(frames))
    assert np.abs(decoded.astype(int) - frames).max() <= 4


def test_quality_trades_size_for_accuracy():
    rng = np.random.default_rng(0)
    frames = (gradient().astype(int) + rng.integers(-20, 20, gradient().shape)).clip(0, 255).astype(np.uint8)
    low, high = encode_frames(frames, 50), encode_frames(frames, 95)
    errors = [np.abs(decode_frames(b, np.empty_like(frames)).astype(int) - frames).mean() for b in (low, high)]
    assert len(low) < len(high) and errors[1] < errors[0]


def test_damaged_chunks_are_refused():
    frames = gradient()
    data = encode_frames(frames)
    with pytest.raises(ValueError, match="holds 3 frames"):
        decode_frames(data, np.empty((2, *frames.shape[1:]), np.uint8))
    with pytest.raises(ValueError, match="stray bytes"):
        decode_frames(data + b"xx", np.empty_like(frames))
    with pytest.raises(ValueError):
        encode_frames(frames.astype(np.float32))
