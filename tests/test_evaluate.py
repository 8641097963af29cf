"""``fame evaluate`` end to end on a tiny cache: every protocol, --bg-swap, the JSON schema,
linear-probe freezing, resuming, and a 2-process (gloo) run whose test pass counts every
video exactly once."""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from helpers import tiny_cache
from pipelines.data.cache import open_cache
from pipelines.data.clips import ClipDataset
from pipelines.evaluate.bg_swap import SwappedClipDataset, swap_partners
from pipelines.evaluate.classifier_training import lr_milestones
from pipelines.evaluate.run import EvaluateError, EvaluateSettings, run_evaluate
from pipelines.evaluate.settings import default_run_dir, read_config, resolve_settings
from pipelines.fame import merge_foreground_background
from pipelines.masks.clean_plates import DILATION, dilate
from pipelines.train import distributed
from pipelines.train.checkpoint_formats import read_checkpoint
from pipelines.train.checkpoints import atomic_save, latest_path, load_checkpoint, make_checkpoint
from pipelines.train.distributed import gather_in_order, shard
from pipelines.train.moco import MoCo
from pipelines.train.models import small

CLIP = dict(clip_len=8, stride=2, crop=32)
FAST = dict(clips_per_video=2, epochs=1, batch_size=4, test_batch_size=2, workers=0, device="cpu")
RECALLS = ["recall@1", "recall@5", "recall@10", "recall@20", "recall@50"]


@pytest.fixture(scope="module")
def cache(synth_dataset, tmp_path_factory) -> Path:
    """12 videos, 3 classes; fold 1: 9 train, 3 test (an odd count for 2 processes)."""
    return tiny_cache(synth_dataset, tmp_path_factory.mktemp("evaluate"), "tiny.zarr")


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory) -> Path:
    """A pretraining run directory with our checkpoint format (MoCo state, settings)."""
    run = tmp_path_factory.mktemp("pretrain")
    torch.manual_seed(1)
    moco = MoCo(small(), queue_size=16)
    atomic_save(make_checkpoint(kind="pretrain", settings={"arch": "small", **CLIP}, model=moco.state_dict(), epoch=1), latest_path(run))
    return run


def settings(cache: Path, tmp_path: Path, protocol: str, **overrides) -> EvaluateSettings:
    return EvaluateSettings(cache=str(cache), protocol=protocol, **{**FAST, "run_dir": str(tmp_path / protocol), **overrides})


def check_schema(result: dict, protocol: str, *, bg_swap: bool) -> None:
    """The documented JSON (docs/evaluation.md), as written to disk."""
    assert result["schema"] == "fame-evaluate/2" and result["protocol"] == protocol
    keys = {"schema", "protocol", "dataset", "fold", "checkpoint", "settings", "metrics", "counts", "world_size",
            "seconds", "files"}
    keys |= {"epochs_done"} if protocol in ("finetune", "linear") else set()
    assert set(result) == keys | ({"bg_swap"} if bg_swap else set())
    assert result["world_size"] == 1 and isinstance(result["seconds"], float)
    assert set(result["dataset"]) == {"layout", "cache", "source", "classes", "train_split", "test_split"}
    assert result["dataset"]["layout"] == "ucf101" and result["dataset"]["train_split"] == "train1"
    assert result["fold"] == 1
    checkpoint = result["checkpoint"]
    assert {"path", "sha256", "format", "arch", "loaded", "missing", "ignored"} <= set(checkpoint)
    assert all(isinstance(checkpoint[k], int) for k in ("loaded", "missing", "ignored"))
    assert result["settings"]["protocol"] == protocol and result["settings"]["arch"] == "small"
    expected = {
        "finetune": ["top1", "top5", "top1_clip", "top5_clip"],
        "linear": ["top1", "top5", "top1_clip", "top5_clip"],
        "retrieval": RECALLS,
        "knn": ["top1", "top5"],
    }[protocol]
    assert list(result["metrics"]) == expected
    assert all(0 <= v <= 100 for v in result["metrics"].values())
    assert result["counts"] == {"videos": 3, "clips": 3 * result["settings"]["clips_per_video"], "train_videos": 9}
    if bg_swap:
        swap = result["bg_swap"]
        assert set(swap) == {"metrics", "gap", "beta", "backgrounds", "seed"}
        assert set(expected) <= set(swap["metrics"]) and list(swap["gap"]) == expected
        for name in expected:
            assert swap["gap"][name] == pytest.approx(result["metrics"][name] - swap["metrics"][name], abs=2e-4)
    else:
        assert "bg_swap" not in result
    assert all(Path(p).is_file() for p in result["files"].values())


