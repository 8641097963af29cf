"""``fame evaluate``'s settings: the protocols, their paper recipes, the settings dataclass,
reading them from a recipe's ``[evaluate]`` table, and resolving what is left open (``None``)
from the checkpoint and the protocol's recipe."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from pipelines.evaluate.bg_swap import BACKGROUNDS, BETA, SWAP_SEED
from pipelines.evaluate.retrieval import KNN_K, KNN_TEMPERATURE
from pipelines.settings import SettingsError
from pipelines.train.checkpoint_formats import BackboneWeights
from pipelines.train.checkpoints import CHECKPOINTS, LATEST, latest_path
from pipelines.train.models import BACKBONES

PROTOCOLS = ("finetune", "linear", "retrieval", "knn", "swap-retrieval")
TRAINED = ("finetune", "linear")  # protocols that train a classifier (and write checkpoints)
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
    "resume", "workers", "device", "output", "save_features", "bg_swap", "beta", "swap_seed", "ground_truth", "backgrounds",
    "ground_truth_dir",
    "test_batch_size", "checkpoint", "source", "threads",
}


class EvaluateError(Exception):
    """The evaluation cannot run as asked (one clear line for the user)."""


class EvaluateSettingsError(SettingsError, EvaluateError):
    """Settings no evaluation can use: a SettingsError, as every command's, and an
    EvaluateError, what callers of ``run_evaluate`` have always caught."""


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
    run_dir: str | None = None  # None: beside the checkpoint (default_run_dir)
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
    backgrounds: str = "clean"  # swapped sets: each background without its own subject (clean), or raw
    save_features: str | None = None  # .npz file for the per-video features
    seed: int = 0  # classifier initialisation, clip sampling, augmentation
    workers: int = 4  # DataLoader worker processes (0: this process)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    resume: bool = False  # continue the run in run_dir from its latest checkpoint
    source: str | None = None  # where a --no-frames cache's videos are, if not where it was made
    threads: int | None = None  # torch threads of this process; None: OMP_NUM_THREADS, else its share of the cores (pipelines.threads)

    def validate(self) -> None:
        """Raise EvaluateSettingsError for values no evaluation can use; fields still ``None``
        are checked once ``resolve_settings`` has filled them (it calls this)."""
        problems = []
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be at least 1, got {self.threads}")
        if self.arch is not None and self.arch not in BACKBONES:
            problems.append(f"arch {self.arch!r} is not one of {', '.join(BACKBONES)}")
        for name in ("clip_len", "stride", "crop", "clips_per_video", "batch_size", "test_batch_size", "knn_k"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.epochs is not None and self.epochs < 0:
            problems.append("epochs must be 0 or more")
        if self.protocol in TRAINED and self.epochs == 0 and self.checkpoint is None:
            problems.append("--epochs 0 tests a saved classifier: pass its --checkpoint")
        if not 0 < self.beta <= 1:
            problems.append("beta must lie in (0, 1]")
        if self.backgrounds not in BACKGROUNDS:
            problems.append(f"backgrounds must be one of {', '.join(BACKGROUNDS)}, got {self.backgrounds!r}")
        if self.workers < 0:
            problems.append("workers must be 0 or more")
        if self.protocol == "swap-retrieval" and self.bg_swap:
            problems.append("--bg-swap has no meaning with swap-retrieval, whose gallery is the swapped set")
        if problems:
            raise EvaluateSettingsError("; ".join(problems))


def read_config(name_or_path: str | Path) -> dict:
    """Settings from the ``[evaluate]`` table of a recipe: a TOML file, or the name of a
    shipped recipe (``pipelines/train/recipes``, whose ``[settings]`` are pretraining's). Unknown
    keys are an error: a typo must not be silently ignored."""
    from pipelines.train.recipes import RecipeError, read_recipe_file

    try:
        path, data = read_recipe_file(name_or_path)
    except RecipeError as error:
        raise EvaluateSettingsError(f"{name_or_path}: cannot read the recipe: {error}") from None
    values = data.get("evaluate")
    if not isinstance(values, dict):
        raise EvaluateSettingsError(f"{path}: has no 'evaluate' table of settings")
    known = {f.name for f in fields(EvaluateSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise EvaluateSettingsError(f"{path}: unknown evaluate setting(s) {', '.join(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def resolve_checkpoint_path(path: str | None) -> Path | None:
    """A checkpoint file as given, or a run directory's latest checkpoint."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        latest = latest_path(path)
        if not latest.is_file():
            raise EvaluateSettingsError(f"{path}: a directory without {latest.relative_to(path)}; pass a checkpoint file or a run directory")
        return latest
    return path


def default_run_dir(checkpoint: str | None, protocol: str, fold: int) -> Path:
    """Where an evaluation goes without ``--run-dir``: beside what it evaluates, so that a
    checkout gets no stray runs/ tree and each run's results stay with it.

    - a pretraining run's checkpoint (``RUN/checkpoints/latest.pt``, what ``--checkpoint RUN``
      resolves to): ``RUN/evaluate-<protocol>-fold<k>``; another checkpoint of the run,
      e.g. ``epoch_0010.pt``: ``RUN/evaluate-<protocol>-fold<k>-epoch_0010``;
    - any other file (an official release, a state dict): beside it,
      ``DIR/evaluate-<protocol>-fold<k>-<file stem>``;
    - no checkpoint (random initialisation): ``runs/evaluate-<protocol>-fold<k>``.
    """
    name = f"evaluate-{protocol}-fold{fold}"
    if checkpoint is None:
        return Path("runs") / name
    path = Path(checkpoint)
    if path.parent.name == CHECKPOINTS:
        return path.parent.parent / (name if path.name == LATEST else f"{name}-{path.stem}")
    return path.parent / f"{name}-{path.stem}"


def resolve_settings(settings: EvaluateSettings, weights: BackboneWeights | None) -> EvaluateSettings:
    """Fill every ``None``: backbone and clip geometry from the checkpoint's saved settings
    (ours) or its recognised backbone, then the paper's defaults; the training recipe of
    the protocol."""
    if settings.protocol not in PROTOCOLS:
        raise EvaluateSettingsError(f"unknown protocol {settings.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    saved = weights.settings if weights is not None else {}
    arch = settings.arch or saved.get("arch") or (weights.arch if weights is not None else None)
    if arch is None:
        raise EvaluateSettingsError("cannot tell the backbone: pass --arch")
    filled = {"arch": arch}
    for name, default in (*CLIP_DEFAULTS.items(), ("crop", CROP_DEFAULTS.get(arch, CROP_DEFAULT))):
        filled[name] = getattr(settings, name) or saved.get(name) or default
    recipe = PROTOCOL_DEFAULTS.get(settings.protocol, {})
    for name, default in recipe.items():
        filled[name] = default if getattr(settings, name) is None else getattr(settings, name)
    run_dir = settings.run_dir or str(default_run_dir(settings.checkpoint, settings.protocol, settings.fold))
    output = settings.output or str(Path(run_dir) / "metrics.json")
    resolved = replace(settings, run_dir=run_dir, output=output, **filled)
    resolved.validate()
    return resolved
