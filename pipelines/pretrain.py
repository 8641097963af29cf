"""``fame pretrain``: MoCo + FAME from the cache, on one process or many (torchrun).

One step, as the paper's code does it, with the masks coming from the cache:

1. The loader (``ClipDataset`` in "pretrain" mode) gives two different random clips of
   each video, each with its own random resized crop and flip, and the query clip's soft
   foreground map cropped and flipped like the query (uint8 clips, CPU workers).
2. On the training device, ``fame_query``: the soft map is binarised to the top ``beta``
   of the crop (``select_foreground``) and the query keeps that foreground on the
   background of another clip of the batch (``merge_foreground_background`` with a
   ``random_derangement``). ``fame=False`` skips this step and is the MoCo baseline.
3. Both views get the per-clip colour augmentations (``ClipAugment``), batched.
4. MoCo's symmetric loss, SGD with momentum, cosine schedule.

The merge permutation is drawn per process, over that process's share of the batch: the
paper's code does the same (its ``randperm`` runs inside each GPU's forward). A process's
share is a random sample of the dataset (the sampler shuffles over all videos), so a
query meets the background of a random other video either way; only the number of
candidate backgrounds (the per-process batch, at least 2) differs.

Randomness is reproducible and resumable: the data of a sample depends only on (seed,
epoch, index), and each epoch reseeds the process's torch generators from (seed, epoch,
rank). A run resumed from the checkpoint of epoch e therefore continues exactly like the
uninterrupted run, on any number of processes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from pipelines import distributed
from pipelines.atomic_files import atomic_write_text
from pipelines.augment import AugmentStrengths, ClipAugment
from pipelines.cache import CacheError, open_cache
from pipelines.checkpoints import (
    CheckpointError,
    checkpoint_dir,
    latest_path,
    load_checkpoint,
    make_checkpoint,
)
from pipelines.clips import ClipDataset, clip_span
from pipelines.devices import autocast_context, channels_last_3d_ok, pin_memory, resolve_device
from pipelines.fame import fame_merge, parse_beta
from pipelines.models import BACKBONES, build_backbone
from pipelines.moco import MoCo
from pipelines.settings import SettingsError, changed_settings
from pipelines.training import epoch_seed, grad_scaler, restore_training_state, save_epoch_checkpoint, training_state

SCHEDULES = ("cosine", "constant")
# The paper's code: a 2-layer MLP head for R(2+1)D, a linear one for I3D.
DEFAULT_MLP = {"r2plus1d_18": True, "r3d_18": True, "i3d": False, "small": True}
# Settings a resumed run may change (paths may differ on another machine); any other change
# needs a new run directory.
RESUMABLE_CHANGES = frozenset(
    {"cache", "run_dir", "source", "epochs", "device", "workers", "log_every", "checkpoint_every",
     "max_steps_per_epoch", "amp", "channels_last", "recipe"}
)
METRICS = "metrics.jsonl"
SETTINGS = "settings.json"
VIEWS = 2  # clips per sample: the query and the key
# Warn when the queue holds more than this many keys per training video: the paper's
# Kinetics queue (65536) on a small set is mostly stale keys of the same few videos.
QUEUE_KEYS_PER_VIDEO = 10
# Below this many videos the demo's recipe fits; above it, the paper's UCF101 one.
SMALL_DATASET = 1000
LOADER_PREFETCH = 4  # batches each loader worker prepares ahead


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving."""


