"""The Zarr v3 cache that ``fame preprocess`` writes and everything else reads.

Layout (format version 1; documented for users in ``docs/cache-format.md``)::

    CACHE.zarr/                      root group; attrs: fame_cache, settings, dataset
      videos/<video_id>/             one group per finished video; attrs: its info
        frames   uint8 (T, H, W, 3)  resized RGB frames (absent in --no-frames caches)
        masks    uint8 (N, h, w)     soft foreground map (0..255) of each temporal window (h, w: the
                                     frames' size, or smaller, by the mask method; readers rescale)
      errors/<video_id>/             one group per video that could not be used; attrs: path, reason

A video counts as finished only when its group's attrs carry ``"complete": true``, which
is written last, after its arrays (each metadata and shard file is written atomically
through a rename, see ``shard_writer``). Anything else found under ``videos/`` is a
half-written leftover of an interrupted run: it is never read, and the next run deletes
and redoes it.

Each video lives in its own group, so several processes or machines can write into one
store at once without touching each other's files.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Iterable

import numpy as np

from pipelines.data.layouts import fold_split_name
from pipelines.data.shard_reader import ShardedArrayReader, UnsupportedLayout
from pipelines.data.shard_writer import write_json, write_sharded_array
from pipelines.settings import changed_settings

FORMAT_VERSION = 1
VIDEOS = "videos"
ERRORS = "errors"
#: how frames are compressed unless asked otherwise (docs/benchmarks.md has the measurements)
FRAME_CODEC = "jpeg"
JPEG_QUALITY = 90
#: frames per inner chunk (the unit of compression and of reading), per frame codec: one JPEG
#: (or raw frame) per chunk, so a clip reads only its frames; zstd gains from the frames a chunk shares
FRAME_CHUNKS = {"jpeg": 1, "zstd": 8, "raw": 1}
#: frames per shard (the unit of files): most clips of UCF101/HMDB51 are one file
FRAME_SHARD = 256
ZSTD_LEVEL = 3


class CacheError(Exception):
    """The cache is missing, of another format, or does not fit the work asked of it."""


def _cannot_write(path: Path, error: OSError) -> CacheError:
    """A write that failed (a full disk, a read-only or vanished folder) as one line that says how to go on."""
    return CacheError(f"{path}: cannot write the cache ({error.strerror or error}); free space or fix the folder, "
                      "then rerun the same command: finished videos are kept, the rest is redone")


def _writes_one_video(write):
    """``write(cache, video_id, ...)`` whose OSError (e.g. a full disk) becomes a ``CacheError``,
    after deleting what it wrote of the video, so the next run redoes it from nothing."""

    @functools.wraps(write)
    def guarded(cache, video_id, **kwargs):
        try:
            return write(cache, video_id, **kwargs)
        except OSError as error:
            discard_video(Path(cache), video_id)
            raise _cannot_write(Path(cache), error) from None

    return guarded


def video_id_for(relative_path: str) -> str:
    """The id of a video in the cache: its path below the dataset root, '/' -> '__'.

    Readable (``ApplyEyeMakeup__v_ApplyEyeMakeup_g01_c01.avi``), unique, and a valid Zarr
    node name.
    """
    return relative_path.replace("/", "__")


def window_for_clip(starts: list[int], indices, *, window: int = 16, stride: int = 2) -> int:
    """Index into ``starts`` of the window whose centre is nearest the clip's (ties: the earlier window)."""
    indices = np.asarray(indices)
    clip_centre = (indices.min() + indices.max()) / 2
    window_centres = np.asarray(starts) + (window - 1) * stride / 2
    return int(np.argmin(np.abs(window_centres - clip_centre)))


def _zarr():
    import zarr

    return zarr


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _attrs_of(group_dir: Path) -> dict | None:
    """A group's attributes read straight from its zarr.json; None if absent or damaged."""
    meta = _read_json(group_dir / "zarr.json")
    if not isinstance(meta, dict) or meta.get("node_type") != "group":
        return None
    attrs = meta.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


