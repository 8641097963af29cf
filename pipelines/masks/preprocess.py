"""``fame preprocess``: decode every video once, compute its soft masks once, cache both.

The costly stage, done once: resumable (finished videos are skipped, half-written ones
redone), parallel (``workers`` processes, each writing its own videos straight into the
store) and shardable across machines (``shard=(i, n)``, or torchrun's RANK/WORLD_SIZE).
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.data import cache as cache_format
from pipelines.data.layouts import DatasetIndex, VideoEntry, discover_dataset
from pipelines.data.video import TruncatedVideoError, VideoError, check_file, decode_video, read_video
from pipelines.masks.methods import LEGACY_METHOD, MaskParameters, compute_video_masks, get_method
from pipelines.settings import SettingsError

#: crashes of a worker process a video may be part of before it is recorded as an error
MAX_CRASHES = 2
#: how the stage decodes a whole video (docs/benchmarks.md compares them); a file the chosen one
#: cannot read is given to the other (``decode_any``)
DECODERS = {"pyav": decode_video, "decord": read_video}
#: the decoder that reads the clips of a ``--no-frames`` cache at training (``video.read_clip``)
CLIP_DECODER = "decord"


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything ``fame preprocess`` was asked; saved in the cache's attributes."""

    source: str  # dataset root (or list file for --layout list)
    cache: str  # the Zarr store to write
    layout: str = "auto"  # auto|ucf101|hmdb51|diving48|kinetics|folder|list
    split_dir: str | None = None  # where the split files are, when not found beside the videos
    short_side: int = 128  # frames are resized at decode time so the shorter side is this (0: native)
    frames: bool = True  # store frames; False stores masks and metadata only (decode at training)
    window: int = 16  # frames per mask window (the paper's clip length)
    stride: int = 2  # temporal stride inside a mask window (the paper's sampling stride)
    hop: int = 0  # frames between the starts of consecutive mask windows; 0: the method's own (adaptive 8, the others 16, half a window's 31-frame span)
    masks: str = "adaptive"  # mask method (pipelines.masks.methods): adaptive (the default) | motion | paper | frame-difference | translation-difference | centre
    fg_fraction: float = 0.5  # --masks paper, step 2: share of pixels taken as foreground seeds
    bg_fraction: float = 0.1  # --masks paper, step 2: share of pixels taken as background seeds
    colour_bins: int = 10  # --masks paper, step 3: bins per colour axis
    colour_context: int = 0  # --masks paper, step 4 (ours): windows on each side whose seeds join a window's colour histograms; 0: the paper's
    frame_codec: str = cache_format.FRAME_CODEC  # jpeg (small, lossy) | zstd (lossless) | raw (fastest reads, 12x larger)
    frame_quality: int = cache_format.JPEG_QUALITY  # JPEG quality of the frames (1..100)
    frame_chunk: int = 0  # frames per compressed chunk, the unit of reading (0: the codec's own, jpeg/raw 1, zstd 8)
    zstd_level: int = cache_format.ZSTD_LEVEL  # zstd level of the masks, and of the frames with --frame-codec zstd
    decoder: str = "pyav"  # pyav: frames in order, scaled before the RGB conversion (faster) | decord: the reference
    workers: int = 1  # worker processes (1: in this process)
    shard: tuple[int, int] = (0, 1)  # (index, count): this process does videos index, index+count, ...
    limit: int | None = None  # only the first N videos of the (sharded) list, for trials
    threads: int | None = None  # torch threads with workers=1; None: OMP_NUM_THREADS, else a share of the cores (pipelines.threads)

    def __post_init__(self) -> None:
        # Checked at once, unlike the other commands' settings: frame_chunk 0 resolves to the
        # codec's own here, and hop 0 to the mask method's own, so that the cache records what
        # was used.
        self.validate()
        if self.frame_chunk == 0:
            object.__setattr__(self, "frame_chunk", cache_format.FRAME_CHUNKS[self.frame_codec])
        if self.hop == 0:
            object.__setattr__(self, "hop", get_method(self.masks).hop)

    def validate(self) -> None:
        """Raise SettingsError for values no cache can be made with."""
        if self.frame_codec not in cache_format.FRAME_CHUNKS:
            raise SettingsError(f"--frame-codec {self.frame_codec!r}: choose one of {', '.join(cache_format.FRAME_CHUNKS)}")
        if not 1 <= self.frame_quality <= 100:
            raise SettingsError(f"--frame-quality {self.frame_quality}: JPEG quality lies in [1, 100]")
        try:
            method = get_method(self.masks)  # names the choices
        except ValueError as error:
            raise SettingsError(str(error)) from None
        if self.colour_context < 0:
            raise SettingsError(f"--colour-context {self.colour_context}: give a number of windows >= 0 (0: the paper's step 4)")
        if self.colour_context and not method.uses_colour_settings:
            raise SettingsError(f"--colour-context {self.colour_context}: refines the paper's colour step; "
                                f"it needs --masks paper (asked --masks {self.masks})")
        if self.decoder not in DECODERS:
            raise SettingsError(f"--decoder {self.decoder!r}: choose one of {', '.join(DECODERS)}")
        if self.hop < 0:
            raise SettingsError(f"--hop {self.hop}: give a number of frames >= 1, or 0 for the mask method's own")
        if self.frame_chunk < 0:
            raise SettingsError(f"--frame-chunk {self.frame_chunk}: give a number of frames, or 0 for the codec's own")
        if self.threads is not None and self.threads < 1:
            raise SettingsError(f"--threads {self.threads}: give at least 1")
        shard_index, shard_count = self.shard
        if not 0 <= shard_index < shard_count:
            raise SettingsError(f"--shard {shard_index}/{shard_count}: the index must lie in [0, {shard_count})")

    def content_settings(self) -> dict:
        """The settings that decide what the cache holds; a resume must match them."""
        keys = ("short_side", "frames", "window", "stride", "hop", "fg_fraction", "bg_fraction", "colour_bins",
                "colour_context", "frame_codec", "frame_quality", "frame_chunk", "zstd_level", "decoder")
        content = {k: getattr(self, k) for k in keys}
        if self.decoder == "decord":  # recorded by absence, as caches made before the choice (frames differ slightly)
            del content["decoder"]
        if not self.colour_context:  # the paper's step 4: recorded by absence, as caches made before the option
            del content["colour_context"]
        method = get_method(self.masks)
        if method.name != LEGACY_METHOD:  # the paper's maps: recorded by absence, as caches made before --masks
            content.update(masks=method.name, mask_version=method.version)
        if not method.uses_colour_settings:  # the paper's constants play no part
            content.update(fg_fraction=None, bg_fraction=None, colour_bins=None)
        if not self.frames:  # no frames stored: how they would have been stored does not matter
            content.update(frame_codec=None, frame_quality=None, frame_chunk=None)
        elif self.frame_codec != "jpeg":
            content["frame_quality"] = None
        return content


