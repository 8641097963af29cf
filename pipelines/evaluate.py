"""``fame evaluate``: the FAME paper's downstream protocols on a cache, and a background-swap
score (``docs/evaluation.md`` maps each protocol to the paper's and documents the JSON).

- ``finetune``: the whole network trains on the fold's train split (dropout 0.7, SGD, lr
  0.025, wd 1e-4, lr x0.1 at 40% and 80% of the epochs: the paper's 60/120 of 150).
- ``linear``: the backbone is frozen, BN statistics included (eval mode, no gradients);
  only the new linear classifier trains (lr 30, wd 0, steps at 60/80 of 100 epochs).
- ``retrieval``: per-video features (``clips_per_video`` clips averaged), centred and
  L2-normalised; test videos query the train gallery; recall@1/5/10/20/50.
- ``knn``: the weighted kNN classifier (``pipelines.retrieval``) on the same features.
- ``swap-retrieval``: test clips query their own foregrounds moved onto other test videos'
  backgrounds, beside the same clips frozen (``pipelines.swap_retrieval``).

Fine-tune and linear test with ``clips_per_video`` uniformly spaced, centre-cropped clips
per video and average the clips' logits (as the FAME code's ``validate``). Under torchrun
training runs with DDP, and every test pass shards the videos over the processes without
padding and gathers the results in video order: each video is counted exactly once.

>>> result = run_evaluate(EvaluateSettings(cache="ucf101.zarr", checkpoint="runs/pretrain",
...                                        protocol="knn"))             # doctest: +SKIP
>>> result["metrics"]["top1"]                                            # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from pipelines import distributed
from pipelines.atomic_files import atomic_write_text
from pipelines.augment import AugmentStrengths, ClipAugment, normalise
from pipelines.bg_swap import BETA, SWAP_SEED, SwappedClipDataset, swap_partners
from pipelines.cache import CacheReader, open_cache
from pipelines.checkpoint_formats import BackboneWeights, LoadReport, load_backbone, read_checkpoint
from pipelines.checkpoints import latest_path, load_checkpoint, make_checkpoint
from pipelines.clips import ClipDataset
from pipelines.devices import autocast_context, channels_last_3d_ok, pin_memory, resolve_device
from pipelines.models import BACKBONES, build_backbone
from pipelines.retrieval import (
    KNN_K,
    KNN_TEMPERATURE,
    RECALL_KS,
    average_clip_features,
    knn_classify,
    prepare_features,
    recall_from_neighbours,
    top_k_accuracy,
    top_k_neighbours,
)
from pipelines.settings import changed_settings
from pipelines.training import epoch_seed, grad_scaler, restore_training_state, save_epoch_checkpoint, training_state
from pipelines.swap_retrieval import ground_truth_folder, swap_retrieval_protocol

PROTOCOLS = ("finetune", "linear", "retrieval", "knn", "swap-retrieval")
TRAINED = ("finetune", "linear")  # protocols that train a classifier (and write checkpoints)
SCHEMA = "fame-evaluate/1"  # the "schema" field of the output JSON
CHECKPOINT_KIND = "evaluate"
UINT8_MAX = 255
TOP_KS = (1, 5)
# The per-video feature sets of the test videos that --save-features may hold
TEST_SETS = ("test", "test_bgswap", "test_swapgallery", "test_frozen")
# The recipes of the FAME code's eval.py; lr_steps are fractions of the epochs.
PROTOCOL_DEFAULTS = {
    "finetune": dict(epochs=150, lr=0.025, weight_decay=1e-4, dropout=0.7, lr_steps=(0.4, 0.8)),
    "linear": dict(epochs=100, lr=30.0, weight_decay=0.0, dropout=0.0, lr_steps=(0.6, 0.8)),
}
CLIP_DEFAULTS = dict(clip_len=16, stride=2)  # the paper's 16 frames at stride 2
CROP_DEFAULTS = {"i3d": 224}  # the paper's crop per backbone; 112 for the others
CROP_DEFAULT = 112
# Settings that may differ when a run is resumed (they do not change what is trained).
RESUMABLE_CHANGES = {
    "resume", "workers", "device", "output", "save_features", "bg_swap", "beta", "swap_seed", "ground_truth",
    "ground_truth_dir",
    "test_batch_size", "checkpoint", "source",
}

Progress = Callable[..., None]  # progress(stage, done, total, **fields)
Log = Callable[[str], None]


class EvaluateError(Exception):
    """The evaluation cannot run as asked (one clear line for the user)."""


@dataclass(frozen=True)
class EvaluateSettings:
    """Everything that decides an evaluation; saved in its JSON and its checkpoints.

    ``None`` means "resolve it": from the checkpoint's own settings when it is ours, else
    from the protocol's paper recipe (``resolve_settings``).
    """

    cache: str  # the Zarr cache written by `fame preprocess`
    protocol: str = "finetune"  # finetune | linear | retrieval | knn
    checkpoint: str | None = None  # weights file or pretrain run directory; None: random init
    fold: int = 1  # which official split ("train" -> "train<fold>")
    train_split: str = "train"  # split that trains the classifier / forms the gallery
    test_split: str = "test"  # split that is tested / queries the gallery
    output: str | None = None  # metrics JSON; None: RUN_DIR/metrics.json
    run_dir: str | None = None  # None: runs/evaluate-<protocol>-fold<fold>
    arch: str | None = None  # backbone; None: the checkpoint's
    clip_len: int | None = None  # frames per clip; None: the checkpoint's, else 16
    stride: int | None = None  # temporal stride; None: the checkpoint's, else 2
    crop: int | None = None  # clip side; None: the checkpoint's, else 112 (224 for I3D)
    clips_per_video: int = 10  # uniformly spaced test clips per video
    epochs: int | None = None  # training epochs (0: test a saved classifier); None: recipe
    batch_size: int = 32  # training clips per process and step (paper: 4 GPUs x 32)
    test_batch_size: int = 4  # videos per test forward (x clips_per_video clips)
    lr: float | None = None  # SGD learning rate; None: recipe (0.025 finetune, 30 linear)
    weight_decay: float | None = None  # None: recipe (1e-4 finetune, 0 linear)
    momentum: float = 0.9  # SGD momentum
    lr_steps: tuple[float, ...] | None = None  # lr decays at these fractions of the epochs
    lr_decay: float = 0.1  # factor of each lr step
    dropout: float | None = None  # before the classifier; None: recipe (0.7 finetune, 0 linear)
    knn_k: int = KNN_K  # neighbours that vote in the kNN classifier
    knn_temperature: float = KNN_TEMPERATURE  # tau of the kNN vote weights exp(s / tau)
    bg_swap: bool = False  # also test on foregrounds merged onto other videos' backgrounds
    beta: float = BETA  # foreground share of each crop in the background swap
    swap_seed: int = SWAP_SEED  # seed of the background-swap pairing
    ground_truth: bool = False  # swapped sets: merge with the true foreground masks, not the cache's
    ground_truth_dir: str | None = None  # their folder; None: fame synth's, beside the dataset root
    save_features: str | None = None  # .npz file for the per-video features
    seed: int = 0  # classifier initialisation, clip sampling, augmentation
    workers: int = 4  # DataLoader worker processes (0: this process)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    resume: bool = False  # continue the run in run_dir from its latest checkpoint
    source: str | None = None  # where a --no-frames cache's videos are, if not where it was made


@dataclass
class Job:
    """What one evaluation works with, resolved once."""

    settings: EvaluateSettings
    reader: CacheReader
    train_ids: list[str]
    test_ids: list[str]
    splits: dict[str, str]  # "train"/"test" -> the cache's split names
    device: torch.device
    run_dir: Path
    output: Path
    weights: BackboneWeights | None
    progress: Progress
    log: Log

    @property
    def num_classes(self) -> int:
        return len(self.reader.classes)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def read_config(name_or_path: str | Path) -> dict:
    """Settings from the ``[evaluate]`` table of a recipe: a TOML file, or the name of a
    shipped recipe (``pipelines/recipes``, whose ``[settings]`` are pretraining's). Unknown
    keys are an error: a typo must not be silently ignored."""
    from pipelines.recipes import RecipeError, read_recipe_file

    try:
        path, data = read_recipe_file(name_or_path)
    except RecipeError as error:
        raise EvaluateError(f"{name_or_path}: cannot read the recipe: {error}") from None
    values = data.get("evaluate")
    if not isinstance(values, dict):
        raise EvaluateError(f"{path}: has no 'evaluate' table of settings")
    known = {f.name for f in fields(EvaluateSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EvaluateError(f"{path}: unknown evaluate setting(s) {', '.join(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def validate(settings: EvaluateSettings) -> None:
    """Raise ``EvaluateError`` for values no evaluation can use (on resolved settings)."""
    problems = []
    if settings.arch not in BACKBONES:
        problems.append(f"arch {settings.arch!r} is not one of {', '.join(BACKBONES)}")
    for name in ("clip_len", "stride", "crop", "clips_per_video", "batch_size", "test_batch_size", "knn_k"):
        if getattr(settings, name) < 1:
            problems.append(f"{name} must be at least 1")
    if settings.epochs is not None and settings.epochs < 0:
        problems.append("epochs must be 0 or more")
    if not 0 < settings.beta <= 1:
        problems.append("beta must lie in (0, 1]")
    if settings.workers < 0:
        problems.append("workers must be 0 or more")
    if settings.protocol == "swap-retrieval" and settings.bg_swap:
        problems.append("--bg-swap has no meaning with swap-retrieval, whose gallery is the swapped set")
    if problems:
        raise EvaluateError("; ".join(problems))


def resolve_checkpoint_path(path: str | None) -> Path | None:
    """A checkpoint file as given, or a run directory's latest checkpoint."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        latest = latest_path(path)
        if not latest.is_file():
            raise EvaluateError(f"{path}: a directory without {latest.relative_to(path)}; pass a checkpoint file or a run directory")
        return latest
    return path


def resolve_settings(settings: EvaluateSettings, weights: BackboneWeights | None) -> EvaluateSettings:
    """Fill every ``None``: backbone and clip geometry from the checkpoint's saved settings
    (ours) or its recognised backbone, then the paper's defaults; the training recipe of
    the protocol."""
    if settings.protocol not in PROTOCOLS:
        raise EvaluateError(f"unknown protocol {settings.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    saved = weights.settings if weights is not None else {}
    arch = settings.arch or saved.get("arch") or (weights.arch if weights is not None else None)
    if arch is None:
        raise EvaluateError("cannot tell the backbone: pass --arch")
    filled = {"arch": arch}
    for name, default in (*CLIP_DEFAULTS.items(), ("crop", CROP_DEFAULTS.get(arch, CROP_DEFAULT))):
        filled[name] = getattr(settings, name) or saved.get(name) or default
    recipe = PROTOCOL_DEFAULTS.get(settings.protocol, {})
    for name, default in recipe.items():
        filled[name] = default if getattr(settings, name) is None else getattr(settings, name)
    run_dir = settings.run_dir or str(Path("runs") / f"evaluate-{settings.protocol}-fold{settings.fold}")
    output = settings.output or str(Path(run_dir) / "metrics.json")
    resolved = replace(settings, run_dir=run_dir, output=output, **filled)
    validate(resolved)
    return resolved


def _split_name(reader: CacheReader, name: str, fold: int) -> str:
    splits = reader.splits
    return name if name in splits or name in ("all", "") else f"{name}{fold}"


# ---------------------------------------------------------------------------------------------
# Inference sharded over processes, gathered in video order
# ---------------------------------------------------------------------------------------------


def shard(count: int) -> list[int]:
    """This process's items of ``range(count)``: every world_size-th, without padding."""
    return list(range(distributed.rank(), count, distributed.world_size()))


def _comm_device() -> torch.device:
    """Where collectives need their tensors (nccl: CUDA only)."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_gather_rows(x: Tensor, counts: list[int]) -> Tensor:
    """Every process's rows of ``x`` (process r has ``counts[r]`` rows) in rank order."""
    device = _comm_device()
    largest = max(counts)
    padded = x.new_zeros((largest, *x.shape[1:])).to(device)
    padded[: len(x)] = x.to(device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts)]).cpu()


