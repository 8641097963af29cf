"""swap-retrieval and the frozen-clip score: the metrics on hand-made rankings, and the whole
protocol on a tiny cache with encoders whose answer is known (one that sees only the
background, one that sees only the middle frame)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipelines.bg_swap import SwappedClipDataset, swap_partners
from pipelines.cache import open_cache
from pipelines.evaluate import EvaluateError, EvaluateSettings, run_evaluate
from pipelines.evaluate_job import prepare_job as _prepare
from pipelines.ground_truth import clip_ground_truth, synth_ground_truth
from pipelines.preprocess import PreprocessSettings, run_preprocess
from pipelines.swap_retrieval import (
    background_owners,
    chance_levels,
    freeze_clips,
    score_swap_retrieval,
    swap_retrieval_metrics,
)

SMALL = dict(short_side=32, window=8, stride=2, hop=4)
# every video of the tiny dataset is a query: 12 gallery items
ALL = dict(arch="small", clip_len=8, stride=2, crop=32, clips_per_video=2, test_batch_size=4, workers=0,
           device="cpu", test_split="all", protocol="swap-retrieval")


@pytest.fixture(scope="module")
def cache(synth_dataset, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("swap") / "tiny.zarr"
    run_preprocess(PreprocessSettings(source=str(synth_dataset / "UCF-101"), cache=str(path), **SMALL))
    return path


# --------------------------------------------------------------------------- the metrics


def test_background_owner_is_the_item_whose_background_the_query_lends():
    partners = swap_partners(9, seed=4)
    owner = background_owners(partners)
    assert all(partners[owner[q]] == q for q in range(9))
    assert all(owner != np.arange(9))  # never the query's own-foreground item


def test_metrics_of_rankings_whose_answer_is_known():
    partners = swap_partners(6, seed=1)
    owner = torch.as_tensor(background_owners(partners))
    queries = torch.arange(6)
    foreground_first = torch.stack([queries, owner], dim=1)  # Q, 2: own foreground, then own background
    assert swap_retrieval_metrics(foreground_first, partners) == {
        "same_foreground@1": 100.0, "same_foreground@5": 100.0, "same_background@1": 0.0}
    background_first = torch.stack([owner, queries], dim=1)
    assert swap_retrieval_metrics(background_first, partners) == {
        "same_foreground@1": 0.0, "same_foreground@5": 100.0, "same_background@1": 100.0}
    # half the queries find their foreground at rank 1, the others only at rank 6 (not in the top 5)
    others = [[j for j in range(6) if j not in (q, int(owner[q]))] for q in range(6)]
    rows = [[q, *others[q], int(owner[q])] if q % 2 else [int(owner[q]), *others[q], q] for q in range(6)]
    assert swap_retrieval_metrics(torch.tensor(rows), partners) == {
        "same_foreground@1": 50.0, "same_foreground@5": 50.0, "same_background@1": 50.0}


def test_chance_levels():
    assert chance_levels(50) == {"same_foreground@1": 2.0, "same_foreground@5": 10.0, "same_background@1": 2.0}
    assert chance_levels(4)["same_foreground@5"] == 100.0


def test_frozen_clips_repeat_the_middle_frame_and_leave_the_input_alone():
    clips = torch.randint(0, 256, (2, 3, 3, 5, 4, 4), dtype=torch.uint8)  # V, clips, C, T, H, W
    original = clips.clone()
    frozen = freeze_clips(clips)
    assert frozen.shape == clips.shape and frozen.dtype == clips.dtype and torch.equal(clips, original)
    for t in range(5):
        assert torch.equal(frozen[:, :, :, t], clips[:, :, :, 2])


# --------------------------------------------------------------------------- the gallery


def test_ground_truth_gallery_takes_the_true_foreground_and_the_partner_background(cache, synth_dataset):
    reader = open_cache(cache)
    ids = reader.split("all")
    partners = swap_partners(len(ids))
    truth_dir = synth_ground_truth(synth_dataset / "UCF-101")
    gallery = SwappedClipDataset(cache, ids, partners, clip_len=8, stride=2, crop=32, num_clips=2,
                                 ground_truth=truth_dir)
    plain = gallery.clips
    for i in (0, 5):
        masks = gallery.foreground_masks(i)  # 2, 32, 32
        info = reader.info(ids[i])
        truth = clip_ground_truth(truth_dir, info["path"], np.arange(0, 15, 2), height=info["height"],
                                  width=info["width"]).any(axis=0)
        assert 0.02 < float(masks.float().mean()) < 0.6  # the mover, not a fixed share
        assert truth.mean() > 0
        merged, own, other = gallery[i]["clips"], plain[i]["clips"], plain[int(partners[i])]["clips"]
        inside = masks[:, None, None].expand_as(own)
        assert torch.equal(merged[inside], own[inside]) and torch.equal(merged[~inside], other[~inside])


# --------------------------------------------------------------------------- encoders with known answers


class PixelEncoder(nn.Module):
    """A fixed 'encoder' whose feature is the clip's pixels, pooled 4x4, after ``view``."""

    def __init__(self, view):
        super().__init__()
        self.view = view
        self.fc = nn.Linear(3 * 8 * 8, 3)

    def forward_features(self, clips: torch.Tensor) -> torch.Tensor:  # N, 3, T, 32, 32
        return nn.functional.avg_pool2d(self.view(clips), 4).flatten(1)  # N, 3 * 8 * 8