@dataclass
class VideoResult:
    """What happened to one video."""

    video_id: str
    path: str
    status: str  # "done" | "skipped" | "error"
    frames: int = 0
    reason: str = ""
    seconds: float = 0.0
    decoder: str = ""  # the decoder whose frames were cached ("done" only)
    fallback: str = ""  # why the chosen decoder could not read it, when the other one did


@dataclass
class PreprocessSummary:
    """The outcome of one run; ``failed`` decides the exit status."""

    total: int = 0  # videos this run was responsible for
    done: int = 0
    skipped: int = 0  # already finished by an earlier run
    fallbacks: int = 0  # videos done by the other decoder, the chosen one could not read them
    frames: int = 0
    seconds: float = 0.0
    layout: str = ""
    errors: list[VideoResult] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # from the split files

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.problems)


ProgressCallback = Callable[[VideoResult | None, int, int], None]  # (result or None at start, finished, total)


def source_stamp(path: Path) -> dict:
    """What identifies a source file's version cheaply: its size in bytes."""
    return {"size": path.stat().st_size}


def mask_parameters(settings: PreprocessSettings) -> MaskParameters:
    """What the mask method needs of the settings."""
    return MaskParameters(window=settings.window, stride=settings.stride, hop=settings.hop,
                          fg_fraction=settings.fg_fraction, bg_fraction=settings.bg_fraction,
                          colour_bins=settings.colour_bins, colour_context=settings.colour_context)


def compute_soft_masks(frames: np.ndarray, settings: PreprocessSettings) -> tuple[np.ndarray, list[int]]:
    """The soft map of every temporal window of a video, by ``settings.masks``: (N,h,w uint8, starts)."""
    return compute_video_masks(frames, settings.masks, mask_parameters(settings))


# --------------------------------------------------------------------------- one video


