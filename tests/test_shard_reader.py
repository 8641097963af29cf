"""The fast shard reader returns exactly what zarr returns, or declines the layout."""

import numpy as np
import pytest

from pipelines.data.shard_reader import ShardedArrayReader, UnsupportedLayout


def make_array(path, data, chunk, shard, compressors="zstd"):
    import zarr
    from zarr.codecs import ZstdCodec

    codecs = [ZstdCodec(level=3)] if compressors == "zstd" else None
    array = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(chunk, *data.shape[1:]),
                              shards=(shard, *data.shape[1:]), compressors=codecs, fill_value=0)
    array[...] = data
    return array


@pytest.mark.parametrize("compressors", ["zstd", None])
@pytest.mark.parametrize("frames,chunk,shard", [(40, 8, 16), (37, 8, 256), (5, 1, 5), (300, 8, 256), (9, 4, 8)])
def test_random_reads_equal_zarr(tmp_path, frames, chunk, shard, compressors):
    rng = np.random.default_rng(frames)
    data = rng.integers(0, 256, (frames, 6, 7, 3), dtype=np.uint8)
    data[: frames // 2] //= 16  # compressible and incompressible parts
    array = make_array(tmp_path / "a", data, chunk, shard, compressors=compressors)
    reader = ShardedArrayReader(tmp_path / "a")
    assert reader.shape == data.shape
    for _ in range(60):
        start = int(rng.integers(0, frames))
        stop = int(rng.integers(start + 1, frames + 1))
        assert np.array_equal(reader.read(start, stop), array[start:stop])
    assert np.array_equal(reader.read(0, frames), data)


def test_unwritten_chunks_read_as_fill_value(tmp_path):
    import zarr
    from zarr.codecs import ZstdCodec

    array = zarr.create_array(str(tmp_path / "a"), shape=(32, 4, 4), dtype="uint8", chunks=(4, 4, 4),
                              shards=(16, 4, 4), compressors=[ZstdCodec(level=3)], fill_value=0)
    array[4:8] = 9
    reader = ShardedArrayReader(tmp_path / "a")
    assert np.array_equal(reader.read(0, 32), array[:])


def test_other_layouts_are_declined(tmp_path):
    import zarr
    from zarr.codecs import GzipCodec

    zarr.create_array(str(tmp_path / "gzip"), shape=(8, 4, 4), dtype="uint8", chunks=(4, 4, 4), shards=(8, 4, 4),
                      compressors=[GzipCodec()], fill_value=0)
    zarr.create_array(str(tmp_path / "unsharded"), shape=(8, 4, 4), dtype="uint8", chunks=(4, 4, 4), fill_value=0)
    for name in ("gzip", "unsharded"):
        with pytest.raises(UnsupportedLayout):
            ShardedArrayReader(tmp_path / name)
    with pytest.raises(UnsupportedLayout):
        ShardedArrayReader(tmp_path / "missing")


def test_out_of_range_reads_raise(tmp_path):
    make_array(tmp_path / "a", np.zeros((8, 2, 2), np.uint8), 4, 8)
    with pytest.raises(IndexError):
        ShardedArrayReader(tmp_path / "a").read(4, 9)