def gather_in_order(values: Tensor, indices: Tensor, total: int) -> Tensor:
    """Rows computed on every process (``values[i]`` is item ``indices[i]``) assembled in
    item order on every process. Raises unless each of the ``total`` items is present
    exactly once: no duplicates from padding, nothing dropped."""
    if distributed.world_size() > 1:
        count = torch.tensor([len(indices)], device=_comm_device())
        counts = [torch.zeros_like(count) for _ in range(distributed.world_size())]
        dist.all_gather(counts, count)
        counts = [int(c) for c in counts]
        values, indices = _all_gather_rows(values, counts), _all_gather_rows(indices, counts)
    if sorted(indices.tolist()) != list(range(total)):
        raise RuntimeError(f"gathered {len(indices)} results for {total} items: some duplicated or missing")
    ordered = values.new_empty((total, *values.shape[1:]))
    ordered[indices] = values
    return ordered


def prepare_clips(clips: Tensor, device: torch.device) -> Tensor:
    """uint8 ``..., 3, T, S, S`` from a loader -> normalised float clips on ``device``."""
    clips = clips.to(device, non_blocking=True).float().div_(UINT8_MAX)
    clips = normalise(clips)
    return clips.contiguous(memory_format=torch.channels_last_3d) if channels_last_3d_ok(device) else clips