def decoder_order(settings: PreprocessSettings) -> list[str]:
    """The decoders to try on a file, the chosen one first.

    A ``--no-frames`` cache is read at training by ``CLIP_DECODER`` alone, so there a file
    only the other decoder reads is of no use and is not tried with it.
    """
    others = [name for name in DECODERS if name != settings.decoder]
    if not settings.frames:
        others = [name for name in others if name == CLIP_DECODER]
    return [settings.decoder, *others]


def decode_any(path: Path, settings: PreprocessSettings):
    """(frames, probe, decoder, fallback) from the first of ``decoder_order`` that reads ``path``.

    ``fallback`` is the chosen decoder's reason when another one read the file, else "".
    What no decoder can help with is raised at once: a missing, empty or unreadable file
    (``check_file``), or one PyAV found truncated (``TruncatedVideoError``). When every
    decoder fails, the VideoError raised names each one's reason, in one line.
    """
    check_file(path)
    failures: list[tuple[str, VideoError]] = []
    for name in decoder_order(settings):
        try:
            frames, probe = DECODERS[name](path, short_side=settings.short_side)
        except TruncatedVideoError:
            raise
        except VideoError as error:
            failures.append((name, error))
            continue
        fallback = f"{failures[0][0]}: {failures[0][1].reason}" if failures else ""
        return frames, probe, name, fallback
    raise _unreadable(path, failures, settings)


def _without_advice(reason: str) -> str:
    """A VideoError's reason without its closing advice ("...; re-encode or remove it")."""
    return reason.rpartition("; ")[0] or reason


def _unreadable(path: Path, failures: list[tuple[str, VideoError]], settings: PreprocessSettings) -> VideoError:
    """One error for a file no decoder read: each decoder's reason without its advice, then the advice."""
    if len(failures) == 1:  # a --no-frames cache with --decoder decord: no other decoder was tried
        name, error = failures[0]
        if settings.frames:
            return error
        return type(error)(path, f"{_without_advice(error.reason)}, and a --no-frames cache's clips are read by "
                                 f"{name} at training, so no other decoder is tried; re-encode it, or cache its frames")
    reasons = "; ".join(f"{name}: {_without_advice(error.reason)}" for name, error in failures)
    error = failures[0][1]
    return type(error)(path, f"no decoder reads it ({reasons}); re-encode or remove it")


def _init_worker() -> None:
    """Per-process set-up: one torch thread (parallelism is by processes), imports done once."""
    import torch

    from pipelines import fame  # noqa: F401  (import time is paid here, not by the first video)
    from pipelines.data import video
    from pipelines.masks import motion as motion_masks

    torch.set_num_threads(1)


def process_video(entry: VideoEntry, settings: PreprocessSettings, dataset_root: str) -> VideoResult:
    """Decode, compute masks and write one video; every failure becomes an error record."""
    started = time.perf_counter()
    video_id = cache_format.video_id_for(entry.path)
    path = Path(dataset_root) / entry.path
    cache = settings.cache
    from pipelines.data.clips import clip_span  # torch: imported where videos are processed, not by `fame --help`

    span = clip_span(settings.window, settings.stride)
    try:
        frames, probe, decoder, fallback = decode_any(path, settings)
        masks, starts = compute_soft_masks(frames, settings)  # a short video: one window, last frame repeated
        info = {
            "path": entry.path, "label": entry.label, "class_name": entry.class_name,
            "num_frames": int(len(frames)), "fps": probe.fps, "height": int(frames.shape[1]),
            "width": int(frames.shape[2]), "source_height": probe.source_height,
            "source_width": probe.source_width, "window_starts": starts,
            "mask_window": {"window": settings.window, "stride": settings.stride, "hop": settings.hop},
            "source_stamp": source_stamp(path), "decoder": decoder,
        }
        if len(frames) < span:  # how many repeated frames its one mask window holds (docs/cache-format.md)
            info["window_padding"] = span - len(frames)
        cache_format.write_video(cache, video_id, frames=frames if settings.frames else None, masks=masks, info=info,
                                 frame_codec=settings.frame_codec, frame_quality=settings.frame_quality,
                                 frame_chunk=settings.frame_chunk, zstd_level=settings.zstd_level)
        return VideoResult(video_id, entry.path, "done", len(frames), seconds=time.perf_counter() - started,
                           decoder=decoder, fallback=fallback)
    except VideoError as error:
        cache_format.write_error(cache, video_id, path=entry.path, reason=error.reason, kind=type(error).__name__)
        return VideoResult(video_id, entry.path, "error", reason=error.reason, seconds=time.perf_counter() - started)


