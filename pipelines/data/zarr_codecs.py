"""The cache's JPEG frame codec as a Zarr v3 array-to-bytes codec, so plain zarr can read it.

Registered under the name ``fame.jpeg`` through the ``zarr.codecs`` entry point in
``pyproject.toml``: once fame is installed, ``zarr.open_array`` reads (and writes) arrays
whose inner chunks use it. The bytes are those of ``jpeg_frames``; the cache itself writes
and reads them without zarr (``shard_writer``, ``shard_reader``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from pipelines.data.jpeg_frames import CODEC_NAME, DEFAULT_QUALITY, decode_frames, encode_frames


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """uint8 chunks of shape (n, H, W, C), C in {1, 3}, as n JPEG images at ``quality``."""

    is_fixed_size = False
    quality: int = DEFAULT_QUALITY

    def __init__(self, *, quality: int = DEFAULT_QUALITY) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must lie in [1, 100], got {quality}")
        object.__setattr__(self, "quality", int(quality))

    @classmethod
    def from_dict(cls, data):
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self):
        return {"name": CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        if dtype.to_native_dtype() != np.uint8 or len(shape) != 4 or shape[-1] not in (1, 3):
            raise ValueError(f"{CODEC_NAME} stores uint8 arrays of shape (T, H, W, 1 or 3), got {dtype} {shape}")

    async def _decode_single(self, chunk_bytes, chunk_spec):
        out = np.empty(chunk_spec.shape, dtype=np.uint8)
        decode_frames(chunk_bytes.to_bytes(), out)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(out)

    async def _encode_single(self, chunk_array, chunk_spec):
        frames = np.ascontiguousarray(chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(encode_frames(frames, self.quality))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec) -> int:
        """zarr's protocol: codecs whose output size varies (every compressor) raise here."""
        raise NotImplementedError("a JPEG chunk's size depends on its content")