@torch.no_grad()
def infer(job: Job, model: nn.Module, dataset: Dataset, *, logits: bool, stage: str) -> dict[str, Tensor | None]:
    """Every video's test clips through ``model`` (eval mode): ``features`` V, D (its clips'
    pooled features, each L2-normalised, averaged) and, with ``logits``, ``logits`` V,
    clips, classes. Each process takes its shard; all get the whole, in dataset order."""
    settings = job.settings
    model.eval()
    mine = shard(len(dataset))
    loader = DataLoader(
        Subset(dataset, mine), batch_size=settings.test_batch_size, shuffle=False,
        num_workers=settings.workers, pin_memory=pin_memory(job.device),
    )
    feature_rows, logit_rows, index_rows = [], [], []
    for step, batch in enumerate(loader, start=1):
        videos, clips_per_video = batch["clips"].shape[:2]
        clips = prepare_clips(batch["clips"].flatten(0, 1), job.device)  # B*N, 3, T, S, S
        with autocast_context(job.device):
            features = model.forward_features(clips)  # B*N, D
            scores = model.fc(features) if logits else None  # B*N, C
        feature_rows.append(average_clip_features(features.float().view(videos, clips_per_video, -1)).cpu())
        if logits:
            logit_rows.append(scores.float().view(videos, clips_per_video, -1).cpu())
        index_rows.append(batch["index"])
        if distributed.is_main_process():
            job.progress(stage, min(step * settings.test_batch_size * distributed.world_size(), len(dataset)), len(dataset))
    feature_dim, num_classes = model.fc.in_features, model.fc.out_features
    local_features = torch.cat(feature_rows) if feature_rows else torch.zeros(0, feature_dim)
    local_index = torch.cat(index_rows) if index_rows else torch.zeros(0, dtype=torch.long)
    out = {"features": gather_in_order(local_features, local_index, len(dataset)), "logits": None}
    if logits:
        local_logits = torch.cat(logit_rows) if logit_rows else torch.zeros(0, settings.clips_per_video, num_classes)
        out["logits"] = gather_in_order(local_logits, local_index, len(dataset))
    return out