@dataclass(frozen=True)
class PretrainSettings:
    """Everything ``fame pretrain`` was asked; saved as RUN/settings.json and in every checkpoint."""

    cache: str  # the Zarr cache written by `fame preprocess`
    run_dir: str  # checkpoints/, settings.json and metrics.jsonl go here
    arch: str = "r2plus1d_18"  # backbone: r2plus1d_18 | r3d_18 | i3d | small
    epochs: int = 200  # epochs to reach (a resumed run continues up to this)
    batch_size: int = 64  # global batch of videos per step, split evenly over processes (the paper's -b)
    clip_len: int = 16  # frames per clip
    stride: int = 2  # temporal stride between a clip's frames
    crop: int = 112  # side of the random resized crop, in pixels
    fame: bool = True  # merge the query's foreground with another clip's background; False: MoCo baseline
    beta: float | str = 0.5  # share of each cropped query kept as foreground ("portion of the foreground"); "auto": fitted per crop (ours)
    grayscale_p: float = 0.2  # per clip, after FAME: probability of grayscale (paper: 0.2)
    jitter_p: float = 0.8  # per clip: probability of colour jitter (0.4, 0.4, 0.4, 0.1) (paper: 0.8)
    blur_p: float = 0.5  # per clip: probability of Gaussian blur, sigma in [0.1, 2] (paper: 0.5)
    queue: int = 65536  # MoCo negatives K (paper: 65536 on Kinetics-400, 2048 on UCF101)
    moco_dim: int = 128  # output size of the projection head
    momentum: float = 0.999  # m of the key encoder's momentum update
    temperature: float = 0.1  # softmax temperature
    mlp: bool | None = None  # 2-layer MLP head; None: the paper's choice for the backbone (MLP except I3D)
    bn_splits: int = 2  # one process only: BN sub-batches that simulate shuffle-BN across GPUs
    lr: float = 0.01  # peak learning rate (SGD)
    weight_decay: float = 1e-4  # SGD weight decay
    sgd_momentum: float = 0.9  # SGD momentum
    schedule: str = "cosine"  # learning-rate schedule over all steps: cosine | constant
    warmup: int = 0  # epochs of linear warm-up before the schedule
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = 4  # DataLoader worker processes per training process (0: in the training process)
    seed: int = 0  # seeds the model, the data and the augmentations
    split: str = "train"  # which videos of the cache: a split name, or "all"
    fold: int = 1  # which fold for datasets with folded splits (UCF101, HMDB51)
    checkpoint_every: int = 10  # keep RUN/checkpoints/epoch_XXXX.pt every N epochs (latest.pt every epoch)
    log_every: int = 10  # a metrics line every N steps (and at the end of each epoch)
    max_steps_per_epoch: int | None = None  # cut epochs short (demos, benchmarks); None: whole epochs
    amp: bool = True  # mixed precision on CUDA (no effect on CPU)
    channels_last: bool | None = None  # channels-last-3d memory layout; None: on CUDA only
    source: str | None = None  # where a --no-frames cache's videos are, if not where it was made
    recipe: str | None = None  # the recipe these settings came from (name@version), if any

    def validate(self) -> None:
        """Raise SettingsError for values no run can use."""
        problems = []
        if self.arch not in BACKBONES:
            problems.append(f"arch {self.arch!r} is not one of {', '.join(BACKBONES)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "clip_len", "stride", "crop", "queue", "moco_dim", "bn_splits",
                     "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            problems.append(f"max_steps_per_epoch must be at least 1, got {self.max_steps_per_epoch}")
        try:
            parse_beta(self.beta)
        except ValueError as error:
            problems.append(str(error))
        for name in ("grayscale_p", "jitter_p", "blur_p"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} is a probability and must lie in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.lr <= 0 or self.temperature <= 0:
            problems.append("lr and temperature must be positive")
        if self.warmup < 0 or self.workers < 0:
            problems.append("warmup and workers cannot be negative")
        if problems:
            raise SettingsError("; ".join(problems))

    @property
    def use_mlp(self) -> bool:
        return DEFAULT_MLP.get(self.arch, True) if self.mlp is None else self.mlp


ProgressCallback = Callable[[str, dict], None]  # (event, data): "start", "warning", "step", "epoch"


@dataclass
class PretrainResult:
    """What a finished run leaves behind."""

    run_dir: str
    epochs: int  # epochs finished in total (including those before a resume)
    steps: int  # optimizer steps in total
    checkpoint: str  # the latest checkpoint
    resumed_from: int | None = None  # epoch the run resumed at, if it did
    skipped_videos: list[str] = field(default_factory=list)  # too short for one clip
    last_metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The FAME step and the step's data
# ---------------------------------------------------------------------------------------------


def fame_query(
    query: Tensor, soft: Tensor, *, beta: float | str = 0.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The online FAME step on a batch of query clips (B, C, T, H, W, uint8 or float) and their
    cropped soft maps (B, H, W): the hard mask is the top ``beta`` of each crop (step 5; "auto":
    each crop's ``fitted_foreground_fraction``) and each clip keeps it on the background of
    another clip of the batch (step 6). Returns (fused clips, mask bool B, H, W, permutation B)."""
    return fame_merge(query, soft, beta=beta, generator=generator)  # steps 5-6, pipelines/fame.py


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` from a DistributedSampler, so persistent loader workers draw
    each epoch's clips without being told the epoch (``PairDataset`` takes such pairs)."""

    def __init__(self, sampler: torch.utils.data.DistributedSampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class PairDataset(ClipDataset):
    """``ClipDataset`` in pretrain mode, indexed by the ``(epoch, index)`` pairs of ``EpochSampler``."""

    def __getitem__(self, item: tuple[int, int]) -> dict:
        epoch, index = item
        return self.sample(index, epoch=epoch)


# ---------------------------------------------------------------------------------------------
# Checks at start: fail in one line before any training, not mid-epoch
# ---------------------------------------------------------------------------------------------


def check_cache_fits(reader, settings: PretrainSettings, *, world: int) -> tuple[list[str], list[str]]:
    """The videos this run trains on, and those skipped as too short for one clip.

    Raises CacheError when the cache cannot serve the run at all: no video long enough, crop
    larger than the stored frames, missing soft masks (FAME), missing source videos (a
    ``--no-frames`` cache), fewer videos than one batch.
    """
    ids = reader.split(settings.split, settings.fold)
    if not ids:
        raise CacheError(f"{reader.path}: split {settings.split!r} (fold {settings.fold}) has no finished video")
    infos = {vid: reader.info(vid) for vid in ids}
    span = clip_span(settings.clip_len, settings.stride)
    fits = [vid for vid in ids if infos[vid]["num_frames"] >= span]
    skipped = [vid for vid in ids if infos[vid]["num_frames"] < span]
    if not fits:
        longest = max(info["num_frames"] for info in infos.values())
        raise CacheError(
            f"{reader.path}: no video has the {span} frames a {settings.clip_len}x{settings.stride} clip spans "
            f"(longest: {longest}); lower --clip-len/--stride"
        )
    short_side = min(min(infos[vid]["height"], infos[vid]["width"]) for vid in fits)
    if settings.crop > short_side:
        raise CacheError(
            f"{reader.path}: --crop {settings.crop} is larger than the cached frames (short side {short_side}); "
            f"use --crop {short_side} or less, or preprocess with --short-side {settings.crop} or more"
        )
    if settings.fame:
        missing = [vid for vid in fits if not reader.has_masks(vid)]
        if missing:
            raise CacheError(
                f"{reader.path}: {len(missing)} video(s) have no soft masks (e.g. {missing[0]}); "
                "rebuild the cache with `fame preprocess`, or train with --no-fame"
            )
    if not reader.has_frames:
        first = reader.source / infos[fits[0]]["path"]
        if not first.is_file():
            raise CacheError(
                f"{reader.path}: a --no-frames cache reads its videos from {reader.source}, but {first} is "
                "missing; pass --source DATASET_ROOT"
            )
    per_process = settings.batch_size // world
    if len(fits) // world < per_process:
        raise CacheError(
            f"{reader.path}: {len(fits)} usable videos cannot fill one batch of {settings.batch_size}"
            + (f" on {world} processes" if world > 1 else "")
            + "; lower --batch-size"
        )
    return fits, skipped


def queue_warning(settings: PretrainSettings, videos: int) -> str | None:
    """One line when the queue holds many times more keys than the data has videos (None
    otherwise), naming the recipe that fits. Issue 12 reports the defaults (queue 65536, key
    momentum 0.999) learning nothing in 400 steps on 144 videos (contrastive top-1 0.4%)."""
    if settings.queue <= QUEUE_KEYS_PER_VIDEO * videos:
        return None
    fits = ("--config synth_small (queue 64, key momentum 0.99), or --queue below the video count with "
            "--momentum 0.99" if videos < SMALL_DATASET else "--config ucf101_r2plus1d_112 (queue 2048)")
    return (f"--queue {settings.queue} holds {settings.queue // max(videos, 1)}x more keys than the {videos} training "
            f"videos: most negatives are stale keys of the same videos and MoCo may learn nothing; use {fits}")


def check_batch(settings: PretrainSettings, world: int) -> int:
    """The per-process batch; raises SettingsError if the batch does not split as needed."""
    if settings.batch_size % world:
        raise SettingsError(f"--batch-size {settings.batch_size} does not split evenly over {world} processes")
    per_process = settings.batch_size // world
    if settings.fame and per_process < 2:
        raise SettingsError("FAME merges backgrounds within a process's batch: use at least 2 videos per process")
    if world == 1 and per_process % settings.bn_splits:
        raise SettingsError(
            f"--batch-size {settings.batch_size} does not split into {settings.bn_splits} BN sub-batches"
        )
    if VIEWS * settings.batch_size > settings.queue:
        raise SettingsError(
            f"--queue {settings.queue} is smaller than the {VIEWS * settings.batch_size} keys each step enqueues"
        )
    return per_process


def check_resume(run_dir: Path, settings: PretrainSettings, resume: bool) -> dict | None:
    """The checkpoint to resume from (None: start fresh); refuses to overwrite a run."""
    latest = latest_path(run_dir)
    if not resume:
        if latest.exists():
            raise SettingsError(
                f"{run_dir} already holds a run ({latest}); add --resume to continue it or choose another --run-dir"
            )
        return None
    if not latest.exists():
        return None
    try:
        checkpoint = load_checkpoint(latest, kind="pretrain")
    except CheckpointError as error:
        kept = sorted(checkpoint_dir(run_dir).glob("epoch_*.pt"))
        hint = f"; the newest epoch checkpoint is {kept[-1]}: copy it to {latest} to resume from it" if kept else ""
        raise CheckpointError(f"{error}{hint}") from None
    changes = changed_settings(checkpoint["settings"], asdict(settings), resumable=RESUMABLE_CHANGES, only_asked=True)
    if changes:
        raise SettingsError(f"{run_dir} was started with other settings ({changes}); resume with the same options")
    return checkpoint


# ---------------------------------------------------------------------------------------------
# Model, optimiser, schedule
# ---------------------------------------------------------------------------------------------


def build_moco(settings: PretrainSettings) -> MoCo:
    return MoCo(
        build_backbone(settings.arch),
        dim=settings.moco_dim,
        queue_size=settings.queue,
        momentum=settings.momentum,
        temperature=settings.temperature,
        mlp=settings.use_mlp,
        bn_splits=settings.bn_splits,
    )


def learning_rate_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Share of the peak learning rate at ``step``: linear warm-up, then cosine to 0 or constant."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: MoCo, settings: PretrainSettings, steps_per_epoch: int):
    optimizer = torch.optim.SGD(
        model.encoder_q.parameters(), lr=settings.lr, momentum=settings.sgd_momentum,
        weight_decay=settings.weight_decay,
    )
    total, warmup = settings.epochs * steps_per_epoch, settings.warmup * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate_factor(step, total_steps=total, warmup_steps=warmup, schedule=settings.schedule),
    )
    return optimizer, scheduler


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _json_value(value):
    return round(value, 6) if isinstance(value, float) else value


def _step_of(line: str) -> int | None:
    """The step of a metrics line; None for a line torn by a kill."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


class MetricsLog:
    """RUN/metrics.jsonl, one JSON object per line. A resumed run keeps the lines up to its
    checkpoint's step and drops the rest (steps it redoes, a line torn by a kill)."""

    def __init__(self, path: Path, *, keep_until_step: int | None):
        self.path = path
        kept = []
        if keep_until_step is not None and path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                step = _step_of(line)
                if step is not None and step <= keep_until_step:
                    kept.append(line)
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _json_value(v) for k, v in record.items()}) + "\n")


