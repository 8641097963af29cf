"""``fame evaluate``: the paper's downstream protocols (and a background-bias score)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import typer
from rich.table import Table


from .console import console, fail, out, progress_bar
from .options import given_options

#: ``pipelines.evaluate.settings.PROTOCOLS`` (a test keeps them equal), written out so that
#: ``--help`` does not load torch
PROTOCOLS = ("finetune", "linear", "retrieval", "knn", "swap-retrieval")


class StageProgress:
    """One progress bar per stage (each epoch, each test pass) of ``run_evaluate``."""

    def __init__(self):
        self.stack, self.stage, self.update = ExitStack(), None, None

    def __call__(self, stage: str, done: int, total: int, **fields) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.update = self.stack.enter_context(progress_bar(stage, total, *fields))
        self.update(done, total=total, **fields)

    def close(self) -> None:
        self.stack.close()
        self.stack = ExitStack()


def metrics_table(result: dict) -> Table:
    """The metrics, and with --bg-swap the swapped set's and the gap, in percent;
    swap-retrieval: its chance levels and the frozen clips' scores."""
    if "frozen" in result:
        return swap_retrieval_table(result)
    swap = result.get("bg_swap")
    table = Table(title=f"{result['protocol']} on {Path(result['dataset']['cache']).name} (fold {result['fold']})")
    table.add_column("metric")
    table.add_column("normal", justify="right")
    if swap:
        table.add_column("bg swap", justify="right")
        table.add_column("gap", justify="right")
    names = list(result["metrics"]) + [k for k in (swap or {}).get("metrics", {}) if k not in result["metrics"]]
    for name in names:
        row = [name, _percent(result["metrics"].get(name))]
        if swap:
            row += [_percent(swap["metrics"].get(name)), _percent(swap["gap"].get(name))]
        table.add_row(*row)
    return table


def swap_retrieval_table(result: dict) -> Table:
    """swap-retrieval: each score on moving and on frozen queries, with its chance level."""
    swap = result["swap"]
    table = Table(title=f"swap-retrieval on {Path(result['dataset']['cache']).name}: {swap['gallery']} test videos, "
                        f"masks from {swap['masks']}, {swap.get('backgrounds', 'raw')} backgrounds")
    for name, justify in (("metric", "left"), ("clips", "right"), ("frozen clips", "right"),
                          ("drop", "right"), ("chance", "right")):
        table.add_column(name, justify=justify)
    frozen = result["frozen"]
    for name, value in result["metrics"].items():
        table.add_row(name, _percent(value), _percent(frozen["metrics"].get(name)), _percent(frozen["drop"].get(name)),
                      _percent(result["chance"].get(name)))
    return table


def _percent(value) -> str:
    return "" if value is None else f"{value:.2f}"


