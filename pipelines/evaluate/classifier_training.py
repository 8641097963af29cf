"""``fame evaluate``'s training of a classifier on the fold's train split: fine-tuning (the
whole network, train mode) or the linear probe (only ``fc``; eval mode, so BN statistics
stay frozen). SGD with step decays, a resumable checkpoint after every epoch."""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from pipelines.data.clips import UINT8_MAX, ClipDataset
from pipelines.evaluate.job import Job
from pipelines.evaluate.settings import RESUMABLE_CHANGES, EvaluateSettingsError
from pipelines.settings import changed_settings
from pipelines.train import distributed
from pipelines.train.augment import AugmentStrengths, ClipAugment, normalise
from pipelines.train.checkpoints import latest_path, load_checkpoint, make_checkpoint
from pipelines.train.devices import autocast_context, channels_last_3d_ok, pin_memory
from pipelines.train.run_logs import ScalarLog
from pipelines.train.training import epoch_seed, grad_scaler, restore_training_state, save_epoch_checkpoint, training_state

CHECKPOINT_KIND = "evaluate"


def lr_milestones(epochs: int, steps: tuple[float, ...]) -> list[int]:
    """Epochs at which the lr decays: the paper's 60/120 of 150 are steps (0.4, 0.8)."""
    return sorted({round(step * epochs) for step in steps if 0 < round(step * epochs) < epochs})


def _resume_state(job: Job) -> dict | None:
    """The run's latest checkpoint when resuming (None to start afresh); refuses to
    overwrite a run silently or to continue one made with other settings."""
    latest = latest_path(job.run_dir)
    if not latest.is_file():
        return None
    if not job.settings.resume:
        raise EvaluateSettingsError(f"{job.run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    checkpoint = load_checkpoint(latest, kind=CHECKPOINT_KIND)
    changes = changed_settings(checkpoint["settings"], asdict(job.settings), resumable=RESUMABLE_CHANGES,
                               only_asked=True, change="{name}: run has {saved!r}, asked {asked!r}")
    if changes:
        raise EvaluateSettingsError(f"{latest}: made with other settings ({changes})")
    return checkpoint


def _optimisation(job: Job, model: nn.Module):
    """SGD over the trainable parameters, the step schedule and the fp16 grad scaler."""
    s = job.settings
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, lr_milestones(s.epochs, s.lr_steps), gamma=s.lr_decay)
    return optimizer, scheduler, grad_scaler(job.device)


def _train_loader(job: Job) -> tuple[ClipDataset, DistributedSampler, DataLoader]:
    """One random clip per video (random resized crop, flip), shuffled and split over the
    processes (padding is harmless in training)."""
    s = job.settings
    dataset = ClipDataset(
        job.reader.path, job.train_ids, clip_len=s.clip_len, stride=s.stride, crop=s.crop, mode="train",
        seed=s.seed, source=job.reader.source,
    )
    sampler = DistributedSampler(
        dataset, num_replicas=distributed.world_size(), rank=distributed.rank(), shuffle=True, seed=s.seed
    )
    loader = DataLoader(
        dataset, batch_size=s.batch_size, sampler=sampler, num_workers=s.workers, pin_memory=pin_memory(job.device)
    )
    return dataset, sampler, loader


def _train_epoch(job: Job, net: nn.Module, loader: DataLoader, optimizer, scaler, epoch: int) -> float:
    """One epoch; returns the mean training loss over all processes."""
    s = job.settings
    # The FAME code's fine-tuning augmentation: random grayscale and colour jitter (no blur);
    # its linear probe trains on crops and flips only.
    augment = ClipAugment(AugmentStrengths(blur_p=0.0)) if s.protocol == "finetune" else None
    generator = torch.Generator(job.device).manual_seed(epoch_seed(s.seed, epoch, distributed.rank(), scheme="linear"))
    loss_sum, seen = 0.0, 0
    for step, batch in enumerate(loader, start=1):
        clips = batch["clip"].to(job.device, non_blocking=True)  # B, 3, T, S, S uint8
        labels = batch["label"].to(job.device, non_blocking=True)  # B
        clips = augment(clips, generator) if augment is not None else normalise(clips.float() / UINT8_MAX)
        if channels_last_3d_ok(job.device):
            clips = clips.contiguous(memory_format=torch.channels_last_3d)
        with autocast_context(job.device):
            loss = F.cross_entropy(net(clips).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum, seen = loss_sum + loss.item() * len(labels), seen + len(labels)
        if distributed.is_main_process():
            job.progress(f"epoch {epoch + 1}/{s.epochs}", step, len(loader), loss=f"loss {loss_sum / seen:.3f}")
    return distributed.all_reduce_mean(loss_sum / max(seen, 1))


def train_classifier(job: Job, model: nn.Module) -> int:
    """Fine-tune (whole network, train mode) or train the linear probe (eval mode: frozen
    BN statistics) for the remaining epochs; a checkpoint after every epoch. Returns the
    epochs done."""
    s = job.settings
    optimizer, scheduler, scaler = _optimisation(job, model)
    start = 0
    checkpoint = _resume_state(job)
    if checkpoint is not None:
        restore_training_state(checkpoint, model, optimizer, scheduler, scaler)
        start = int(checkpoint["epoch"])
        job.log(f"resumed {job.run_dir} after epoch {start} of {s.epochs}")
    if start >= s.epochs:
        return start
    dataset, sampler, loader = _train_loader(job)
    net = distributed.wrap_ddp(model, job.device)
    with ScalarLog(job.run_dir, purge_step=start + 1 if start else None, enabled=distributed.is_main_process()) as events:
        _train_epochs(job, model, net, dataset, sampler, loader, optimizer, scheduler, scaler, start, events)
    distributed.broadcast_state(model)
    return s.epochs


def _train_epochs(job: Job, model: nn.Module, net: nn.Module, dataset, sampler, loader, optimizer, scheduler,
                  scaler, start: int, events: ScalarLog) -> None:
    """Epochs ``start`` to the last, a checkpoint and a TensorBoard ``train/loss`` after each."""
    s = job.settings
    for epoch in range(start, s.epochs):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train(s.protocol == "finetune")  # the linear probe keeps BN in eval mode
        train_loss = _train_epoch(job, net, loader, optimizer, scaler, epoch)
        scheduler.step()
        if distributed.is_main_process():
            state = make_checkpoint(
                kind=CHECKPOINT_KIND, settings=asdict(job.settings),
                **training_state(model, optimizer, scheduler, scaler),
                epoch=epoch + 1, classes=list(job.reader.classes), metrics={"train_loss": train_loss},
            )
            save_epoch_checkpoint(state, job.run_dir)
            events.scalars("train", {"loss": train_loss}, step=epoch + 1)
            job.log(f"epoch {epoch + 1}/{s.epochs}: train loss {train_loss:.4f}")
        distributed.barrier()