# --------------------------------------------------------------------------- writing


def open_for_writing(path: str | os.PathLike, *, settings: dict, dataset: dict):
    """Create the cache (or reopen it to resume) and check it was made the same way.

    ``settings`` must hold only what decides the cache's content (sizes, mask windows), so
    a resumed or sharded run with the same content settings is accepted and any other is
    refused with a clear message.
    """
    zarr = _zarr()
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CacheError(f"{path}: is a file, not a cache folder; choose another --cache path")
    try:
        return _open_for_writing(zarr, path, settings, dataset)
    except OSError as error:
        raise _cannot_write(path, error) from None


def _open_for_writing(zarr, path: Path, settings: dict, dataset: dict):
    wanted = {"fame_cache": {"format_version": FORMAT_VERSION}, "settings": settings, "dataset": dataset}
    # list the folder before reading the root's attributes: the root's zarr.json is created before anything else
    # that is not hidden ("." : another writer's temporaries), so if the list shows more, the attributes show the root
    listed = [p.name for p in path.iterdir()] if path.exists() else []
    existing = _attrs_of(path) if path.exists() else None
    if existing is None:
        if any(not name.startswith(".") for name in listed):
            raise CacheError(f"{path}: exists but is not a fame cache; choose another --cache path")
        if not _create_group_once(path, wanted):  # another process (a --shard beside us) created it first
            existing = _attrs_of(path)
    if existing is not None and existing.get("fame_cache"):
        old = existing.get("settings", {})
        old_method, new_method = mask_method_of(old), mask_method_of(settings)
        if old_method != new_method:
            raise CacheError(
                f"{path}: its masks are --masks {old_method[0]} (version {old_method[1]}), asked --masks "
                f"{new_method[0]} (version {new_method[1]}); rerun with --masks {old_method[0]} or use a new --cache"
            )
        changes = changed_settings(old, settings, change="{name}: cache has {saved!r}, asked {asked!r}")
        if changes:
            raise CacheError(
                f"{path}: was made with other settings ({changes}); rerun with the same options or use a new --cache"
            )
    root = zarr.open_group(str(path), mode="a", zarr_format=3)
    if existing is not None and {k: existing.get(k) for k in wanted} != wanted:
        root.attrs.update(wanted)
    for name in (VIDEOS, ERRORS):
        _create_group_once(path / name, {})
    return root


def mask_method_of(settings: dict) -> tuple[str, int]:
    """(method, version) of a cache's settings; caches made before ``--masks`` hold the paper's maps."""
    return settings.get("masks", "paper"), int(settings.get("mask_version", 1))


def _create_group_once(group_dir: Path, attributes: dict) -> bool:
    """Create a group's ``zarr.json`` unless it exists; True if this call created it.

    Several processes may start on one store at once (``--shard``, also on a shared file
    system): the file is written beside its place and hard-linked into it, which creates
    it whole or fails if it exists, so exactly one of them creates it and none deletes
    what another wrote (zarr's own ``create_group(overwrite=True)`` did both).
    """
    group_dir.mkdir(parents=True, exist_ok=True)
    target = group_dir / "zarr.json"
    if target.exists():
        return False
    temporary = group_dir / f".zarr.json.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(json.dumps({"attributes": attributes, "zarr_format": 3, "node_type": "group"}, indent=2),
                         encoding="utf-8")
    try:
        os.link(temporary, target)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink()


def finished_video(cache: Path, video_id: str, source_stamp: dict | None = None) -> bool:
    """Whether ``video_id`` is completely written (and from the same source file)."""
    attrs = _attrs_of(Path(cache) / VIDEOS / video_id)
    if not attrs or attrs.get("complete") is not True:
        return False
    return source_stamp is None or attrs.get("source_stamp") == source_stamp