# --- settings ------------------------------------------------------------------------------


def test_settings_come_from_the_checkpoint_then_the_recipe(pretrain_run, tmp_path):
    weights = read_checkpoint(latest_path(pretrain_run))
    resolved = resolve_settings(EvaluateSettings(cache="c.zarr", protocol="finetune"), weights)
    assert (resolved.arch, resolved.clip_len, resolved.stride, resolved.crop) == ("small", 8, 2, 32)
    assert (resolved.epochs, resolved.lr, resolved.weight_decay, resolved.dropout) == (150, 0.025, 1e-4, 0.7)
    assert resolved.run_dir == "runs/evaluate-finetune-fold1" and resolved.output == "runs/evaluate-finetune-fold1/metrics.json"
    linear = resolve_settings(EvaluateSettings(cache="c.zarr", protocol="linear", crop=48, lr=3.0), weights)
    assert (linear.crop, linear.lr, linear.weight_decay, linear.dropout, linear.epochs) == (48, 3.0, 0.0, 0.0, 100)
    with pytest.raises(EvaluateError, match="pass --arch"):
        resolve_settings(EvaluateSettings(cache="c.zarr", protocol="knn"), None)
    assert resolve_settings(EvaluateSettings(cache="c.zarr", protocol="knn", arch="i3d"), None).crop == 224


def test_paper_lr_steps():
    assert lr_milestones(150, (0.4, 0.8)) == [60, 120]  # fine-tune: steps 60/120 of 150
    assert lr_milestones(100, (0.6, 0.8)) == [60, 80]  # linear: steps 60/80 of 100
    assert lr_milestones(1, (0.4, 0.8)) == []