def write_settings(run_dir: Path, settings: PretrainSettings) -> None:
    atomic_write_text(run_dir / SETTINGS, json.dumps(asdict(settings), indent=2) + "\n")


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """The model, its optimiser and the step: FAME on the query, augment both views, MoCo's
    loss, SGD. ``model`` is the plain MoCo (what checkpoints hold); ``trained`` is it wrapped
    in DistributedDataParallel under torchrun."""

    def __init__(self, settings: PretrainSettings, device: torch.device, steps_per_epoch: int):
        self.settings = settings
        self.device = device
        torch.manual_seed(settings.seed)  # the same initial weights on every process
        self.model = build_moco(settings).to(device)
        self.channels_last = channels_last_3d_ok(device) if settings.channels_last is None else settings.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.optimizer, self.scheduler = build_optimizer(self.model, settings, steps_per_epoch)
        self.scaler = grad_scaler(device, amp=settings.amp)
        self.augment = ClipAugment(AugmentStrengths(
            grayscale_p=settings.grayscale_p, jitter_p=settings.jitter_p, blur_p=settings.blur_p)).to(device)
        self.generator = torch.Generator(device=device)  # merge permutations and augmentations
        self.trained = distributed.wrap_ddp(self.model, device)

    def restore(self, checkpoint: dict) -> tuple[int, int]:
        """Load a checkpoint's model (with its queue), optimiser, schedule and scaler; returns (epoch, step)."""
        restore_training_state(checkpoint, self.model, self.optimizer, self.scheduler, self.scaler)
        return checkpoint["epoch"], checkpoint["step"]

    def start_epoch(self, epoch: int) -> None:
        seed = epoch_seed(self.settings.seed, epoch, distributed.rank())
        torch.manual_seed(seed)
        self.generator.manual_seed(seed)
        self.trained.train()

    def views(self, batch: dict) -> tuple[Tensor, Tensor]:
        """The two augmented views of a batch, on the device: FAME-fused query, plain key."""
        batch = _to_device(batch, self.device)
        query, key = batch["query"], batch["key"]  # B, 3, T, H, W uint8
        if self.settings.fame:
            query = fame_query(query, batch["mask"], beta=self.settings.beta, generator=self.generator)[0]
        query, key = self.augment(query, self.generator), self.augment(key, self.generator)  # float
        if self.channels_last:
            query = query.contiguous(memory_format=torch.channels_last_3d)
            key = key.contiguous(memory_format=torch.channels_last_3d)
        return query, key

    def step(self, batch: dict, *, step: int, epoch: int, last_saved: str) -> dict:
        """One optimiser step; returns loss, top1, top5 (means over all processes) and the lr used.
        Raises TrainingDiverged, on every process alike, when the loss is not finite."""
        query, key = self.views(batch)
        with autocast_context(self.device, self.settings.amp):
            loss, stats = self.trained(query, key)
        # one synchronisation per step: the means over all processes, and the NaN check
        summary = torch.stack([stats["loss"], stats["acc1"], stats["acc5"]]).float()  # 3
        loss_value, top1, top5 = distributed.all_reduce_mean(summary).tolist()
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"loss became {loss_value} at step {step} (epoch {epoch}); stopped; {last_saved}. "
                "Lower --lr or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return {"loss": loss_value, "top1": top1, "top5": top5, "lr": lr}

    def checkpoint(self, *, epochs_done: int, step: int, metrics: dict) -> dict:
        return make_checkpoint(
            kind="pretrain", settings=asdict(self.settings),
            **training_state(self.model, self.optimizer, self.scheduler, self.scaler),
            epoch=epochs_done, step=step,
            rng={"seed": self.settings.seed, "epoch": epochs_done, "scheme": "reseeded from (seed, epoch, rank)"},
            metrics=metrics,
        )


