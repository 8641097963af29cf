"""``fame pretrain``'s settings: the dataclass (saved as RUN/settings.json and in every
checkpoint), its checks, and which settings a resumed run may change."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pipelines.settings import SettingsError

SCHEDULES = ("cosine", "constant")
# The paper's code: a 2-layer MLP head for R(2+1)D, a linear one for I3D.
DEFAULT_MLP = {"r2plus1d_18": True, "r3d_18": True, "i3d": False, "small": True}
# Settings a resumed run may change (paths may differ on another machine); any other change
# needs a new run directory.
RESUMABLE_CHANGES = frozenset(
    {"cache", "run_dir", "source", "epochs", "device", "workers", "log_every", "checkpoint_every",
     "max_steps_per_epoch", "amp", "channels_last", "recipe", "threads"}
)


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
    threads: int | None = None  # torch threads of this process; None: OMP_NUM_THREADS, else its share of the cores (pipelines.threads)

    def validate(self) -> None:
        """Raise SettingsError for values no run can use."""
        from pipelines.fame import parse_beta  # torch: here, not at import (`fame --help` stays fast)
        from pipelines.train.models import BACKBONES

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
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be at least 1, got {self.threads}")
        if problems:
            raise SettingsError("; ".join(problems))

    @property
    def use_mlp(self) -> bool:
        return DEFAULT_MLP.get(self.arch, True) if self.mlp is None else self.mlp


def settings_fields() -> dict[str, object]:
    """Field name -> default (``dataclasses.MISSING`` for required ones), for recipes and the CLI."""
    return {f.name: f.default for f in fields(PretrainSettings)}
