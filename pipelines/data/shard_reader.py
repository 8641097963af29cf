"""A fast read path for the cache's sharded arrays, straight from the shard files.

Zarr's general-purpose read machinery costs a few milliseconds per call, as much as
decoding the bytes of a whole 16-frame clip. Training reads millions of clips, so for the
one array layout the cache writes (sharded along the first axis, inner chunks encoded as
``bytes`` + ``zstd``, ``fame.jpeg`` or raw ``bytes``, shard index at the end) we read the shard index once and then
``pread`` and decompress only the inner chunks a read needs. The files stay plain Zarr v3
(this reader follows the sharding codec's specification) and any other layout falls back
to ``zarr`` itself; the tests compare both paths on random reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pipelines.data.jpeg_frames import CODEC_NAME, decode_frames

#: a missing inner chunk's (offset, nbytes) in the shard index
_EMPTY = np.uint64(2**64 - 1)
#: bytes of the crc32c checksum that ends the shard index
_CRC_BYTES = 4


class UnsupportedLayout(Exception):
    """The array is not in the layout this reader handles; use zarr instead."""


class ShardedArrayReader:
    """Reads ``array[start:stop]`` of a first-axis-sharded Zarr v3 array (zstd, JPEG or raw chunks)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            meta = json.loads((self.path / "zarr.json").read_text())
            self.shape = tuple(meta["shape"])
            self.dtype = np.dtype(meta["data_type"])
            shard_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
            (sharding,) = meta["codecs"]
            config = sharding["configuration"]
            chunk_shape = tuple(config["chunk_shape"])
            inner = [c["name"] for c in config["codecs"]]
            index = [c["name"] for c in config["index_codecs"]]
            separator = meta["chunk_key_encoding"]["configuration"].get("separator", "/")
            fill = meta.get("fill_value", 0)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UnsupportedLayout(f"{self.path}: {error}") from None
        bytes_codec = config["codecs"][0].get("configuration", {}) if inner else {}
        supported = (
            meta.get("zarr_format") == 3 and sharding.get("name") == "sharding_indexed"
            and inner in (["bytes", "zstd"], [CODEC_NAME], ["bytes"]) and index == ["bytes", "crc32c"]
            and config.get("index_location", "end") == "end"
            and meta["chunk_key_encoding"]["name"] == "default" and separator == "/"
            and (self.dtype.itemsize == 1 or bytes_codec.get("endian", "little") == "little")
            and shard_shape[1:] == self.shape[1:] and chunk_shape[1:] == self.shape[1:]
            and shard_shape[0] % chunk_shape[0] == 0
        )
        if not supported:
            raise UnsupportedLayout(f"{self.path}: not a first-axis-sharded zstd, JPEG or raw array")
        if inner == [CODEC_NAME]:
            self._decode = decode_frames
        elif inner == ["bytes"]:
            self._decode = self._copy_raw
        else:
            from numcodecs import Zstd

            zstd = Zstd()
            self._decode = lambda data, out: zstd.decode(data, out=out)
        self.shard_length = shard_shape[0]
        self.chunk_length = chunk_shape[0]
        self.chunks_per_shard = self.shard_length // self.chunk_length
        self.fill_value = fill
        self._frame_shape = self.shape[1:]
        self._indices: dict[int, list[tuple[int, int] | None]] = {}

    def _copy_raw(self, data: bytes, out: np.ndarray) -> np.ndarray:
        if len(data) != out.nbytes:
            raise OSError(f"{self.path}: a raw chunk holds {len(data)} bytes, expected {out.nbytes}")
        out[...] = np.frombuffer(data, dtype=self.dtype.newbyteorder("<")).reshape(out.shape)
        return out

    def _shard_file(self, shard: int) -> Path:
        return self.path.joinpath("c", str(shard), *(["0"] * (len(self.shape) - 1)))

    def _index(self, shard: int, fd: int, size: int) -> list[tuple[int, int]]:
        """The shard's (offset, nbytes) per inner chunk, read once and kept as Python ints."""
        index = self._indices.get(shard)
        if index is None:
            length = self.chunks_per_shard * 16
            raw = np.frombuffer(os.pread(fd, length, size - length - _CRC_BYTES), dtype="<u8")
            raw = raw.reshape(self.chunks_per_shard, 2)
            used = raw[:, 0] != _EMPTY
            if (raw[used, 0] + raw[used, 1] > size).any():
                raise OSError(f"{self._shard_file(shard)}: shard index points past the end of the file")
            index = [(int(o), int(n)) if u else None for (o, n), u in zip(raw.tolist(), used.tolist())]
            self._indices[shard] = index
        return index

    def _decode_chunk(self, shard: int, local: int, fd: int | None, size: int, buffer: np.ndarray) -> np.ndarray:
        """Inner chunk ``local`` of ``shard``, decoded into ``buffer`` (chunk_length rows)."""
        if fd is not None:
            entry = self._index(shard, fd, size)[local]
            if entry is not None:
                offset, nbytes = entry
                self._decode(os.pread(fd, nbytes, offset), buffer)
                return buffer
        buffer[...] = self.fill_value
        return buffer

    def take(self, rows) -> np.ndarray:
        """``array[rows]`` for sorted or unsorted row indices, decoding each needed chunk once.

        A chunk of one row that is asked for once is decoded straight into the output.
        """
        rows = [int(r) for r in rows]
        out = np.empty((len(rows), *self._frame_shape), dtype=self.dtype)
        if not rows:
            return out
        if min(rows) < 0 or max(rows) >= self.shape[0]:
            raise IndexError(f"{self.path}: rows {min(rows)}..{max(rows)} outside [0, {self.shape[0]})")
        wanted: dict[int, list[int]] = {}  # chunk -> positions in `out`
        for position, row in enumerate(rows):
            wanted.setdefault(row // self.chunk_length, []).append(position)
        buffer = None
        open_shard, fd, size = None, None, 0
        try:
            for chunk in sorted(wanted):
                shard, local = divmod(chunk, self.chunks_per_shard)
                if shard != open_shard:
                    if fd is not None:
                        os.close(fd)
                    open_shard, fd = shard, None
                    try:
                        fd = os.open(self._shard_file(shard), os.O_RDONLY)
                        size = os.fstat(fd).st_size
                    except FileNotFoundError:  # an all-fill shard is not written
                        fd = None
                positions = wanted[chunk]
                if self.chunk_length == 1 and len(positions) == 1:
                    self._decode_chunk(shard, local, fd, size, out[positions[0] : positions[0] + 1])
                    continue
                if buffer is None:
                    buffer = np.empty((self.chunk_length, *self._frame_shape), dtype=self.dtype)
                decoded = self._decode_chunk(shard, local, fd, size, buffer)
                first = chunk * self.chunk_length
                for position in positions:
                    out[position] = decoded[rows[position] - first]
        finally:
            if fd is not None:
                os.close(fd)
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """``array[start:stop]`` along the first axis (0 <= start < stop <= shape[0])."""
        if not 0 <= start < stop <= self.shape[0]:
            raise IndexError(f"{self.path}: rows {start}:{stop} outside [0, {self.shape[0]})")
        return self.take(np.arange(start, stop))