def discard_video(cache: Path, video_id: str) -> None:
    """Delete whatever exists of a video (a half-written leftover) and its error record."""
    for group in (VIDEOS, ERRORS):
        shutil.rmtree(Path(cache) / group / video_id, ignore_errors=True)


def _write_group(group_dir: Path, attributes: dict) -> None:
    """Create or replace a group's ``zarr.json`` atomically (a reader sees old or new, never a part)."""
    group_dir.mkdir(parents=True, exist_ok=True)
    write_json(group_dir / "zarr.json", {"attributes": attributes, "zarr_format": 3, "node_type": "group"})


@_writes_one_video
def write_video(
    cache: str | os.PathLike,
    video_id: str,
    *,
    frames: np.ndarray | None,
    masks: np.ndarray,
    info: dict,
    frame_codec: str = FRAME_CODEC,
    frame_quality: int = JPEG_QUALITY,
    frame_chunk: int | None = None,
    zstd_level: int = ZSTD_LEVEL,
) -> None:
    """Write one video's arrays, then mark it complete (last, so a kill leaves it incomplete).

    Frames go through ``frame_codec`` ("jpeg" at ``frame_quality``, lossless "zstd" at
    ``zstd_level``, or "raw", uncompressed) in chunks of ``frame_chunk`` frames (default:
    the codec's own, see ``FRAME_CHUNKS``); masks always through zstd. The group and arrays are written as plain
    files in the layout zarr itself writes (``shard_writer``), skipping zarr's asynchronous
    machinery, which cost as much per video as compressing its frames.
    """
    cache = Path(cache)
    discard_video(cache, video_id)
    group = cache / VIDEOS / video_id
    _write_group(group, {"complete": False})
    if frames is not None:
        chunk_t = min(frame_chunk or FRAME_CHUNKS[frame_codec], len(frames))
        shard_t = min(FRAME_SHARD, -(-len(frames) // chunk_t) * chunk_t)
        level = frame_quality if frame_codec == "jpeg" else zstd_level
        write_sharded_array(group / "frames", frames, chunk_length=chunk_t, shard_length=shard_t, level=level,
                            codec=frame_codec, dimension_names=("t", "y", "x", "c"))
    write_sharded_array(group / "masks", masks, chunk_length=1, shard_length=len(masks), level=zstd_level,
                        dimension_names=("window", "y", "x"))
    _write_group(group, {**info, "complete": True})


@_writes_one_video
def write_error(cache: str | os.PathLike, video_id: str, *, path: str, reason: str, kind: str) -> None:
    """Record a video that could not be used (replacing any earlier record of it)."""
    cache = Path(cache)
    discard_video(cache, video_id)
    _write_group(cache / ERRORS / video_id, {"path": path, "reason": reason, "kind": kind})


# --------------------------------------------------------------------------- reading


class _ZarrRows:
    """Row reads through zarr itself, for arrays the fast shard reader does not handle."""

    def __init__(self, path: Path):
        self._array = _zarr().open_array(str(path), mode="r")
        self.shape = self._array.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._array[start:stop])

    def take(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0, *self.shape[1:]), self._array.dtype)
        start, stop = int(rows.min()), int(rows.max()) + 1
        return self.read(start, stop)[rows - start]


def _scan(directory: Path) -> Iterable[tuple[str, dict]]:
    if not directory.is_dir():
        return
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if e.is_dir())
    for name in names:
        attrs = _attrs_of(directory / name)
        if attrs is not None:
            yield name, attrs