def testing_clips(job: Job, video_ids: list[str]) -> ClipDataset:
    """The test clips of ``video_ids``: ``clips_per_video`` uniform clips, centre crop."""
    s = job.settings
    return ClipDataset(
        job.reader.path, video_ids, clip_len=s.clip_len, stride=s.stride, crop=s.crop, mode="test",
        num_clips=s.clips_per_video, with_masks=False, seed=s.seed, source=job.reader.source,
    )


def swapped_dataset(job: Job) -> tuple[SwappedClipDataset, np.ndarray]:
    s = job.settings
    partners = swap_partners(len(job.test_ids), seed=s.swap_seed)
    dataset = SwappedClipDataset(
        job.reader.path, job.test_ids, partners, clip_len=s.clip_len, stride=s.stride, crop=s.crop,
        num_clips=s.clips_per_video, beta=s.beta, source=job.reader.source,
        ground_truth=ground_truth_folder(job) if s.ground_truth else None,
    )
    return dataset, partners


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def classification_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """``top1``/``top5`` of each video (its clips' logits averaged) and ``top1_clip``/
    ``top5_clip`` of every clip on its own, in percent. ``logits`` V, clips, C; labels V."""
    video = top_k_accuracy(logits.mean(dim=1), labels, TOP_KS)
    clip = top_k_accuracy(logits.flatten(0, 1), labels.repeat_interleave(logits.shape[1]), TOP_KS)
    return {
        "top1": video[1], "top5": video[5], "top1_clip": clip[1], "top5_clip": clip[5],
    }


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``matrix[true, predicted]`` counts: C, C."""
    flat = labels.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def partner_share(predictions: Tensor, labels: Tensor, partners: np.ndarray) -> float:
    """Of the swapped videos whose background comes from another class, the percentage
    predicted as that background's class: how often the background wins outright."""
    background = labels[torch.as_tensor(partners)]
    differs = background != labels
    if not bool(differs.any()):
        return float("nan")
    return float((predictions[differs] == background[differs]).float().mean() * 100)


