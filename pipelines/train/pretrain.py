"""``fame pretrain``: MoCo + FAME from the cache, on one process or many (torchrun).

One step, as the paper's code does it, with the masks coming from the cache:

1. The loader (``ClipDataset`` in "pretrain" mode) gives two different random clips of
   each video, each with its own random resized crop and flip, and the query clip's soft
   foreground map cropped and flipped like the query (uint8 clips, CPU workers).
2. On the training device, ``fame_merge``: the soft map is binarised to the top ``beta``
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from pipelines.atomic_files import atomic_write_json, atomic_write_text
from pipelines.data.cache import open_cache
from pipelines.train import distributed
from pipelines.train.augment import AugmentStrengths, ClipAugment
from pipelines.train.checkpoints import (
    CheckpointError,
    checkpoint_dir,
    latest_path,
    load_checkpoint,
    make_checkpoint,
)
from pipelines.data.clips import clip_span
from pipelines.fame import fame_merge
from pipelines.settings import SettingsError, changed_settings
from pipelines.threads import configure_threads
from pipelines.train.devices import autocast_context, channels_last_3d_ok, resolve_device
from pipelines.train.loader import build_loader, check_cache_fits, queue_warning
from pipelines.train.moco import MoCo
from pipelines.train.models import build_backbone
from pipelines.train.run_logs import CURVES, ScalarLog, read_metrics, write_curves
from pipelines.train.settings import RESUMABLE_CHANGES, PretrainSettings
from pipelines.train.training import epoch_seed, grad_scaler, restore_training_state, save_epoch_checkpoint, training_state

METRICS = "metrics.jsonl"
SETTINGS = "settings.json"
VIEWS = 2  # clips per sample: the query and the key


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving."""


ProgressCallback = Callable[[str, dict], None]  # (event, data): "start", "warning", "step", "epoch"


@dataclass
class PretrainResult:
    """What a finished run leaves behind."""

    run_dir: str
    epochs: int  # epochs finished in total (including those before a resume)
    steps: int  # optimizer steps in total
    checkpoint: str  # the latest checkpoint
    resumed_from: int | None = None  # epoch the run resumed at, if it did
    short_videos: list[str] = field(default_factory=list)  # shorter than one clip: their last frame repeats
    last_metrics: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Checks at start: fail in one line before any training, not mid-epoch
# ---------------------------------------------------------------------------------------------


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
        atomic_write_text(path, "".join(line + "\n" for line in kept))  # a kill here keeps the old log

    def write(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({k: _json_value(v) for k, v in record.items()}) + "\n")


def write_settings(run_dir: Path, settings: PretrainSettings) -> None:
    atomic_write_json(run_dir / SETTINGS, asdict(settings))


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
            query = fame_merge(query, batch["mask"], beta=self.settings.beta, generator=self.generator)[0]
        query, key = self.augment(query, self.generator), self.augment(key, self.generator)  # float
        if self.channels_last:
            query = query.contiguous(memory_format=torch.channels_last_3d)
            key = key.contiguous(memory_format=torch.channels_last_3d)
        return query, key

    def step(self, batch: dict, *, step: int, epoch: int, last_saved: str) -> dict:
        """One optimiser step; returns loss, top1, top5 (means over all processes) and the lr used.
        Raises TrainingDiverged, on every process alike, when the loss is not finite."""
        query, key = self.views(batch)
        try:
            with autocast_context(self.device, self.settings.amp):
                loss, stats = self.trained(query, key)
        except ValueError as error:
            if "more than 1 value per channel" not in str(error):
                raise
            s = self.settings  # tiny crops and batches: a batch norm meets one number per channel
            raise SettingsError(
                f"batch norm got one value per channel at step {step} (--crop {s.crop}, --batch-size "
                f"{s.batch_size}, --bn-splits {s.bn_splits}): the backbone's last maps are 1x1x1 at this crop; "
                "raise --crop or --batch-size, or lower --bn-splits"
            ) from None
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


def run_pretrain(
    settings: PretrainSettings, *, resume: bool = False, progress: ProgressCallback | None = None
) -> PretrainResult:
    """Pretrain MoCo (+ FAME) as ``settings`` say; under torchrun, as one of its processes.

    Raises CacheError / SettingsError / CheckpointError at start when the run cannot go
    ahead, TrainingDiverged when the loss stops being finite (the last good checkpoint stays).
    ``progress(event, data)`` hears "warning", "start", "step" and "epoch" on rank 0.
    """
    settings.validate()
    threads = configure_threads(settings.threads)
    try:
        device = resolve_device(settings.device)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    joined = distributed.init_process_group_from_env(device)
    try:
        return _run(settings, device, resume=resume, progress=progress, threads=threads)
    finally:
        if joined:
            distributed.cleanup()


def _run(settings: PretrainSettings, device: torch.device, *, resume: bool, progress: ProgressCallback | None,
         threads: str):
    main = distributed.is_main_process()

    def report(event: str, **data) -> None:
        if main and progress is not None:
            progress(event, data)

    # every check before anything is written or trained
    per_process = check_batch(settings, distributed.world_size())
    reader = open_cache(settings.cache, source=settings.source)
    video_ids, short = check_cache_fits(reader, settings, world=distributed.world_size())
    if short:
        span = clip_span(settings.clip_len, settings.stride)
        report("warning", message=f"{len(short)} video(s) shorter than one clip's {span} frames repeat their last "
                                  f"frame to fill their clips, e.g. {short[0]}")
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
    events = ScalarLog(run_dir, purge_step=step + 1 if checkpoint is not None else None, enabled=main)
    try:
        report("start", settings=asdict(settings), videos=len(video_ids), steps_per_epoch=steps_per_epoch,
               start_epoch=start_epoch, step=step, world_size=distributed.world_size(), device=str(device),
               tensorboard=str(events.directory) if events.active else None, threads=threads)
        return _epochs(settings, run_dir, trainer, sampler, loader, steps_per_epoch, log, events, report,
                       PretrainResult(str(run_dir), start_epoch, step, str(latest_path(run_dir)),
                                      resumed_from=start_epoch if checkpoint is not None else None,
                                      short_videos=short))
    finally:
        events.close()


def _epochs(settings: PretrainSettings, run_dir: Path, trainer: Trainer, sampler, loader, steps_per_epoch: int,
            log: MetricsLog | None, events: ScalarLog, report, result: PretrainResult) -> PretrainResult:
    """Train from ``result``'s epoch and step to ``settings.epochs``; metrics lines, TensorBoard
    scalars and the curves PNG on the main process (``log`` is None elsewhere)."""
    start_epoch, step = result.epochs, result.steps
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
                line = _mean_record(window)
                log.write(line)
                events.scalars("train", line, step=step)
                window = []
            tick = time.perf_counter()
        metrics = _mean_record(epoch_records)
        if log is not None:
            save_checkpoint(trainer.checkpoint(epochs_done=epoch + 1, step=step, metrics=metrics), run_dir, settings)
            events.scalars("epoch", metrics, step=step)
            write_curves(read_metrics(log.path), run_dir / CURVES, title=f"fame pretrain {run_dir.name}: "
                         f"epoch {epoch + 1}/{settings.epochs}, step {step}")
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


