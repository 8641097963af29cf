"""Frames as JPEG: the cache's default frame codec (libjpeg-turbo through ``imagecodecs``).

One encoded chunk holds its frames as independent JPEG images after a small index::

    uint32 n | uint32 length[n] | JPEG 0 | JPEG 1 | ... | JPEG n-1      (little-endian)

so any chunk length works, and the cache's default of one frame per chunk lets a clip at
stride 2 decode only the frames it uses. Chroma is subsampled 4:2:0, as in the source videos
(MPEG-4 and H.264 store colour at half resolution too). Why JPEG, and at which quality, is
measured in ``docs/benchmarks.md``. ``zarr_codecs.JpegCodec`` exposes the same bytes to zarr.
"""

from __future__ import annotations

import numpy as np

#: the codec's name in zarr.json (``zarr_codecs.JpegCodec`` registers it with zarr)
CODEC_NAME = "fame.jpeg"
#: JPEG quality of the cache's frames unless asked otherwise
DEFAULT_QUALITY = 90
#: chroma subsampling (horizontal, vertical): 4:2:0
SUBSAMPLING = "420"
_HEADER = np.dtype("<u4")


def _codecs():
    try:
        import imagecodecs
    except ImportError as error:  # a dependency of fame; only a broken install lacks it
        raise ImportError("JPEG frames need the imagecodecs package: pip install imagecodecs") from error
    return imagecodecs


def encode_frames(frames: np.ndarray, quality: int = DEFAULT_QUALITY) -> bytes:
    """(n, H, W, C) uint8 frames, C in {1, 3} -> the chunk's bytes."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"JPEG frames must be uint8 (n, H, W, 1 or 3), got {frames.dtype} {frames.shape}")
    codecs = _codecs()
    colour = frames.shape[-1] == 3
    images = [
        codecs.jpeg8_encode(np.ascontiguousarray(frame if colour else frame[..., 0]), level=quality,
                            subsampling=SUBSAMPLING if colour else None)
        for frame in frames
    ]
    header = np.array([len(images), *map(len, images)], dtype=_HEADER).tobytes()
    return b"".join([header, *images])


def decode_frames(data: bytes, out: np.ndarray) -> np.ndarray:
    """Decode a chunk's bytes into ``out`` ((n, H, W, C) uint8) and return it."""
    if not out.flags.c_contiguous:  # libjpeg writes whole rows
        out[...] = decode_frames(data, np.empty(out.shape, out.dtype))
        return out
    codecs = _codecs()
    buffer = memoryview(data)
    count = int(np.frombuffer(buffer[:4], dtype=_HEADER)[0])
    if count != len(out):
        raise ValueError(f"JPEG chunk holds {count} frames, expected {len(out)}")
    lengths = np.frombuffer(buffer[4 : 4 + 4 * count], dtype=_HEADER)
    offset = 4 + 4 * count
    for frame, length in zip(out, lengths.tolist()):
        image = buffer[offset : offset + length]
        if frame.shape[-1] == 3:
            codecs.jpeg8_decode(image, out=frame)
        else:
            codecs.jpeg8_decode(image, out=frame[..., 0])
        offset += length
    if offset != len(buffer):
        raise ValueError(f"JPEG chunk has {len(buffer) - offset} stray bytes after its {count} frames")
    return out