class CacheReader:
    """Read access to a finished cache: the API that training, evaluation and users share.

    >>> cache = open_cache("ucf101.zarr")                       # doctest: +SKIP
    >>> vid = cache.video_ids[0]                                 # doctest: +SKIP
    >>> clip = cache.frames(vid, range(0, 32, 2))                # 16,H,W,3 uint8
    >>> soft = cache.soft_mask(vid, range(0, 32, 2))             # H,W uint8
    """

    def __init__(self, path: str | os.PathLike, *, source: str | os.PathLike | None = None, open_arrays: int = 4096):
        self.path = Path(path)
        root_attrs = _attrs_of(self.path)
        if root_attrs is None:
            raise CacheError(f"{self.path}: no fame cache here; run `fame preprocess SOURCE --cache {self.path}` first")
        version = (root_attrs.get("fame_cache") or {}).get("format_version")
        if version != FORMAT_VERSION:
            raise CacheError(f"{self.path}: cache format {version!r}, this fame reads {FORMAT_VERSION}; rebuild the cache")
        self.settings: dict = root_attrs.get("settings", {})
        self.dataset: dict = root_attrs.get("dataset", {})
        self.classes: list[str] = list(self.dataset.get("classes", []))
        self.source = Path(source) if source is not None else Path(self.dataset.get("root", ""))
        self.has_frames: bool = bool(self.settings.get("frames", True))
        #: how the frames are stored: "jpeg", "zstd" (also caches made before the choice
        #: existed) or "raw"; None without frames
        self.frame_codec: str | None = self.settings.get("frame_codec", "zstd") if self.has_frames else None
        #: how the soft maps were made: (method, version), e.g. ("motion", 1); ("paper", 1) for
        #: caches made before the choice existed
        self.mask_method: tuple[str, int] = mask_method_of(self.settings)
        scanned = list(_scan(self.path / VIDEOS))
        self._info = {vid: attrs for vid, attrs in scanned if attrs.get("complete") is True}
        #: videos begun and not finished: a writer still at work, or one stopped mid-video (never read)
        self.unfinished: list[str] = sorted(vid for vid, attrs in scanned if attrs.get("complete") is not True)
        self.video_ids: list[str] = sorted(self._info)
        self.errors: list[dict] = [
            {"video_id": vid, "path": a.get("path"), "reason": a.get("reason"), "kind": a.get("kind")}
            for vid, a in _scan(self.path / ERRORS)
        ]
        self._arrays: OrderedDict = OrderedDict()
        self._open_arrays = open_arrays

    # -- metadata
    def __len__(self) -> int:
        return len(self.video_ids)

    def info(self, video_id: str) -> dict:
        """path (relative to SOURCE), label, class_name, num_frames, fps, height, width, ..."""
        try:
            return dict(self._info[video_id])
        except KeyError:
            raise KeyError(f"{video_id!r} is not a finished video of {self.path}") from None

    @property
    def splits(self) -> dict[str, list[str]]:
        """Split name -> ids of the finished videos in it."""
        by_path = {a["path"]: vid for vid, a in self._info.items()}
        return {
            name: [by_path[p] for p in paths if p in by_path]
            for name, paths in (self.dataset.get("splits") or {}).items()
        }

    def split(self, name: str | None, fold: int = 1) -> list[str]:
        """Ids of a split; "train"/"test" resolve to "train<fold>"/"test<fold>" on folded datasets.

        ``None`` or "all" gives every finished video.
        """
        if name in (None, "", "all"):
            return list(self.video_ids)
        splits = self.splits
        for candidate in (name, fold_split_name(name, fold)):
            if candidate in splits:
                return splits[candidate]
        available = ", ".join(sorted(splits)) or "none (use --split all)"
        raise CacheError(f"{self.path}: no split {name!r} (fold {fold}); available: {available}")

    def decoder(self, video_id: str) -> str:
        """The decoder whose frames (and masks) were cached for a video: "pyav" or "decord".

        Usually the cache's ``--decoder``; the other one where it could not read the file.
        Videos written before this was recorded read as the cache's decoder.
        """
        return self._info[video_id].get("decoder") or self.settings.get("decoder", "decord")

    def decoder_counts(self) -> dict[str, int]:
        """Finished videos per decoder that produced their frames, e.g. {"pyav": 9, "decord": 1}."""
        counts: dict[str, int] = {}
        for vid in self.video_ids:
            name = self.decoder(vid)
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    def labels(self, video_ids: Iterable[str]) -> np.ndarray:
        return np.array([self._info[v]["label"] for v in video_ids], dtype=np.int64)

    # -- arrays
    def _array(self, video_id: str, name: str):
        """A reader of one stored array: the fast shard reader, or zarr for other layouts."""
        key = (video_id, name)
        array = self._arrays.get(key)
        if array is None:
            if video_id not in self._info:
                raise KeyError(f"{video_id!r} is not a finished video of {self.path}")
            path = self.path / VIDEOS / video_id / name
            try:
                array = ShardedArrayReader(path)
            except UnsupportedLayout:
                array = _ZarrRows(path)
            self._arrays[key] = array
            if len(self._arrays) > self._open_arrays:
                self._arrays.popitem(last=False)
        else:
            self._arrays.move_to_end(key)
        return array

    def frames(self, video_id: str, indices) -> np.ndarray:
        """Frames ``indices`` of a video: len(indices),H,W,3 uint8.

        From the cache, or decoded from the source video with decord for a ``--no-frames``
        cache.
        """
        indices = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        info = self._info[video_id]
        if indices.size and (indices.min() < 0 or indices.max() >= info["num_frames"]):
            raise IndexError(f"{video_id}: frame indices must lie in [0, {info['num_frames']}), got {indices.min()}..{indices.max()}")
        if not self.has_frames:
            from pipelines.data.video import read_clip

            return read_clip(self.source / info["path"], indices, size=(info["height"], info["width"]))
        return self._array(video_id, "frames").take(indices)  # decodes each needed chunk once

    def has_masks(self, video_id: str) -> bool:
        """Whether a finished video's soft masks are present (format 1 always writes them;
        this catches a cache damaged by hand)."""
        return (self.path / VIDEOS / video_id / "masks" / "zarr.json").is_file()

    def window_index(self, video_id: str, indices) -> int:
        """Which stored window serves the clip made of frames ``indices``."""
        info = self._info[video_id]
        mask = info["mask_window"]
        return window_for_clip(info["window_starts"], list(indices), window=mask["window"], stride=mask["stride"])

    def soft_mask(self, video_id: str, indices) -> np.ndarray:
        """The soft foreground map (H,W uint8, 0..255) that training uses for this clip."""
        window = self.window_index(video_id, indices)
        return self._array(video_id, "masks").read(window, window + 1)[0]

    def soft_masks(self, video_id: str) -> np.ndarray:
        """Every stored window's soft map of a video: N,H,W uint8."""
        masks = self._array(video_id, "masks")
        return masks.read(0, masks.shape[0])

    def summary(self) -> dict:
        """What ``fame info --json`` prints."""
        splits = self.splits
        return {
            "path": str(self.path),
            "format_version": FORMAT_VERSION,
            "layout": self.dataset.get("layout"),
            "source": self.dataset.get("root"),
            "videos": len(self.video_ids),
            "frames": int(sum(self._info[v]["num_frames"] for v in self.video_ids)),
            "frames_stored": self.has_frames,
            "frame_codec": self.frame_codec,
            "decoder": self.settings.get("decoder", "decord"),
            "decoders": self.decoder_counts(),
            "masks": {"method": self.mask_method[0], "version": self.mask_method[1]},
            "classes": self.classes,
            "splits": {name: len(ids) for name, ids in sorted(splits.items())},
            "listed": int(self.dataset.get("videos", 0)),
            "pending": max(0, int(self.dataset.get("videos", 0)) - len(self.video_ids) - len(self.errors)),
            "unfinished": len(self.unfinished),
            "errors": [{"path": e["path"], "reason": e["reason"]} for e in self.errors]
            + [{"path": p["path"], "reason": p["reason"]} for p in self.dataset.get("problems", [])],
            "settings": self.settings,
        }


def open_cache(path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> CacheReader:
    """Open a cache for reading. ``source`` overrides where a ``--no-frames`` cache's videos are."""
    return CacheReader(path, source=source)
