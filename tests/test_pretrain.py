"""``fame pretrain`` end to end on a tiny cache: the FAME step, checkpoints, resume (also after
a real SIGKILL), what must fail at start, NaN, recipes, and 2-process DDP on CPU."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import moving_square_video, tiny_cache, write_test_video
from pipelines.data.cache import CacheError, open_cache
from pipelines.fame import fame_merge
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess
from pipelines.settings import SettingsError
from pipelines.train.checkpoints import CheckpointError, load_checkpoint
from pipelines.train.loader import check_cache_fits, queue_warning
from pipelines.train.moco import MoCo
from pipelines.train.pretrain import TrainingDiverged, run_pretrain
from pipelines.train.recipes import RecipeError, available_recipes, load_recipe, resolve_settings
from pipelines.train.settings import PretrainSettings

# 12 videos, batch 4: 3 steps per epoch of the `small` backbone on 4x24x24 clips.
TINY = dict(arch="small", epochs=1, batch_size=4, clip_len=4, stride=2, crop=24, queue=64, split="all",
            workers=0, device="cpu", log_every=1, lr=0.05)
TINY_OPTIONS = ["--arch", "small", "--batch-size", "4", "--clip-len", "4", "--stride", "2", "--crop", "24",
                "--queue", "64", "--split", "all", "--workers", "0", "--device", "cpu", "--log-every", "1"]


@pytest.fixture(scope="module")
def cache(synth_dataset, tmp_path_factory) -> Path:
    return tiny_cache(synth_dataset, tmp_path_factory.mktemp("pretrain"), "c.zarr")


def tiny(cache: Path, run_dir: Path, **changes) -> PretrainSettings:
    return PretrainSettings(cache=str(cache), run_dir=str(run_dir), **{**TINY, **changes})


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fame_cli", "pretrain", *args], capture_output=True, text=True,
                          timeout=timeout)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- the FAME step


def test_merged_query_keeps_exactly_its_top_beta_pixels_and_another_clips_background():
    rng = np.random.default_rng(0)
    query = torch.from_numpy(rng.integers(0, 256, (6, 3, 4, 10, 12), dtype=np.uint8))
    soft = torch.from_numpy(rng.random((6, 10, 12)).astype(np.float32))
    for beta in (0.3, 0.5):
        fused, mask, perm = fame_merge(query, soft, beta=beta, generator=torch.Generator().manual_seed(1))
        assert fused.dtype == torch.uint8 and (perm != torch.arange(6)).all()
        for i in range(6):  # slow reference: rank the pixels of each map with numpy
            keep = np.zeros(120, bool)
            keep[np.argsort(-soft[i].numpy().ravel(), kind="stable")[: round(beta * 120)]] = True
            keep = keep.reshape(10, 12)
            assert np.array_equal(mask[i].numpy(), keep)
            own, other = query[i].numpy(), query[int(perm[i])].numpy()
            assert np.array_equal(fused[i].numpy(), np.where(keep, own, other))


# --------------------------------------------------------------------------- a whole run


def test_pretrain_end_to_end(cache, tmp_path):
    events = []
    result = run_pretrain(tiny(cache, tmp_path / "run", epochs=2), progress=lambda e, d: events.append(e))
    assert (result.epochs, result.steps) == (2, 6) and math.isfinite(result.last_metrics["loss"])
    lines = read_metrics(tmp_path / "run")
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert {"step", "epoch", "loss", "top1", "top5", "lr", "data_time", "step_time", "clips_per_s"} <= lines[0].keys()
    assert all(math.isfinite(line["loss"]) for line in lines) and lines[-1]["lr"] < lines[0]["lr"]  # cosine
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt", kind="pretrain")
    assert checkpoint["epoch"] == 2 and checkpoint["step"] == 6
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["epoch_0002.pt", "latest.pt"]
    saved = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert saved == asdict(tiny(cache, tmp_path / "run", epochs=2)) == checkpoint["settings"]
    assert events[0] == "start" and events.count("step") == 6 and events.count("epoch") == 2


def test_resume_continues_exactly_like_an_uninterrupted_run(cache, tmp_path):
    straight = tmp_path / "straight"
    run_pretrain(tiny(cache, straight, epochs=2, checkpoint_every=1))
    split = tmp_path / "split"

    def interrupt_after_the_first_epoch(event, data):
        if event == "epoch":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pretrain(tiny(cache, split, epochs=2, checkpoint_every=1), progress=interrupt_after_the_first_epoch)
    result = run_pretrain(tiny(cache, split, epochs=2, checkpoint_every=1), resume=True)
    assert result.resumed_from == 1 and (result.epochs, result.steps) == (2, 6)
    a = load_checkpoint(straight / "checkpoints" / "latest.pt")
    b = load_checkpoint(split / "checkpoints" / "latest.pt")
    assert (b["epoch"], b["step"]) == (2, 6)
    for key, value in a["model"].items():  # weights, key encoder, BN statistics, the queue and its pointer
        assert torch.equal(value, b["model"][key]), key
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(state_a["momentum_buffer"], state_b["momentum_buffer"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    losses = [line["loss"] for line in read_metrics(straight)]
    assert [line["loss"] for line in read_metrics(split)] == losses


def test_resume_refuses_other_settings_and_fresh_runs_refuse_to_overwrite(cache, tmp_path):
    run_pretrain(tiny(cache, tmp_path / "run"))
    with pytest.raises(SettingsError, match="--resume"):
        run_pretrain(tiny(cache, tmp_path / "run"))
    with pytest.raises(SettingsError, match="lr: 0.05 -> 0.1"):
        run_pretrain(tiny(cache, tmp_path / "run", epochs=2, lr=0.1), resume=True)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(cache, tmp_path, monkeypatch):
    original, calls = MoCo.forward, []

    def forward(self, view_1, view_2):
        loss, stats = original(self, view_1, view_2)
        calls.append(1)
        if len(calls) >= 5:  # epoch 2, its second step
            loss = loss * float("nan")
        return loss, {**stats, "loss": loss.detach()}

    monkeypatch.setattr(MoCo, "forward", forward)
    with pytest.raises(TrainingDiverged, match=r"step 5 \(epoch 2\).*last good checkpoint"):
        run_pretrain(tiny(cache, tmp_path / "run", epochs=3))
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert (checkpoint["epoch"], checkpoint["step"]) == (1, 3)
    assert all(math.isfinite(p.float().sum()) for p in checkpoint["model"].values())


# --------------------------------------------------------------------------- what fails at start


def test_cache_that_does_not_fit_fails_at_start_in_one_line(cache, tmp_path):
    run = cli("--cache", str(cache), "--run-dir", str(tmp_path / "run"), *TINY_OPTIONS, "--crop", "40")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--crop 40 is larger than the cached frames" in errors[0]
    assert not (tmp_path / "run").exists()  # nothing written
    with pytest.raises(CacheError, match="cannot fill one batch"):
        run_pretrain(tiny(cache, tmp_path / "r", batch_size=16, queue=64))
    with pytest.raises(SettingsError, match="does not split into 2 BN"):
        run_pretrain(tiny(cache, tmp_path / "r", batch_size=3))


def test_missing_masks_fail_unless_no_fame(cache, tmp_path):
    import shutil

    copy = tmp_path / "c.zarr"
    shutil.copytree(cache, copy)
    victim = sorted((copy / "videos").iterdir())[0]
    shutil.rmtree(victim / "masks")
    with pytest.raises(CacheError, match="no soft masks"):
        run_pretrain(tiny(copy, tmp_path / "run"))
    fits, skipped = check_cache_fits(open_cache(copy), tiny(copy, tmp_path / "run", fame=False), world=1)
    assert len(fits) == 12 and not skipped


def test_videos_shorter_than_a_clip_are_kept_and_repeat_their_last_frame(tmp_path):
    root = tmp_path / "data"
    for i, frames in enumerate([30, 30, 30, 30, 10]):
        write_test_video(root / f"class{i % 2}" / f"v{i}.avi", moving_square_video(frames=frames, seed=i))
    cache = tmp_path / "c.zarr"
    run_preprocess(PreprocessSettings(source=str(root), cache=str(cache), layout="folder", short_side=32, window=4,
                                      stride=2, hop=2))
    events = []
    result = run_pretrain(tiny(cache, tmp_path / "run", clip_len=16), progress=lambda e, d: events.append((e, d)))
    # clip_len 16 at stride 2 spans 31 frames: every video is short, none is left out
    assert sorted(result.short_videos) == sorted(open_cache(cache).video_ids) and result.steps == 1
    assert any(e == "warning" and "repeat their last frame" in d["message"] for e, d in events)


def test_corrupt_checkpoint_gives_a_clear_error_and_is_never_overwritten(cache, tmp_path):
    run_dir = tmp_path / "run"
    run_pretrain(tiny(cache, run_dir, checkpoint_every=1))
    latest, good = run_dir / "checkpoints" / "latest.pt", run_dir / "checkpoints" / "epoch_0001.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated
    before = {p: p.read_bytes() for p in (latest, good)}
    run = cli("--cache", str(cache), "--run-dir", str(run_dir), *TINY_OPTIONS, "--lr", "0.05", "--epochs", "2",
              "--resume")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "not a readable checkpoint" in run.stderr and "epoch_0001.pt" in run.stderr
    assert {p: p.read_bytes() for p in (latest, good)} == before
    with pytest.raises(CheckpointError):
        run_pretrain(tiny(cache, run_dir, epochs=2), resume=True)


# --------------------------------------------------------------------------- recipes


def test_shipped_recipes_load_and_resolve():
    assert {"ucf101_r2plus1d_112", "k400_i3d_224", "ucf101_i3d_224", "synth_small", "real_small"} <= set(available_recipes())
    for name in available_recipes():
        recipe = load_recipe(name)
        settings = resolve_settings(recipe, {"cache": "c.zarr", "run_dir": "run"})
        assert settings.recipe == f"{name}@{recipe.version}"
    k400 = resolve_settings(load_recipe("k400_i3d_224"), {"cache": "c", "run_dir": "r"})
    assert (k400.arch, k400.crop, k400.queue, k400.use_mlp, k400.lr) == ("i3d", 224, 65536, False, 0.01)
    assert (k400.grayscale_p, k400.jitter_p, k400.blur_p) == (0.2, 0.8, 0.5)  # the paper's augmentations
    demo = resolve_settings(load_recipe("synth_small"), {"cache": "c", "run_dir": "r"})
    assert (demo.grayscale_p, demo.jitter_p) == (0.0, 0.0)  # the demo's documented departure


def test_command_line_wins_over_the_recipe_which_wins_over_defaults(cache, tmp_path):
    recipe = tmp_path / "mine.toml"
    settings = {**TINY, "epochs": 5, "beta": 0.3}
    recipe.write_text('name = "mine"\nversion = 3\n[settings]\n' + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    run = cli("--cache", str(cache), "--run-dir", str(tmp_path / "run"), "--config", str(recipe), "--epochs", "1",
              "--no-fame")
    assert run.returncode == 0, run.stderr
    saved = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert (saved["epochs"], saved["fame"]) == (1, False)  # given on the command line
    assert (saved["beta"], saved["crop"], saved["recipe"]) == (0.3, 24, "mine@3")  # from the recipe
    assert saved["momentum"] == 0.999  # default
    assert "settings: " in run.stderr and '"recipe": "mine@3"' in run.stderr  # printed too
    recipe.write_text('name = "bad"\n[settings]\nlearning_rate = 0.1\n')
    with pytest.raises(RecipeError, match="unknown setting"):
        load_recipe(recipe)
    with pytest.raises(RecipeError, match="no recipe 'nope'"):
        load_recipe("nope")


def test_help_has_an_example():
    from typer.testing import CliRunner

    from fame_cli.main import app

    run = CliRunner().invoke(app, ["pretrain", "--help"])
    assert run.exit_code == 0 and "Example: fame pretrain" in run.output and "--no-fame" in run.output


# --------------------------------------------------------------------------- processes


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_finishes(cache, tmp_path):
    run_dir = tmp_path / "run"
    command = ["--cache", str(cache), "--run-dir", str(run_dir), *TINY_OPTIONS, "--lr", "0.05"]
    process = subprocess.Popen([sys.executable, "-m", "fame_cli", "pretrain", *command, "--epochs", "200"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = run_dir / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 90
    while not latest.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = load_checkpoint(latest)["epoch"]
    assert 1 <= killed_at < 200
    with (run_dir / "metrics.jsonl").open("a") as log:
        log.write('{"step": 99999, "epo')  # as if the kill had torn a line
    target = killed_at + 2
    run = cli(*command, "--epochs", str(target), "--resume")
    assert run.returncode == 0, run.stderr
    assert f"resuming after epoch {killed_at}" in run.stderr
    final = load_checkpoint(latest)
    assert (final["epoch"], final["step"]) == (target, 3 * target)
    assert [line["step"] for line in read_metrics(run_dir)] == list(range(1, 3 * target + 1))  # no duplicates


@pytest.mark.slow
def test_two_process_ddp_on_cpu(cache, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "fame_cli", "pretrain", "--cache", str(cache), "--run-dir", str(run_dir), *TINY_OPTIONS,
               "--epochs", "2"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "12 videos, 3 steps per epoch, 2 process(es) on cpu" in run.stderr  # both ranks joined the group
    assert run.stderr.count("settings: ") == 1 and run.stderr.count("done: ") == 1  # only rank 0 logs
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_0002.pt", "latest.pt"]
    assert [line["step"] for line in read_metrics(run_dir)] == [1, 2, 3, 4, 5, 6]  # one writer
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert int(checkpoint["model"]["queue_ptr"]) == (6 * 2 * 4) % 64  # keys of both ranks were enqueued


def test_beta_auto_fits_each_crop_and_is_accepted_from_recipes_and_the_command_line(cache, tmp_path):
    soft = torch.zeros(2, 10, 12)
    soft[0, 2:5, 3:7] = 1  # 12 of 120 pixels stand out: keeps the lowest share, 0.1
    soft[1, :, :5] = 1  # 50 of 120: about 0.42
    _, mask, _ = fame_merge(torch.rand(2, 3, 4, 10, 12), soft, beta="auto", generator=torch.Generator().manual_seed(0))
    assert int(mask[0].sum()) == 12 and bool(mask[0, 2:5, 3:7].all())
    assert int(mask[1].sum()) == 50 and bool(mask[1, :, :5].all())
    result = run_pretrain(tiny(cache, tmp_path / "run", beta="auto"))
    assert result.steps == 3 and math.isfinite(result.last_metrics["loss"])
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["beta"] == "auto"
    recipe = tmp_path / "auto.toml"
    recipe.write_text('name = "auto"\n[settings]\nbeta = "auto"\n')
    assert load_recipe(recipe).settings["beta"] == "auto"
    with pytest.raises(SettingsError, match="beta 'half'"):
        tiny(cache, tmp_path / "x", beta="half").validate()
    run = cli("--cache", str(cache), "--run-dir", str(tmp_path / "bad"), *TINY_OPTIONS, "--beta", "1.5")
    assert run.returncode != 0 and "beta '1.5': give a share of the frame in (0, 1), or auto" in run.stderr


def test_a_queue_many_times_the_dataset_is_warned_about_with_the_recipe_that_fits(cache, tmp_path):
    paper = PretrainSettings(cache="c", run_dir="r")  # the paper's Kinetics queue, 65536
    small_data = queue_warning(paper, 144)
    assert "65536" in small_data and "144 training videos" in small_data and "synth_small" in small_data
    assert "\n" not in small_data
    assert "ucf101_r2plus1d_112" in queue_warning(paper, 5000)
    assert queue_warning(paper, 9537) is None and queue_warning(tiny(cache, tmp_path), 12) is None
    events = []
    run_pretrain(tiny(cache, tmp_path / "run", queue=4096, max_steps_per_epoch=1),
                 progress=lambda e, d: events.append((e, d)))
    warnings = [d["message"] for e, d in events if e == "warning"]
    assert len(warnings) == 1 and "--queue 4096" in warnings[0] and "12 training videos" in warnings[0]


def test_a_crop_too_small_for_batch_norm_is_one_line(cache, tmp_path):
    with pytest.raises(SettingsError, match=r"batch norm got one value per channel.*raise --crop"):
        run_pretrain(tiny(cache, tmp_path / "r", batch_size=2, crop=6))