def evaluate(
    ctx: typer.Context,
    cache: Path = typer.Option(..., "--cache", help="Zarr cache written by `fame preprocess` (labelled)."),
    checkpoint: str | None = typer.Option(
        None, help="Weights: our checkpoint, a pretrain run directory (its latest), an official FAME release or a torchvision state dict."
    ),
    protocol: str | None = typer.Option(None, help=f"{'|'.join(PROTOCOLS)}"),
    fold: int | None = typer.Option(None, help="Official split (train<fold>/test<fold>). \\[default: 1]"),
    train_split: str | None = typer.Option(
        None, help="Split that trains the classifier / forms the gallery (all: every video). \\[default: train]"),
    test_split: str | None = typer.Option(
        None, help="Split that is tested / queries the gallery (all: every video). \\[default: test; "
        "swap-retrieval on a cache without splits: all]"),
    output: Path | None = typer.Option(None, help="Metrics JSON. \\[default: RUN_DIR/metrics.json]"),
    run_dir: Path | None = typer.Option(
        None, help="Run directory. \\[default: beside the checkpoint: RUN/evaluate-PROTOCOL-foldN for a pretraining "
        "run (or its checkpoints/latest.pt), DIR/evaluate-PROTOCOL-foldN-STEM for another file DIR/STEM.pt; "
        "runs/evaluate-PROTOCOL-foldN without --checkpoint]"),
    clips_per_video: int | None = typer.Option(None, help="Uniform test clips per video. \\[default: 10]"),
    epochs: int | None = typer.Option(None, help="Training epochs (0: test a saved classifier). \\[default: 150 finetune, 100 linear]"),
    arch: str | None = typer.Option(None, help="Backbone. \\[default: the checkpoint's]"),
    clip_len: int | None = typer.Option(None, help="Frames per clip. \\[default: the checkpoint's, else 16]"),
    stride: int | None = typer.Option(None, help="Temporal stride. \\[default: the checkpoint's, else 2]"),
    crop: int | None = typer.Option(None, help="Clip side. \\[default: the checkpoint's, else 112 (I3D 224)]"),
    batch_size: int | None = typer.Option(None, help="Training clips per process and step. \\[default: 32]"),
    lr: float | None = typer.Option(None, help="Learning rate. \\[default: 0.025 finetune, 30 linear]"),
    workers: int | None = typer.Option(None, help="DataLoader workers. \\[default: 4]"),
    config: Path | None = typer.Option(None, help="TOML recipe (\\[evaluate] table); options given here win."),
    bg_swap: bool | None = typer.Option(
        None, "--bg-swap/--no-bg-swap", help="Also test foregrounds merged onto other videos' backgrounds; report the gap."
    ),
    ground_truth: bool | None = typer.Option(
        None, "--ground-truth/--no-ground-truth",
        help="Swapped sets (--bg-swap, swap-retrieval) use the true foreground masks (fame synth data), not the cache's.",
    ),
    ground_truth_dir: Path | None = typer.Option(
        None, help="Ground-truth folder for --ground-truth. \\[default: fame synth's, beside the dataset]"
    ),
    backgrounds: str | None = typer.Option(
        None, help="Swapped sets' backgrounds: clean (each without its own subject, filled from its own "
        "background) or raw (as they are: the subject stays where the pasted one does not cover it). \\[default: clean]",
    ),
    save_features: Path | None = typer.Option(None, help="Save per-video features to this .npz."),
    seed: int | None = typer.Option(None, help="Seed of initialisation, sampling, augmentation. \\[default: 0]"),
    device: str | None = typer.Option(None, help="auto|cpu|cuda|cuda:N. \\[default: auto]"),
    resume: bool | None = typer.Option(None, "--resume/--no-resume", help="Continue the run in --run-dir."),
    source: Path | None = typer.Option(None, help="Videos of a --no-frames cache, if moved since preprocessing."),
    threads: int | None = typer.Option(
        None, help="Torch threads of this process. \\[default: OMP_NUM_THREADS, else the cores divided among the fame "
        "commands running]"),
) -> None:
    """Evaluate a checkpoint with the paper's protocols: finetune, linear, retrieval or knn;
    or score its background bias directly with swap-retrieval.

    Writes a metrics JSON (docs/evaluation.md), files beside it (confusion matrix, per-class
    accuracy, retrieval neighbours) and, for finetune/linear, a resumable run directory.
    Run it under torchrun to fine-tune on several GPUs. swap-retrieval: each test clip
    queries a gallery of the test videos' foregrounds moved onto other test videos'
    backgrounds (same_foreground@1/@5, same_background@1, with chance levels), also with
    its frames frozen (one frame repeated: does the encoder use motion?).

    Example: fame evaluate --cache ucf101.zarr --checkpoint runs/pretrain --protocol retrieval --bg-swap

    Example: fame evaluate --cache synth.zarr --checkpoint runs/fame --protocol swap-retrieval --ground-truth
    """
    from pipelines.data.cache import CacheError
    from pipelines.evaluate.run import EvaluateError, EvaluateSettings, read_config, run_evaluate
    from pipelines.train.checkpoint_formats import CheckpointFormatError
    from pipelines.train.checkpoints import CheckpointError

    progress = StageProgress()
    try:
        values = read_config(config) if config else {}
        values.update(given_options(ctx, EvaluateSettings))
        if "protocol" not in values:
            fail(f"choose a --protocol: {', '.join(PROTOCOLS)}")
        result = run_evaluate(EvaluateSettings(**values), progress=progress, log=lambda line: console.print(line, soft_wrap=True))
    except (EvaluateError, CacheError, CheckpointFormatError, CheckpointError, ValueError) as error:
        fail(str(error))
    finally:
        progress.close()
    loaded = result["checkpoint"]
    console.print(
        f"checkpoint {loaded['path']} ({loaded['format']}): {loaded['loaded']} keys loaded, "
        f"{loaded['missing']} missing, {loaded['ignored']} ignored", soft_wrap=True,
    )
    if loaded["missing"]:
        console.print(f"[yellow]missing (left at their initial values):[/] {', '.join(loaded['missing_keys'])}", soft_wrap=True)
    console.print("settings: " + json.dumps(result["settings"]), soft_wrap=True)
    out.print(metrics_table(result))
    counts = result["counts"]
    console.print(f"{counts['videos']} test videos, {counts['clips']} clips; metrics in {result['settings']['output']}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)

