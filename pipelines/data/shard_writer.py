"""A fast write path for the cache's arrays: Zarr v3 sharded arrays written as plain files.

Zarr's general-purpose write machinery (an asyncio event loop, codec pipelines, one task per
chunk) costs tens of milliseconds per video, as much as compressing its frames. The cache
writes one array layout only: sharded along the first axis, inner chunks encoded as
``bytes`` + ``zstd``, as JPEG (``fame.jpeg``, see ``jpeg_frames``) or raw (``bytes``), the shard index
(``bytes`` little-endian + ``crc32c``) at the end of the shard. This module writes exactly
that, following the sharding codec's specification, so the files are plain Zarr v3 that
``zarr.open_array`` reads (the tests check it, and check the metadata and the shard bytes
against those zarr itself writes). ``shard_reader`` is its counterpart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pipelines.atomic_files import atomic_write_bytes, atomic_write_text

#: a missing inner chunk's (offset, nbytes) in the shard index
EMPTY = 2**64 - 1
#: the inner-chunk codecs this module writes
CODECS = ("zstd", "jpeg", "raw")


def inner_codec(codec: str, level: int, dtype: np.dtype):
    """The inner chunks' codec list for ``zarr.json`` and the function encoding one chunk.

    ``level`` is zstd's level or JPEG's quality (raw ignores it).
    """
    bytes_codec = {"name": "bytes"} if np.dtype(dtype).itemsize == 1 else {"name": "bytes", "configuration": {"endian": "little"}}
    if codec == "zstd":
        from numcodecs import Zstd

        zstd = Zstd(level=level)
        codecs = [bytes_codec, {"name": "zstd", "configuration": {"level": level, "checksum": False}}]
        return codecs, lambda chunk: zstd.encode(np.ascontiguousarray(chunk))
    if codec == "jpeg":
        from pipelines.data.jpeg_frames import CODEC_NAME, encode_frames

        return [{"name": CODEC_NAME, "configuration": {"quality": level}}], lambda chunk: encode_frames(chunk, level)
    if codec == "raw":
        little = np.dtype(dtype).newbyteorder("<")
        return [bytes_codec], lambda chunk: np.ascontiguousarray(chunk, dtype=little).tobytes()
    raise ValueError(f"unknown frame codec {codec!r}; choose one of {', '.join(CODECS)}")


def array_metadata(
    shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    chunk_length: int,
    shard_length: int,
    level: int,
    codec: str = "zstd",
    dimension_names: tuple[str, ...] | None = None,
) -> dict:
    """The ``zarr.json`` of a first-axis-sharded array (as zarr 3 writes it)."""
    rest = list(shape[1:])
    meta = {
        "shape": list(shape),
        "data_type": np.dtype(dtype).name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [shard_length, *rest]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": [chunk_length, *rest],
                    "codecs": inner_codec(codec, level, dtype)[0],
                    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                    "index_location": "end",
                },
            }
        ],
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    if dimension_names is not None:
        meta["dimension_names"] = list(dimension_names)
    return meta


def write_json(path: Path, document: dict) -> None:
    """Write a JSON file atomically: a reader sees the old file or the new one, never a part
    (not flushed to disk: see ``atomic_files``; a cache's half-written video is redone)."""
    atomic_write_text(path, json.dumps(document, indent=2), durable=False)


def encode_shard(rows: np.ndarray, *, chunk_length: int, shard_length: int, encode) -> bytes:
    """One shard's bytes: its inner chunks (the last padded with zeros) through ``encode``, then the index."""
    import google_crc32c

    chunks_per_shard = shard_length // chunk_length
    index = np.full((chunks_per_shard, 2), EMPTY, dtype="<u8")
    parts, offset = [], 0
    for local, begin in enumerate(range(0, len(rows), chunk_length)):
        chunk = rows[begin : begin + chunk_length]
        if len(chunk) < chunk_length:  # zarr stores the edge chunk at full size, filled with 0
            padded = np.zeros((chunk_length, *rows.shape[1:]), rows.dtype)
            padded[: len(chunk)] = chunk
            chunk = padded
        encoded = encode(chunk)
        index[local] = (offset, len(encoded))
        parts.append(encoded)
        offset += len(encoded)
    raw_index = index.tobytes()
    parts.append(raw_index)
    parts.append(np.uint32(google_crc32c.value(raw_index)).astype("<u4").tobytes())
    return b"".join(parts)


def write_sharded_array(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    chunk_length: int,
    shard_length: int,
    level: int,
    codec: str = "zstd",
    dimension_names: tuple[str, ...] | None = None,
) -> None:
    """Write ``data`` as a Zarr v3 array at ``path``: chunks of ``chunk_length`` rows, shards of
    ``shard_length`` rows (a multiple of ``chunk_length``), each chunk through ``codec``
    ("zstd" at level ``level``, "jpeg" at quality ``level``, or "raw": uncompressed).

    The array's ``zarr.json`` is written first and each shard file last-to-appear (through a
    rename), so a shard file is never seen half-written; whether the array as a whole is
    finished is for the caller to record (the cache's ``complete`` attribute).
    """
    if shard_length % chunk_length:
        raise ValueError(f"shard_length {shard_length} must be a multiple of chunk_length {chunk_length}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = array_metadata(data.shape, data.dtype, chunk_length=chunk_length, shard_length=shard_length, level=level,
                          codec=codec, dimension_names=dimension_names)
    encode = inner_codec(codec, level, data.dtype)[1]
    write_json(path / "zarr.json", meta)
    for shard, begin in enumerate(range(0, len(data), shard_length)):
        encoded = encode_shard(data[begin : begin + shard_length], chunk_length=chunk_length,
                               shard_length=shard_length, encode=encode)
        target = path.joinpath("c", str(shard), *(["0"] * (data.ndim - 1)))
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, encoded, durable=False)