def test_read_config(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[evaluate]\nprotocol = "linear"\nepochs = 3\nlr_steps = [0.5]\n')
    assert read_config(recipe) == {"protocol": "linear", "epochs": 3, "lr_steps": (0.5,)}
    recipe.write_text('[evaluate]\nepoch = 3\n')
    with pytest.raises(EvaluateError, match="unknown evaluate setting.*epoch"):
        read_config(recipe)
    recipe.write_text('[settings]\narch = "small"\n')  # a pretraining recipe only
    with pytest.raises(EvaluateError, match="has no 'evaluate' table"):
        read_config(recipe)
    with pytest.raises(EvaluateError, match="cannot read the recipe"):
        read_config(tmp_path / "absent.toml")
    with pytest.raises(EvaluateError, match="clips_per_video must be at least 1"):
        resolve_settings(EvaluateSettings(cache="c.zarr", protocol="knn", arch="small", clips_per_video=0), None)


# --- background swap -----------------------------------------------------------------------


def test_swap_partners_are_a_fixed_derangement():
    partners = swap_partners(7, seed=3)
    assert sorted(partners.tolist()) == list(range(7)) and all(partners != np.arange(7))
    assert np.array_equal(partners, swap_partners(7, seed=3))


def test_merge_binary_is_the_fame_merge():
    clips = torch.randint(0, 256, (2, 3, 4, 6, 6), dtype=torch.uint8)
    mask = torch.rand(2, 6, 6) > 0.5
    expected = merge_foreground_background(clips.float(), mask, torch.tensor([1, 0]))
    merged = merge_foreground_background(clips, mask, backgrounds=clips[[1, 0]])
    assert merged.dtype == torch.uint8
    torch.testing.assert_close(merged.float(), expected)


def test_swapped_clips_keep_the_foreground_and_take_the_partner_background(cache):
    ids = open_cache(cache).split("test", 1)
    partners = swap_partners(len(ids))
    swapped = SwappedClipDataset(cache, ids, partners, num_clips=2, beta=0.5, **CLIP)
    plain = ClipDataset(cache, ids, mode="test", num_clips=2, **CLIP)
    item = swapped[0]
    mask = swapped.foreground_masks(0)  # 2, S, S
    assert mask.shape == (2, 32, 32) and mask.float().mean().item() == pytest.approx(0.5)
    own, background = plain[0]["clips"], plain[int(partners[0])]["clips"]
    inside = mask[:, None, None].expand_as(own)
    plate = swapped.background_clips(int(partners[0]))  # the partner without its subject (cache map, top 0.5)
    assert torch.equal(item["clips"][inside], own[inside])
    assert torch.equal(item["clips"][~inside], plate[~inside])
    assert item["label"] == plain[0]["label"] and item["partner"] == int(partners[0])
    subject = swapped.subject_masks(int(partners[0]))  # 2, S, S
    assert subject.shape == (2, 32, 32) and subject.float().mean().item() == pytest.approx(0.5)
    kept = ~dilate(subject, DILATION)[:, None, None].expand_as(background)
    assert torch.equal(plate[kept], background[kept]) and not torch.equal(plate, background)
    raw = SwappedClipDataset(cache, ids, partners, num_clips=2, beta=0.5, backgrounds="raw", **CLIP)[0]["clips"]
    assert torch.equal(raw[~inside], background[~inside]) and torch.equal(raw[inside], own[inside])


# --- the protocols -------------------------------------------------------------------------


def test_finetune_end_to_end_with_bg_swap_and_resume(cache, pretrain_run, tmp_path):
    features = tmp_path / "features.npz"
    asked = settings(cache, tmp_path, "finetune", checkpoint=str(pretrain_run), bg_swap=True, save_features=str(features))
    result = run_evaluate(asked)
    written = json.loads(Path(result["settings"]["output"]).read_text())
    assert written == json.loads(json.dumps(result))
    check_schema(written, "finetune", bg_swap=True)
    assert written["checkpoint"]["format"] == "fame-pretrain" and written["checkpoint"]["missing"] == 0
    assert written["checkpoint"]["sha256"] == read_checkpoint(latest_path(pretrain_run)).sha256
    assert "partner_top1" in written["bg_swap"]["metrics"]

    rows = Path(written["files"]["confusion"]).read_text().splitlines()
    assert len(rows) == 4 and rows[0].split(",")[1:] == open_cache(cache).classes
    assert sum(int(x) for row in rows[1:] for x in row.split(",")[1:]) == 3
    assert Path(written["files"]["per_class"]).read_text().startswith("class,videos,top1")

    saved = np.load(features)
    assert saved["features"].shape == (9 + 3 + 3, 128) and saved["features"].dtype == np.float32
    assert saved["splits"].tolist() == ["train"] * 9 + ["test"] * 3 + ["test_bgswap"] * 3
    assert saved["video_ids"][9:12].tolist() == saved["video_ids"][12:].tolist()
    assert saved["labels"].tolist() == open_cache(cache).labels(saved["video_ids"].tolist()).tolist()

    checkpoint = load_checkpoint(latest_path(tmp_path / "finetune"), kind="evaluate")
    assert checkpoint["epoch"] == 1 and checkpoint["settings"]["protocol"] == "finetune"

    with pytest.raises(EvaluateError, match="--resume"):
        run_evaluate(asked)
    with pytest.raises(EvaluateError, match="other settings.*lr"):
        run_evaluate(replace(asked, resume=True, lr=0.5))
    resumed = run_evaluate(replace(asked, resume=True, bg_swap=False, save_features=None))  # nothing left to train
    assert resumed["metrics"] == written["metrics"]

    tested = run_evaluate(  # a saved classifier, tested as it is
        settings(cache, tmp_path, "finetune", checkpoint=str(tmp_path / "finetune"), epochs=0, run_dir=str(tmp_path / "test-only"))
    )
    assert tested["checkpoint"]["format"] == "fame-evaluate" and tested["checkpoint"]["head_loaded"]
    assert tested["metrics"] == written["metrics"]


def test_linear_probe_changes_only_the_classifier(cache, pretrain_run, tmp_path):
    result = run_evaluate(settings(cache, tmp_path, "linear", checkpoint=str(pretrain_run), epochs=2, lr=30.0))
    check_schema(json.loads(Path(result["settings"]["output"]).read_text()), "linear", bg_swap=False)
    pretrained = read_checkpoint(latest_path(pretrain_run)).backbone
    trained = load_checkpoint(latest_path(tmp_path / "linear"), kind="evaluate")["model"]
    assert set(trained) == set(pretrained) | {"fc.weight", "fc.bias"}
    for key, value in pretrained.items():  # weights, BN affine AND running statistics
        assert torch.equal(trained[key], value), key
    assert any("running_mean" in key for key in pretrained)
    torch.manual_seed(0)
    fresh = small(num_classes=3)
    assert not torch.equal(trained["fc.weight"], fresh.fc.weight)  # the head did train


def test_retrieval_and_knn_with_bg_swap(cache, pretrain_run, tmp_path):
    retrieval = run_evaluate(settings(cache, tmp_path, "retrieval", checkpoint=str(pretrain_run), bg_swap=True))
    written = json.loads(Path(retrieval["settings"]["output"]).read_text())
    check_schema(written, "retrieval", bg_swap=True)
    lines = [json.loads(line) for line in Path(written["files"]["neighbours"]).read_text().splitlines()]
    test_ids = open_cache(cache).split("test", 1)
    assert [line["query"]["video_id"] for line in lines] == test_ids
    assert all(len(line["neighbours"]) == 9 for line in lines)  # top 50, clipped to the 9 gallery videos
    assert {"video_id", "path", "class", "similarity"} <= set(lines[0]["neighbours"][0])
    assert written["metrics"]["recall@50"] == 100.0  # the whole gallery holds every class

    knn = run_evaluate(settings(cache, tmp_path, "knn", checkpoint=str(pretrain_run), bg_swap=True, knn_k=5))
    check_schema(json.loads(Path(knn["settings"]["output"]).read_text()), "knn", bg_swap=True)
    assert knn["checkpoint"]["path"] == str(latest_path(pretrain_run))  # the run directory's latest


def test_refuses_a_checkpoint_of_another_backbone(cache, pretrain_run, tmp_path):
    from pipelines.train.checkpoint_formats import CheckpointFormatError

    with pytest.raises(CheckpointFormatError, match="nothing of the r3d_18 backbone matched"):
        run_evaluate(settings(cache, tmp_path, "knn", checkpoint=str(pretrain_run), arch="r3d_18"))


def test_cli_knn_prints_a_table(cache, pretrain_run, tmp_path):
    from typer.testing import CliRunner

    from fame_cli.main import app

    args = ["evaluate", "--cache", str(cache), "--checkpoint", str(pretrain_run), "--protocol", "knn", "--bg-swap",
            "--clips-per-video", "1", "--workers", "0", "--device", "cpu", "--run-dir", str(tmp_path / "cli")]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    assert "top1" in outcome.output and "bg swap" in outcome.output and "gap" in outcome.output
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["protocol"] == "knn"
    failed = CliRunner().invoke(app, args + ["--arch", "r3d_18"])
    assert failed.exit_code == 2 and "nothing of the r3d_18 backbone matched" in failed.output


def test_without_run_dir_results_go_beside_the_checkpoint(cache, pretrain_run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fame_cli.main import app

    assert default_run_dir("runs/fame/checkpoints/latest.pt", "knn", 1) == Path("runs/fame/evaluate-knn-fold1")
    assert default_run_dir("runs/fame/checkpoints/epoch_0010.pt", "linear", 2) == Path(
        "runs/fame/evaluate-linear-fold2-epoch_0010")
    assert default_run_dir("models/fame_ucf.pth", "finetune", 1) == Path("models/evaluate-finetune-fold1-fame_ucf")
    assert default_run_dir(None, "knn", 1) == Path("runs/evaluate-knn-fold1")

    run = tmp_path / "fame"
    shutil.copytree(pretrain_run, run)
    elsewhere = tmp_path / "checkout"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = ["evaluate", "--cache", str(cache), "--checkpoint", str(run), "--protocol", "knn",
            "--clips-per-video", "1", "--workers", "0", "--device", "cpu"]
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    assert json.loads((run / "evaluate-knn-fold1" / "metrics.json").read_text())["protocol"] == "knn"
    assert f"results go to {run / 'evaluate-knn-fold1' / 'metrics.json'}" in outcome.output
    assert list(elsewhere.iterdir()) == []  # no runs/ tree in the current directory


# --- two processes -------------------------------------------------------------------------

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_process_worker(rank: int, port: int, cache: str, pretrain: str, out: str) -> None:
    """One torchrun process: fine-tune with DDP, then test the result as a saved classifier."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert distributed.init_process_group_from_env(torch.device("cpu"))  # run_evaluate joins it as it is
    try:
        assert shard(3) == ([0, 2] if rank == 0 else [1])  # no padding: 3 videos, 2 processes
        rows = torch.tensor([[10.0 * i] for i in shard(3)])
        assert gather_in_order(rows, torch.tensor(shard(3)), 3).flatten().tolist() == [0.0, 10.0, 20.0]
        out = Path(out)
        trained = run_evaluate(settings(Path(cache), out, "finetune", checkpoint=pretrain, save_features=str(out / "ddp.npz")))
        tested = run_evaluate(
            settings(Path(cache), out, "finetune", checkpoint=str(out / "finetune"), epochs=0, run_dir=str(out / "tested"))
        )
        (out / f"rank{rank}.json").write_text(json.dumps({"trained": trained, "tested": tested}))
    finally:
        distributed.cleanup()


@pytest.mark.slow
def test_two_processes_count_every_test_video_once(cache, pretrain_run, tmp_path):
    mp.spawn(two_process_worker, args=(free_port(), str(cache), str(pretrain_run), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0]["tested"]["metrics"] == ranks[1]["tested"]["metrics"]
    for run in ("trained", "tested"):
        assert ranks[0][run]["world_size"] == WORLD and ranks[0][run]["counts"]["videos"] == 3
    saved = np.load(tmp_path / "ddp.npz")
    test_ids = open_cache(cache).split("test", 1)
    assert saved["video_ids"][saved["splits"] == "test"].tolist() == test_ids  # each once, in order

    # the same classifier tested by one process gives the same predictions and features
    single = run_evaluate(settings(cache, tmp_path, "finetune", checkpoint=str(tmp_path / "finetune"), epochs=0,
                                   run_dir=str(tmp_path / "single"), save_features=str(tmp_path / "single.npz")))
    assert single["metrics"] == ranks[0]["tested"]["metrics"]
    one = np.load(tmp_path / "single.npz")
    np.testing.assert_allclose(one["features"][one["splits"] == "test"], saved["features"][saved["splits"] == "test"], atol=1e-5)