def mean_frame(clips):
    return clips.mean(dim=2)  # N, 3, H, W: what stays put dominates


def middle_frame(clips):
    return clips[:, :, clips.shape[2] // 2]  # N, 3, H, W


def job_for(cache, **extra):
    return _prepare(EvaluateSettings(cache=str(cache), ground_truth=True, **{**ALL, **extra}), torch.device("cpu"),
                    lambda *a, **k: None, lambda line: None)


def test_an_encoder_of_the_static_picture_matches_the_background(cache):
    scores = score_swap_retrieval(job_for(cache), PixelEncoder(mean_frame))
    assert scores["metrics"]["same_background@1"] == 100.0
    assert scores["metrics"]["same_foreground@1"] == 0.0
    assert scores["chance"]["same_background@1"] == pytest.approx(100 / 12)


def test_frozen_clips_change_nothing_for_an_encoder_that_sees_one_frame(cache):
    scores = score_swap_retrieval(job_for(cache), PixelEncoder(middle_frame))
    assert scores["frozen"]["metrics"] == scores["metrics"]
    assert all(drop == 0 for drop in scores["frozen"]["drop"].values())
    torch.testing.assert_close(scores["features"]["test_frozen"], scores["features"]["test"])


# --------------------------------------------------------------------------- the command's JSON


def test_swap_retrieval_json_and_neighbours_file(cache, tmp_path):
    result = run_evaluate(EvaluateSettings(cache=str(cache), run_dir=str(tmp_path / "run"),
                                           save_features=str(tmp_path / "f.npz"), **ALL))
    written = json.loads(Path(result["settings"]["output"]).read_text())
    assert written == result
    names = ["same_foreground@1", "same_foreground@5", "same_background@1"]
    assert list(written["metrics"]) == names and list(written["chance"]) == names
    assert list(written["frozen"]) == ["metrics", "drop"] and list(written["frozen"]["metrics"]) == names
    assert written["swap"] == {"masks": "cache", "beta": 0.5, "seed": 0, "gallery": 12}
    assert written["counts"]["videos"] == 12
    lines = [json.loads(line) for line in Path(written["files"]["neighbours"]).read_text().splitlines()]
    assert len(lines) == 12
    for q, line in enumerate(lines):
        assert line["own_foreground_item"] == q and line["own_background_item"] != q
        top = line["neighbours"][0]
        assert top["same_foreground"] == (top["gallery_item"] == q)
        assert top["background"]["video_id"] != top["foreground"]["video_id"]
        assert line["counts"]["same_background@1"] == top["same_background"]
    hits = sum(line["counts"]["same_background@1"] for line in lines)
    assert written["metrics"]["same_background@1"] == pytest.approx(100 * hits / 12, abs=1e-3)
    saved = np.load(tmp_path / "f.npz")
    assert sorted(set(saved["splits"].tolist())) == ["test", "test_frozen", "test_swapgallery"]


def test_ground_truth_without_a_folder_is_one_clear_error(cache, tmp_path):
    with pytest.raises(EvaluateError, match="--ground-truth-dir"):
        run_evaluate(EvaluateSettings(cache=str(cache), run_dir=str(tmp_path / "r"), ground_truth=True,
                                      ground_truth_dir=str(tmp_path / "nowhere"), **ALL))
    with pytest.raises(EvaluateError, match="bg-swap"):
        run_evaluate(EvaluateSettings(cache=str(cache), run_dir=str(tmp_path / "r"), bg_swap=True, **ALL))


def test_bg_swap_can_use_the_true_foreground_too(cache, tmp_path):
    result = run_evaluate(EvaluateSettings(cache=str(cache), run_dir=str(tmp_path / "r"), bg_swap=True,
                                           ground_truth=True, **{**ALL, "protocol": "retrieval", "test_split": "test"}))
    assert result["settings"]["ground_truth"] is True and "recall@1" in result["bg_swap"]["metrics"]