def build_loader(settings: PretrainSettings, video_ids: list[str], device: torch.device, per_process: int):
    """The pretraining loader (persistent workers, pinned memory on CUDA) and its sampler."""
    dataset = PairDataset(
        settings.cache, video_ids, clip_len=settings.clip_len, stride=settings.stride, crop=settings.crop,
        mode="pretrain", with_masks=settings.fame, seed=settings.seed, source=settings.source,
    )
    sampler = EpochSampler(torch.utils.data.DistributedSampler(
        dataset, num_replicas=distributed.world_size(), rank=distributed.rank(), shuffle=True,
        seed=settings.seed, drop_last=True,
    ))
    workers = settings.workers
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=per_process, sampler=sampler, drop_last=True, num_workers=workers,
        pin_memory=pin_memory(device), persistent_workers=workers > 0,
        # not fork: the training process may already run zarr's and torch's threads
        multiprocessing_context="forkserver" if workers > 0 else None,
        prefetch_factor=LOADER_PREFETCH if workers > 0 else None,
    )
    return sampler, loader


def run_pretrain(
    settings: PretrainSettings, *, resume: bool = False, progress: ProgressCallback | None = None
) -> PretrainResult:
    """Pretrain MoCo (+ FAME) as ``settings`` say; under torchrun, as one of its processes.

    Raises CacheError / SettingsError / CheckpointError at start when the run cannot go
    ahead, TrainingDiverged when the loss stops being finite (the last good checkpoint stays).
    ``progress(event, data)`` hears "warning", "start", "step" and "epoch" on rank 0.
    """
    settings.validate()
    try:
        device = resolve_device(settings.device)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    joined = distributed.init_process_group_from_env(device)
    try:
        return _run(settings, device, resume=resume, progress=progress)
    finally:
        if joined:
            distributed.cleanup()