def with_gap(normal: dict[str, float], swapped: dict[str, float]) -> dict[str, dict[str, float]]:
    return {"metrics": swapped, "gap": {k: normal[k] - swapped[k] for k in swapped if k in normal}}


# ---------------------------------------------------------------------------------------------
# Models and training
# ---------------------------------------------------------------------------------------------


def freeze_backbone(model: nn.Module) -> None:
    """The linear probe: no gradient for anything but ``fc``. BN statistics stay frozen as
    long as the model runs in eval mode (``train_classifier`` keeps it there)."""
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith("fc."))


def build_model(job: Job) -> tuple[nn.Module, LoadReport | None]:
    """The backbone with a new ``num_classes`` classifier, loaded from the checkpoint (with
    its classifier too when there are no epochs to train)."""
    s = job.settings
    torch.manual_seed(s.seed)  # the same new classifier on every process and every resume
    model = build_backbone(s.arch, num_classes=job.num_classes, dropout=s.dropout or 0.0)
    report = None
    if job.weights is not None:
        report = load_backbone(model, job.weights, arch=s.arch, head=s.protocol in TRAINED and s.epochs == 0)
    elif s.protocol in TRAINED and s.epochs == 0:
        raise EvaluateError("--epochs 0 tests a saved classifier: pass its --checkpoint")
    if s.protocol == "linear":
        freeze_backbone(model)
    model.to(job.device)
    if channels_last_3d_ok(job.device):
        model.to(memory_format=torch.channels_last_3d)
    return model, report


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
        raise EvaluateError(f"{job.run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    checkpoint = load_checkpoint(latest, kind=CHECKPOINT_KIND)
    changes = changed_settings(checkpoint["settings"], asdict(job.settings), resumable=RESUMABLE_CHANGES,
                               only_asked=True, change="{name}: run has {saved!r}, asked {asked!r}")
    if changes:
        raise EvaluateError(f"{latest}: made with other settings ({changes})")
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
            job.progress(f"epoch {epoch + 1}/{s.epochs}", step, len(loader), loss=f"{loss_sum / seen:.3f}")
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
            job.log(f"epoch {epoch + 1}/{s.epochs}: train loss {train_loss:.4f}")
        distributed.barrier()
    broadcast_state(model)
    return s.epochs


@torch.no_grad()
def broadcast_state(model: nn.Module) -> None:
    """Every process takes the main process's weights and buffers. DDP keeps parameters
    equal but each process's BN running statistics follow its own last batches; the
    sharded test pass must use the model the checkpoint holds."""
    if distributed.world_size() == 1:
        return
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------


def _classifier_protocol(job: Job, result: dict, features: dict) -> None:
    """finetune / linear: train, then test the classifier on the test split (and swapped)."""
    model, report = build_model(job)
    result["checkpoint"] = checkpoint_summary(job, report)
    result["epochs_done"] = train_classifier(job, model)
    labels = torch.as_tensor(job.reader.labels(job.test_ids))
    test = infer(job, model, testing_clips(job, job.test_ids), logits=True, stage="test")
    result["metrics"] = classification_metrics(test["logits"], labels)
    predictions = test["logits"].mean(dim=1).argmax(dim=1)
    result["confusion"] = confusion_matrix(predictions, labels, job.num_classes)
    features["test"] = test["features"]
    if job.settings.bg_swap:
        dataset, partners = swapped_dataset(job)
        swapped = infer(job, model, dataset, logits=True, stage="test (bg swap)")
        metrics = classification_metrics(swapped["logits"], labels)
        metrics["partner_top1"] = partner_share(swapped["logits"].mean(dim=1).argmax(dim=1), labels, partners)
        result["bg_swap"] = with_gap(result["metrics"], metrics)
        features["test_bgswap"] = swapped["features"]
    if job.settings.save_features:
        features["train"] = infer(job, model, testing_clips(job, job.train_ids), logits=False, stage="train features")["features"]


def _feature_protocol(job: Job, result: dict, features: dict) -> None:
    """retrieval / knn: frozen features of the train (gallery) and test (query) videos."""
    s = job.settings
    model, report = build_model(job)
    result["checkpoint"] = checkpoint_summary(job, report)
    gallery = infer(job, model, testing_clips(job, job.train_ids), logits=False, stage="train features")["features"]
    queries = infer(job, model, testing_clips(job, job.test_ids), logits=False, stage="test features")["features"]
    features.update(train=gallery, test=queries)
    gallery_labels = torch.as_tensor(job.reader.labels(job.train_ids))
    query_labels = torch.as_tensor(job.reader.labels(job.test_ids))

    def score(query_features: Tensor) -> tuple[dict[str, float], Tensor | None, tuple[Tensor, Tensor] | None]:
        if s.protocol == "retrieval":
            found = top_k_neighbours(prepare_features(query_features), prepare_features(gallery), max(RECALL_KS))
            return recall_from_neighbours(gallery_labels[found[1]], query_labels, RECALL_KS), None, found
        scores = knn_classify(
            query_features, gallery, gallery_labels, job.num_classes, k=s.knn_k, temperature=s.knn_temperature
        )
        accuracy = top_k_accuracy(scores, query_labels, TOP_KS)
        return {"top1": accuracy[1], "top5": accuracy[5]}, scores.argmax(dim=1), None

    result["metrics"], predictions, found = score(queries)
    if predictions is not None:
        result["confusion"] = confusion_matrix(predictions, query_labels, job.num_classes)
    if found is not None:
        result["neighbours"] = found
    if s.bg_swap:
        dataset, partners = swapped_dataset(job)
        swapped_features = infer(job, model, dataset, logits=False, stage="test features (bg swap)")["features"]
        features["test_bgswap"] = swapped_features
        metrics, swapped_predictions, _ = score(swapped_features)
        if swapped_predictions is not None:
            metrics["partner_top1"] = partner_share(swapped_predictions, query_labels, partners)
        result["bg_swap"] = with_gap(result["metrics"], metrics)


def checkpoint_summary(job: Job, report: LoadReport | None) -> dict:
    if report is None:
        return {"path": None, "sha256": None, "format": "none", "arch": job.settings.arch,
                "loaded": 0, "missing": 0, "ignored": 0, "head_loaded": False, "missing_keys": []}
    return report.summary()


def run_evaluate(settings: EvaluateSettings, *, progress: Progress | None = None, log: Log | None = None) -> dict:
    """Run one protocol; return the result (the JSON's content) and, on the main process,
    write the JSON and the files beside it."""
    started = time.perf_counter()
    device = resolve_device(settings.device)
    joined = distributed.init_process_group_from_env(device)
    try:
        job = _prepare(settings, device, progress or (lambda *a, **k: None), log or (lambda message: None))
        result = {
            "schema": SCHEMA,
            "protocol": job.settings.protocol,
            "dataset": {
                "layout": job.reader.dataset.get("layout"),
                "cache": str(job.reader.path),
                "source": job.reader.dataset.get("root"),
                "classes": job.num_classes,
                "train_split": job.splits["train"],
                "test_split": job.splits["test"],
            },
            "fold": job.settings.fold,
            "settings": asdict(job.settings),
        }
        features: dict[str, Tensor] = {}
        if job.settings.protocol in TRAINED:
            _classifier_protocol(job, result, features)
        elif job.settings.protocol == "swap-retrieval":
            swap_retrieval_protocol(job, result, features)
        else:
            _feature_protocol(job, result, features)
        clips = job.settings.clips_per_video
        result["counts"] = {
            "videos": len(job.test_ids), "clips": len(job.test_ids) * clips, "train_videos": len(job.train_ids),
        }
        result["world_size"] = distributed.world_size()
        result["seconds"] = time.perf_counter() - started
        if distributed.is_main_process():
            result = write_outputs(job, result, features)
        else:
            result = _json_ready(job, result)
        distributed.barrier()
        return result
    finally:
        if joined:
            distributed.cleanup()


def _prepare(settings: EvaluateSettings, device: torch.device, progress: Progress, log: Log) -> Job:
    reader = open_cache(settings.cache, source=settings.source)
    if not reader.classes:
        raise EvaluateError(f"{reader.path}: the cache has no class labels; evaluation needs a labelled layout")
    checkpoint = resolve_checkpoint_path(settings.checkpoint)
    weights = read_checkpoint(checkpoint) if checkpoint is not None else None
    settings = resolve_settings(replace(settings, checkpoint=str(checkpoint) if checkpoint else None), weights)
    train_ids = reader.split(settings.train_split, settings.fold)
    test_ids = reader.split(settings.test_split, settings.fold)
    for name, ids in (("train", train_ids), ("test", test_ids)):
        if not ids:
            raise EvaluateError(f"{reader.path}: the {name} split of fold {settings.fold} has no finished videos")
    splits = {
        "train": _split_name(reader, settings.train_split, settings.fold),
        "test": _split_name(reader, settings.test_split, settings.fold),
    }
    return Job(
        settings, reader, train_ids, test_ids, splits, device, Path(settings.run_dir), Path(settings.output), weights,
        progress, log,
    )


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


def side_file(output: Path, name: str) -> Path:
    """``metrics.json`` -> ``metrics_<name>``: the files written beside the metrics."""
    return output.with_name(f"{output.stem}_{name}")


def _rounded(metrics: dict[str, float]) -> dict[str, float | None]:
    """Percentages to 4 decimals; an undefined one (NaN) becomes null, valid JSON."""
    return {k: None if np.isnan(v) else round(v, 4) for k, v in metrics.items()}


def _json_ready(job: Job, result: dict) -> dict:
    """The result without its tensors (they go to the side files)."""
    result = {k: v for k, v in result.items() if k not in ("confusion", "neighbours", "writers")}
    result["metrics"] = _rounded(result["metrics"])
    if "chance" in result:
        result["chance"] = _rounded(result["chance"])
    if "frozen" in result:
        result["frozen"] = {name: _rounded(values) for name, values in result["frozen"].items()}
    if "bg_swap" in result:
        swap = result["bg_swap"]
        result["bg_swap"] = {
            "metrics": _rounded(swap["metrics"]),
            "gap": _rounded(swap["gap"]),
            "beta": job.settings.beta,
            "seed": job.settings.swap_seed,
        }
    return result


def write_outputs(job: Job, result: dict, features: dict[str, Tensor]) -> dict:
    """The metrics JSON and, beside it: per-class accuracy and the confusion matrix (CSV),
    retrieval neighbours (JSON lines), the features (``--save-features``)."""
    output, classes = job.output, job.reader.classes
    output.parent.mkdir(parents=True, exist_ok=True)
    files = {}
    confusion = result.get("confusion")
    if confusion is not None:
        files["confusion"] = str(_write_confusion(side_file(output, "confusion.csv"), confusion, classes))
        files["per_class"] = str(_write_per_class(side_file(output, "per_class.csv"), confusion, classes))
    if "neighbours" in result:
        files["neighbours"] = str(_write_neighbours(side_file(output, "neighbours.jsonl"), job, *result["neighbours"]))
    for name, write in result.get("writers", {}).items():  # a protocol's own side files
        files[name.split(".")[0]] = str(write(side_file(output, name)))
    if job.settings.save_features:
        files["features"] = str(save_features(Path(job.settings.save_features), job, features))
    result = _json_ready(job, result)
    result["files"] = files
    atomic_write_text(output, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def _write_confusion(path: Path, confusion: Tensor, classes: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, confusion.tolist()):
            writer.writerow([name, *row])
    return path


def _write_per_class(path: Path, confusion: Tensor, classes: list[str]) -> Path:
    videos = confusion.sum(dim=1)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "videos", "top1"])
        for name, correct, count in zip(classes, confusion.diagonal().tolist(), videos.tolist()):
            writer.writerow([name, count, f"{100 * correct / count:.2f}" if count else ""])
    return path


