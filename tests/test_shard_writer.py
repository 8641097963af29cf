"""The fast shard writer writes plain Zarr v3: zarr reads it back, with the metadata zarr writes."""

import json

import numpy as np
import pytest

from pipelines.data.shard_reader import ShardedArrayReader
from pipelines.data.shard_writer import array_metadata, write_sharded_array


def sample(frames, rest=(6, 7, 3), seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (frames, *rest), dtype=np.uint8)
    data[: frames // 2] //= 16  # compressible and incompressible parts
    return data


@pytest.mark.parametrize("codec", ["zstd", "raw"])
@pytest.mark.parametrize("frames,chunk,shard", [(40, 8, 16), (37, 8, 256), (5, 1, 5), (300, 8, 256), (9, 4, 8)])
def test_zarr_reads_back_what_was_written(tmp_path, frames, chunk, shard, codec):
    import zarr

    data = sample(frames)
    write_sharded_array(tmp_path / "a", data, chunk_length=chunk, shard_length=shard, level=1, codec=codec,
                        dimension_names=("t", "y", "x", "c"))
    array = zarr.open_array(str(tmp_path / "a"), mode="r")  # checks every shard index's crc32c
    assert array.shape == data.shape and array.dtype == data.dtype
    assert np.array_equal(array[:], data)
    assert np.array_equal(array[frames // 3 : frames - 1], data[frames // 3 : frames - 1])
    assert np.array_equal(ShardedArrayReader(tmp_path / "a").read(0, frames), data)


@pytest.mark.parametrize("shape,chunk,shard,names", [((37, 6, 7, 3), 8, 256, ("t", "y", "x", "c")),
                                                     ((12, 5, 4), 1, 12, ("window", "y", "x")),
                                                     ((9, 4), 4, 8, None)])
@pytest.mark.parametrize("codec", ["zstd", "raw"])
def test_metadata_is_what_zarr_writes(tmp_path, shape, chunk, shard, names, codec):
    import zarr
    from zarr.codecs import ZstdCodec

    zarr.create_array(str(tmp_path / "z"), shape=shape, dtype="uint8", chunks=(chunk, *shape[1:]),
                      shards=(shard, *shape[1:]), compressors=[ZstdCodec(level=2)] if codec == "zstd" else None,
                      fill_value=0, dimension_names=names)
    theirs = json.loads((tmp_path / "z" / "zarr.json").read_text())
    ours = array_metadata(shape, np.dtype("uint8"), chunk_length=chunk, shard_length=shard, level=2, codec=codec,
                          dimension_names=names)
    assert ours == theirs


def test_shard_bytes_equal_zarrs_own(tmp_path):
    """Same chunks, same codec: the shard file is byte for byte the one zarr writes."""
    import zarr
    from zarr.codecs import ZstdCodec

    data = sample(21) + 1  # no all-zero chunk (zarr leaves those out of the shard)
    array = zarr.create_array(str(tmp_path / "z"), shape=data.shape, dtype="uint8", chunks=(4, *data.shape[1:]),
                              shards=(24, *data.shape[1:]), compressors=[ZstdCodec(level=3)], fill_value=0)
    array[...] = data
    write_sharded_array(tmp_path / "a", data, chunk_length=4, shard_length=24, level=3)
    shard = ("c", "0", "0", "0", "0")
    assert (tmp_path.joinpath("a", *shard)).read_bytes() == (tmp_path.joinpath("z", *shard)).read_bytes()


def test_no_temporary_files_are_left(tmp_path):
    write_sharded_array(tmp_path / "a", sample(20), chunk_length=8, shard_length=16, level=1)
    assert not [p for p in (tmp_path / "a").rglob("*") if p.name.startswith(".")]


def test_shard_length_must_be_a_multiple_of_the_chunk(tmp_path):
    with pytest.raises(ValueError):
        write_sharded_array(tmp_path / "a", sample(20), chunk_length=8, shard_length=12, level=1)


def smooth_frames(frames, height=16, width=24):
    """Video-like frames (smooth gradients moving over time), where JPEG is accurate."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    red = 128 + 100 * np.sin((x + t) / 5)
    green = 128 + 100 * np.cos((y - t) / 7)
    blue = 64 + 2 * x + y
    return np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("chunk", [1, 3])
def test_jpeg_frames_read_the_same_through_zarr_and_the_fast_reader(tmp_path, chunk):
    """The fame.jpeg codec is registered with zarr (an entry point): plain zarr reads the frames."""
    import zarr

    data = smooth_frames(10)
    write_sharded_array(tmp_path / "a", data, chunk_length=chunk, shard_length=6 * chunk, level=90, codec="jpeg")
    through_zarr = zarr.open_array(str(tmp_path / "a"), mode="r")[:]
    ours = ShardedArrayReader(tmp_path / "a").read(0, 10)
    assert np.array_equal(through_zarr, ours)
    assert np.abs(ours.astype(int) - data).mean() < 2  # lossy, but close


def test_zarr_writes_jpeg_frames_the_fast_reader_reads(tmp_path):
    import zarr

    from pipelines.data.zarr_codecs import JpegCodec

    data = smooth_frames(6)
    array = zarr.create_array(str(tmp_path / "z"), shape=data.shape, dtype="uint8", chunks=(1, *data.shape[1:]),
                              shards=(6, *data.shape[1:]), serializer=JpegCodec(quality=95), compressors=None,
                              fill_value=0)
    array[...] = data
    assert np.array_equal(ShardedArrayReader(tmp_path / "z").read(0, 6), array[:])
    meta = json.loads((tmp_path / "z" / "zarr.json").read_text())
    ours = array_metadata(data.shape, np.dtype("uint8"), chunk_length=1, shard_length=6, level=95, codec="jpeg")
    assert meta["codecs"] == ours["codecs"]


def test_jpeg_codec_refuses_what_it_cannot_store(tmp_path):
    import zarr

    from pipelines.data.zarr_codecs import JpegCodec

    with pytest.raises(ValueError):
        JpegCodec(quality=0)
    with pytest.raises(ValueError):
        zarr.create_array(str(tmp_path / "f"), shape=(4, 8, 8, 3), dtype="float32", chunks=(1, 8, 8, 3),
                          serializer=JpegCodec(), compressors=None)