def _run(settings: PretrainSettings, device: torch.device, *, resume: bool, progress: ProgressCallback | None):
    main = distributed.is_main_process()

    def report(event: str, **data) -> None:
        if main and progress is not None:
            progress(event, data)

    # every check before anything is written or trained
    per_process = check_batch(settings, distributed.world_size())
    reader = open_cache(settings.cache, source=settings.source)
    video_ids, skipped = check_cache_fits(reader, settings, world=distributed.world_size())
    if skipped:
        report("warning", message=f"{len(skipped)} video(s) shorter than one clip are left out, e.g. {skipped[0]}")
    if (message := queue_warning(settings, len(video_ids))) is not None:
        report("warning", message=message)
    run_dir = Path(settings.run_dir)
    checkpoint = check_resume(run_dir, settings, resume)
    if resume and checkpoint is None:
        report("warning", message=f"no checkpoint in {checkpoint_dir(run_dir)}; starting from scratch")
    distributed.barrier()

    sampler, loader = build_loader(settings, video_ids, device, per_process)
    steps_per_epoch = min(len(loader), settings.max_steps_per_epoch or len(loader))
    trainer = Trainer(settings, device, steps_per_epoch)
    start_epoch, step = trainer.restore(checkpoint) if checkpoint is not None else (0, 0)
    if start_epoch >= settings.epochs:
        report("warning", message=f"{run_dir} has already trained {start_epoch} epochs; raise --epochs to go on")
    log = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_settings(run_dir, settings)
        log = MetricsLog(run_dir / METRICS, keep_until_step=step if checkpoint is not None else None)
    report("start", settings=asdict(settings), videos=len(video_ids), steps_per_epoch=steps_per_epoch,
           start_epoch=start_epoch, step=step, world_size=distributed.world_size(), device=str(device))

    result = PretrainResult(str(run_dir), start_epoch, step, str(latest_path(run_dir)),
                            resumed_from=start_epoch if checkpoint is not None else None, skipped_videos=skipped)
    clips_per_step = VIEWS * settings.batch_size
    for epoch in range(start_epoch, settings.epochs):
        trainer.start_epoch(epoch)
        sampler.set_epoch(epoch)
        last_saved = (f"the last good checkpoint {latest_path(run_dir)} (after epoch {epoch}) is kept"
                      if epoch > 0 else "no checkpoint was written yet")
        window, epoch_records = [], []
        tick = time.perf_counter()
        for batch_index, batch in enumerate(loader):
            if batch_index == steps_per_epoch:
                break
            data_time = time.perf_counter() - tick
            values = trainer.step(batch, step=step + 1, epoch=epoch + 1, last_saved=last_saved)
            step += 1
            step_time = time.perf_counter() - tick - data_time
            record = {"step": step, "epoch": epoch + 1, **values, "data_time": data_time, "step_time": step_time,
                      "clips_per_s": clips_per_step / max(data_time + step_time, 1e-9)}
            window.append(record)
            epoch_records.append(record)
            report("step", **record, epochs=settings.epochs)
            if log is not None and (step % settings.log_every == 0 or batch_index + 1 == steps_per_epoch):
                log.write(_mean_record(window))
                window = []
            tick = time.perf_counter()
        metrics = _mean_record(epoch_records)
        if main:
            save_checkpoint(trainer.checkpoint(epochs_done=epoch + 1, step=step, metrics=metrics), run_dir, settings)
        distributed.barrier()
        result.epochs, result.steps, result.last_metrics = epoch + 1, step, metrics
        report("epoch", epoch=epoch + 1, epochs=settings.epochs, step=step, metrics=metrics,
               checkpoint=str(latest_path(run_dir)))
    return result