def _process_in_worker(entry: VideoEntry, settings: PreprocessSettings, dataset_root: str) -> VideoResult:
    return process_video(entry, settings, dataset_root)


# --------------------------------------------------------------------------- the stage


def plan(index: DatasetIndex, settings: PreprocessSettings) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """(this shard's entries, those of them still to do)."""
    shard_index, shard_count = settings.shard
    mine = index.entries[shard_index::shard_count]
    if settings.limit is not None:
        mine = mine[: settings.limit]
    cache = Path(settings.cache)
    todo = []
    for entry in mine:
        path = index.root / entry.path
        try:
            stamp = source_stamp(path)
        except OSError:
            stamp = None
        if stamp is None or not cache_format.finished_video(cache, cache_format.video_id_for(entry.path), stamp):
            todo.append(entry)
    return mine, todo


def threads_used(settings: PreprocessSettings) -> str:
    """Size this process's torch threads when it does the work itself (``workers`` 1); the
    worker processes run one thread each. Returns the line that says so."""
    if settings.workers <= 1:
        from pipelines.threads import configure_threads

        return configure_threads(settings.threads)
    return f"threads: 1 torch thread in each of the {settings.workers} worker processes"


def run_preprocess(settings: PreprocessSettings, progress: ProgressCallback | None = None,
                   log: Callable[[str], None] | None = None) -> PreprocessSummary:
    """Run the whole stage; returns its summary (never raises for a bad video). ``log`` hears
    the line saying how many threads it uses."""
    started = time.perf_counter()
    message = threads_used(settings)
    if log is not None:
        log(message)
    index = discover_dataset(
        Path(settings.source), settings.layout, Path(settings.split_dir) if settings.split_dir else None
    )
    dataset = {
        "layout": index.layout, "root": str(index.root), "classes": index.classes,
        "splits": index.splits, "videos": len(index.entries),
        "problems": [{"path": p, "reason": r} for p, r in index.problems],
    }
    root = cache_format.open_for_writing(settings.cache, settings={**settings.content_settings()}, dataset=dataset)
    root.attrs.update({"last_run": {k: v for k, v in asdict(settings).items() if k not in settings.content_settings()}})
    mine, todo = plan(index, settings)
    summary = PreprocessSummary(total=len(mine), skipped=len(mine) - len(todo), layout=index.layout,
                                problems=list(index.problems))
    finished = summary.skipped
    if progress:
        progress(None, finished, summary.total)  # the total is known before the first video

    def record(result: VideoResult) -> None:
        nonlocal finished
        finished += 1
        if result.status == "done":
            summary.done += 1
            summary.frames += result.frames
            summary.fallbacks += bool(result.fallback)
        else:
            summary.errors.append(result)
        if progress:
            progress(result, finished, summary.total)

    if settings.workers <= 1:
        for entry in todo:
            record(process_video(entry, settings, str(index.root)))
    else:
        _run_pool(todo, settings, str(index.root), record)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_pool(todo: list[VideoEntry], settings: PreprocessSettings, dataset_root: str, record) -> None:
    """Process ``todo`` on worker processes; survive workers that die (decoder crashes)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # torch and decord are not fork-safe
    crashes: dict[str, int] = {}
    queue = list(reversed(todo))
    while queue:
        with ProcessPoolExecutor(settings.workers, mp_context=context, initializer=_init_worker) as pool:
            in_flight = {}
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < 2 * settings.workers:
                        entry = queue.pop()
                        in_flight[pool.submit(_process_in_worker, entry, settings, dataset_root)] = entry
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        entry = in_flight.pop(future)
                        record(future.result())
            except BrokenProcessPool:
                # a worker died (e.g. a decoder crash): every video in flight is suspect
                for entry in in_flight:
                    vid = cache_format.video_id_for(entry.path)
                    crashes[vid] = crashes.get(vid, 0) + 1
                    if crashes[vid] >= MAX_CRASHES:
                        reason = "the decoder crashed the worker process; re-encode or remove the file"
                        cache_format.write_error(settings.cache, vid, path=entry.path, reason=reason, kind="DecoderCrash")
                        record(VideoResult(vid, entry.path, "error", reason=reason))
                    else:
                        queue.append(entry)