def _write_neighbours(path: Path, job: Job, similarities: Tensor, indices: Tensor) -> Path:
    """One line per test video: its id, path, class and its nearest train videos."""
    reader = job.reader

    def entry(video_id: str) -> dict:
        info = reader.info(video_id)
        return {"video_id": video_id, "path": info["path"], "class": info.get("class_name", info["label"])}

    gallery = [entry(v) for v in job.train_ids]
    with open(path, "w", encoding="utf-8") as handle:
        for video_id, row_sims, row_idx in zip(job.test_ids, similarities.tolist(), indices.tolist()):
            neighbours = [{**gallery[j], "similarity": round(s, 5)} for s, j in zip(row_sims, row_idx)]
            handle.write(json.dumps({"query": entry(video_id), "neighbours": neighbours}) + "\n")
    return path


def save_features(path: Path, job: Job, features: dict[str, Tensor]) -> Path:
    """``--save-features``: arrays ``features`` (N, D float32, each video's clip features
    averaged, not centred), ``labels`` (N), ``video_ids`` (N) and ``splits`` (N: "train",
    "test", "test_bgswap" for the swapped copies of the test videos; swap-retrieval:
    "test_swapgallery" for its gallery, "test_frozen" for the frozen test clips)."""
    ids_of = {"train": job.train_ids, **{name: job.test_ids for name in TEST_SETS}}
    parts = [(name, features[name]) for name in ("train", *TEST_SETS) if name in features]
    video_ids = [v for name, _ in parts for v in ids_of[name]]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        features=torch.cat([f for _, f in parts]).numpy().astype(np.float32),
        labels=job.reader.labels(video_ids),
        video_ids=np.array(video_ids),
        splits=np.array([name for name, f in parts for _ in range(len(f))]),
    )
    return path
