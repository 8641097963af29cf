"""The data stage: from the videos a user has on disk to the Zarr cache every later stage reads.

What it holds, in the order data flows:

- ``synth``: ``fame synth``, synthetic videos whose class is the motion, with ground-truth masks
  (``write_dataset``, ``SynthSettings``).
- ``layouts``: dataset layouts as their official downloads ship (``discover_dataset``,
  ``detect_layout``, ``DatasetIndex``, ``LayoutError``).
- ``video``: decoding behind a small interface (``read_clip``, ``read_video``, ``decode_video``)
  and the project's video exceptions (``VideoError`` and its kinds).
- ``cache``: the Zarr v3 cache, writer helpers and reader (``open_cache``, ``CacheReader``,
  ``CacheError``); ``shard_reader``, ``shard_writer``: its fast read and write paths;
  ``jpeg_frames``: the default frame codec; ``zarr_codecs``: the same codec for plain zarr
  (``JpegCodec``, the ``fame.jpeg`` entry point).
- ``clips``: which frames, which crop (``sample_clip_indices``, ``crop_resize_clip``,
  ``crop_resize_map``) and ``ClipDataset``, the clips of a cache ready for batching.

Its face: ``synth.write_dataset``, ``layouts.discover_dataset``, ``video.read_clip``,
``cache.open_cache`` and ``clips.ClipDataset``. It imports only the base (``pipelines.fame``,
``settings``, ``atomic_files``) and itself; nothing here imports ``masks``, ``train``,
``evaluate`` or ``visualize``. This file imports nothing, so that a light module of the stage
(``layouts``, ``cache``) stays light.
"""