def _mean_record(records: list[dict]) -> dict:
    """The last step's ids and lr with the window's mean values (clips/s over the whole window)."""
    if not records:
        return {}
    last = records[-1]
    means = {name: sum(r[name] for r in records) / len(records)
             for name in ("loss", "top1", "top5", "data_time", "step_time")}
    seconds = sum(r["data_time"] + r["step_time"] for r in records)
    clips = sum(r["clips_per_s"] * (r["data_time"] + r["step_time"]) for r in records)
    return {"step": last["step"], "epoch": last["epoch"], **means, "lr": last["lr"],
            "clips_per_s": clips / max(seconds, 1e-9)}


def save_checkpoint(checkpoint: dict, run_dir: Path, settings: PretrainSettings) -> None:
    """latest.pt every epoch, epoch_XXXX.pt every ``checkpoint_every`` epochs and at the end."""
    epochs_done = checkpoint["epoch"]
    keep = epochs_done % settings.checkpoint_every == 0 or epochs_done == settings.epochs
    save_epoch_checkpoint(checkpoint, run_dir, keep=keep)


def settings_fields() -> dict[str, object]:
    """Field name -> default (``dataclasses.MISSING`` for required ones), for recipes and the CLI."""
    return {f.name: f.default for f in fields(PretrainSettings)}
