"""``fame pretrain``: MoCo + FAME from the cache (torchrun for many processes)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import typer

from pipelines.train.settings import PretrainSettings  # light: torch loads when the command runs

from .console import console, fail, progress_bar
from .options import defaults, given_options

DEFAULTS = defaults(PretrainSettings)


def pretrain(
    ctx: typer.Context,
    cache: Path = typer.Option(..., "--cache", help="The Zarr cache made by `fame preprocess`."),
    run_dir: Path = typer.Option(..., "--run-dir", help="Where checkpoints, settings.json and metrics.jsonl go."),
    config: str | None = typer.Option(None, "--config", help="A recipe name (e.g. synth_small) or a .toml file."),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/checkpoints/latest.pt."),
    arch: str = typer.Option(DEFAULTS.arch, help="r2plus1d_18|r3d_18|i3d|small"),
    epochs: int = typer.Option(DEFAULTS.epochs, help="Epochs to reach (a resumed run continues up to this)."),
    batch_size: int = typer.Option(DEFAULTS.batch_size, help="Videos per step over all processes."),
    clip_len: int = typer.Option(DEFAULTS.clip_len, help="Frames per clip."),
    stride: int = typer.Option(DEFAULTS.stride, help="Temporal stride between a clip's frames."),
    crop: int = typer.Option(DEFAULTS.crop, help="Side of the random resized crop."),
    fame: bool = typer.Option(DEFAULTS.fame, "--fame/--no-fame", help="Foreground-background merging, or plain MoCo."),
    beta: str = typer.Option(
        str(DEFAULTS.beta), help="Share of each crop kept as foreground, in (0, 1), or auto: fitted to each crop's "
        "soft map (Otsu, within [0.1, 0.5]; docs/method.md)."),
    queue: int = typer.Option(DEFAULTS.queue, help="MoCo queue of negative keys."),
    moco_dim: int = typer.Option(DEFAULTS.moco_dim, help="Output size of the projection head."),
    momentum: float = typer.Option(DEFAULTS.momentum, help="Momentum of the key encoder."),
    temperature: float = typer.Option(DEFAULTS.temperature, help="Softmax temperature."),
    mlp: bool | None = typer.Option(None, "--mlp/--no-mlp", help="MLP projection head [default: per backbone]."),
    bn_splits: int = typer.Option(DEFAULTS.bn_splits, help="One process: BN sub-batches (shuffle-BN)."),
    lr: float = typer.Option(DEFAULTS.lr, help="Peak learning rate."),
    weight_decay: float = typer.Option(DEFAULTS.weight_decay, help="SGD weight decay."),
    sgd_momentum: float = typer.Option(DEFAULTS.sgd_momentum, help="SGD momentum."),
    schedule: str = typer.Option(DEFAULTS.schedule, help="cosine|constant"),
    warmup: int = typer.Option(DEFAULTS.warmup, help="Epochs of linear warm-up."),
    device: str = typer.Option(DEFAULTS.device, help="auto|cpu|cuda|cuda:N"),
    workers: int = typer.Option(DEFAULTS.workers, help="Loader processes per training process."),
    seed: int = typer.Option(DEFAULTS.seed, help="Seed of the model, data and augmentations."),
    split: str = typer.Option(DEFAULTS.split, help="Which videos: a split of the cache, or all."),
    fold: int = typer.Option(DEFAULTS.fold, help="Fold of datasets with several splits."),
    checkpoint_every: int = typer.Option(DEFAULTS.checkpoint_every, help="Keep epoch_XXXX.pt every N epochs."),
    log_every: int = typer.Option(DEFAULTS.log_every, help="A metrics line every N steps."),
    max_steps_per_epoch: int | None = typer.Option(None, help="Cut epochs short (trials)."),
    amp: bool = typer.Option(DEFAULTS.amp, "--amp/--no-amp", help="Mixed precision on CUDA."),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="Channels-last-3d layout [default: on CUDA]."
    ),
    source: Path | None = typer.Option(None, help="Videos of a --no-frames cache, if moved."),
    threads: int | None = typer.Option(
        None, help="Torch threads of this process. \\[default: OMP_NUM_THREADS, else the cores divided among the fame "
        "commands running]"),
) -> None:
    """Pretrain MoCo + FAME on a preprocessed cache, on CPU or GPU, one process or many.

    Options given on the command line win over the --config recipe, which wins over the
    defaults shown here. The resolved settings are printed and saved in RUN/settings.json.
    Run the same command with --resume to continue after an interruption.

    Example: fame pretrain --cache demo.zarr --run-dir runs/fame --config synth_small

    Many processes: torchrun --nproc-per-node 8 -m fame_cli pretrain --cache k400.zarr
    --run-dir runs/k400 --config k400_i3d_224
    """
    from pipelines.data.cache import CacheError
    from pipelines.data.video import VideoError
    from pipelines.fame import parse_beta
    from pipelines.settings import SettingsError
    from pipelines.train.checkpoints import CheckpointError
    from pipelines.train.distributed import launch_rank
    from pipelines.train.pretrain import TrainingDiverged, run_pretrain
    from pipelines.train.recipes import load_recipe, resolve_settings

    main = launch_rank() == 0  # only rank 0 prints
    given = given_options(ctx, PretrainSettings)
    try:
        if "beta" in given:
            given["beta"] = parse_beta(given["beta"])
    except ValueError as error:
        fail(str(error))
    try:
        recipe = load_recipe(config) if config else None
        settings = resolve_settings(recipe, {**given, "cache": str(cache), "run_dir": str(run_dir)})
    except SettingsError as error:
        fail(str(error))
    if main:
        console.print("settings: " + json.dumps(asdict(settings)), soft_wrap=True)
    try:
        with progress_events(main) as on_event:
            result = run_pretrain(settings, resume=resume, progress=on_event)
    except (CacheError, CheckpointError, SettingsError, VideoError) as error:
        _fail_once(main, str(error), 2)
    except TrainingDiverged as error:
        _fail_once(main, str(error), 1)
    except KeyboardInterrupt:
        _fail_once(main, f"interrupted; run the same command with --resume to continue from {run_dir}/checkpoints", 130)
    if main:
        loss, top1 = (result.last_metrics.get(name, float("nan")) for name in ("loss", "top1"))
        console.print(
            f"done: {result.epochs} epochs, {result.steps} steps; last epoch loss {loss:.3f} top1 {top1:.1f}%; "
            f"checkpoint {result.checkpoint}", soft_wrap=True,
        )


def _fail_once(main: bool, message: str, code: int):
    if main:
        fail(message, code)
    raise typer.Exit(code)


@contextmanager
def progress_events(main: bool):
    """Yields the run's event callback: a progress bar (rich on a terminal, plain lines
    otherwise) and a line per epoch on rank 0; nothing on the other ranks."""
    if not main:
        yield None
        return
    with progress_bar("pretrain", 0, "epoch", "loss", "speed", "wait", unit="steps") as update:

        def on_event(event: str, data: dict) -> None:
            if event == "warning":
                console.print(f"[yellow]warning:[/] {data['message']}", soft_wrap=True)
            elif event == "start":
                resumed = f", resuming after epoch {data['start_epoch']}" if data["step"] else ""
                console.print(
                    f"{data['videos']} videos, {data['steps_per_epoch']} steps per epoch, "
                    f"{data['world_size']} process(es) on {data['device']}{resumed}", soft_wrap=True,
                )
                if data.get("threads"):
                    console.print(data["threads"], soft_wrap=True)
                if data.get("tensorboard"):
                    console.print(f"TensorBoard: tensorboard --logdir {data['tensorboard']}", soft_wrap=True)
                update(data["step"], total=data["steps_per_epoch"] * data["settings"]["epochs"])
            elif event == "step":
                update(
                    data["step"], epoch=f"epoch {data['epoch']}/{data['epochs']}", loss=f"loss {data['loss']:.3f}",
                    speed=f"{data['clips_per_s']:.0f} clips/s", wait=f"data wait {_wait_share(data):.0f}%",
                )
            elif event == "epoch":
                m = data["metrics"]
                console.print(
                    f"epoch {data['epoch']}/{data['epochs']}: loss {m['loss']:.3f} top1 {m['top1']:.1f}% "
                    f"top5 {m['top5']:.1f}% {m['clips_per_s']:.0f} clips/s data wait {_wait_share(m):.0f}% "
                    f"-> {data['checkpoint']}", soft_wrap=True,
                )

        yield on_event


def _wait_share(metrics: dict) -> float:
    """Percentage of the step time spent waiting for data."""
    return 100 * metrics["data_time"] / max(metrics["data_time"] + metrics["step_time"], 1e-9)


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
