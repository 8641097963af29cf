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

from helpers import SMALL_CACHE, tiny_cache
from pipelines.data.cache import open_cache
from pipelines.evaluate.bg_swap import SwappedClipDataset, swap_partners
from pipelines.evaluate.job import prepare_job as _prepare
from pipelines.evaluate.run import EvaluateError, EvaluateSettings, run_evaluate
from pipelines.masks.clean_plates import DILATION, dilate, plate_hole
from pipelines.masks.ground_truth import clip_ground_truth, synth_ground_truth
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess
from pipelines.evaluate.swap_retrieval import (
    background_owners,
    FrozenClipDataset,
    chance_levels,
    freeze_clips,
    score_swap_retrieval,
    swap_retrieval_metrics,
    swap_scores,
)

# every video of the tiny dataset is a query: 12 gallery items
ALL = dict(arch="small", clip_len=8, stride=2, crop=32, clips_per_video=2, test_batch_size=4, workers=0,
           device="cpu", test_split="all", protocol="swap-retrieval")


@pytest.fixture(scope="module")
def cache(synth_dataset, tmp_path_factory) -> Path:
    return tiny_cache(synth_dataset, tmp_path_factory.mktemp("swap"), "tiny.zarr")


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
        merged, own = gallery[i]["clips"], plain[i]["clips"]
        plate = gallery.background_clips(int(partners[i]))  # the partner without its own subject
        inside = masks[:, None, None].expand_as(own)
        assert torch.equal(merged[inside], own[inside]) and torch.equal(merged[~inside], plate[~inside])
        # the plate is the partner's clip wherever its subject (dilated) never was
        other = plain[int(partners[i])]["clips"]
        kept = ~dilate(gallery.subject_masks(int(partners[i])).any(dim=1), DILATION)[:, None, None].expand_as(other)
        assert torch.equal(plate[kept], other[kept]) and not torch.equal(plate, other)
    raw = SwappedClipDataset(cache, ids, partners, clip_len=8, stride=2, crop=32, num_clips=2,
                             ground_truth=truth_dir, backgrounds="raw")
    masks = raw.foreground_masks(0)[:, None, None].expand_as(plain[0]["clips"])
    assert torch.equal(raw[0]["clips"][~masks], plain[int(partners[0])]["clips"][~masks])  # the old sets


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


# --------------------------------------------------------------------------- encoders that see through the true masks


def masked_encoder(gallery: SwappedClipDataset, view):
    """``features(dataset, stage)`` for ``swap_scores``: an encoder that sees each video's
    clips only through ``view(clips, kind, index) -> (values, seen)`` (float num_clips, 3, T,
    S, S and bool num_clips, T, S, S). Its feature is the mean of the seen values in each 4x4
    cell over the clip's frames; a cell with nothing seen takes the mean of all that is seen,
    so what is hidden leaves no pattern of its own."""

    def features(dataset, stage):
        kind = "gallery" if isinstance(dataset, SwappedClipDataset) else "query"
        clips_of = (lambda i: freeze_clips(dataset.clips[i]["clips"])) if isinstance(dataset, FrozenClipDataset) \
            else (lambda i: dataset[i]["clips"])
        rows = []
        for i in range(len(dataset)):
            values, seen = view(clips_of(i).float(), kind, i)
            weight = seen[:, None].float()  # num_clips, 1, T, S, S
            total = nn.functional.avg_pool3d(values * weight, (values.shape[2], 4, 4))  # num_clips, 3, 1, S/4, S/4
            count = nn.functional.avg_pool3d(weight, (values.shape[2], 4, 4))
            overall = (values * weight).sum(dim=(2, 3, 4), keepdim=True) / weight.sum(dim=(2, 3, 4), keepdim=True).clamp_min(1)
            rows.append(torch.where(count > 0, total / count.clamp_min(1e-9), overall.expand_as(total)).flatten())
        return torch.stack(rows)

    return features


def pasted(gallery, index, clips):
    """The true foreground of video ``index``'s clips (the union over each clip's frames, what
    the gallery pastes), as bool num_clips, T, S, S."""
    return gallery.foreground_masks(index)[:, None].expand(-1, clips.shape[2], -1, -1)  # num_clips, T, S, S


def ring_contrast(clips, region):
    """Each frame's pixels inside ``region`` minus the mean of a 3-pixel ring around it, seen
    there only (elsewhere the contrast is 0): what a fill that left its outline or its colour
    would show."""
    ring = dilate(region, 3) & ~region  # num_clips, T, S, S
    weights = ring[:, None].float()
    ring_mean = (clips * weights).sum(dim=(-2, -1), keepdim=True) / weights.sum(dim=(-2, -1), keepdim=True).clamp_min(1)
    return (clips - ring_mean) * region[:, None], torch.ones_like(region)


def plate_holes(gallery, index):
    """The holes ``clean_plate`` fills in video ``index``'s clips: bool num_clips, T, S, S."""
    clips = gallery.clips[index]["clips"]
    return torch.stack([plate_hole(c, s)[0] for c, s in zip(clips, gallery.subject_masks(index))])


def encoder_scores(cache, truth_dir, view, backgrounds="clean"):
    reader = open_cache(cache)
    ids = reader.split("all")
    partners = swap_partners(len(ids))
    gallery = SwappedClipDataset(cache, ids, partners, clip_len=8, stride=2, crop=32, num_clips=2,
                                 ground_truth=truth_dir, backgrounds=backgrounds)
    queries = gallery.clips
    return swap_scores(queries, gallery, partners, masked_encoder(gallery, lambda c, k, i: view(gallery, c, k, i)))


def test_an_encoder_of_the_true_foreground_alone_finds_the_foreground(cache, synth_dataset):
    def foreground_only(gallery, clips, kind, i):
        return clips, pasted(gallery, i, clips)  # a query's pixels there are what its gallery item got

    scores = encoder_scores(cache, synth_ground_truth(synth_dataset / "UCF-101"), foreground_only)
    assert scores["metrics"]["same_foreground@1"] == 100.0 and scores["metrics"]["same_background@1"] == 0.0


def test_an_encoder_of_everything_but_the_foreground_finds_the_background(cache, synth_dataset):
    def background_only(gallery, clips, kind, i):
        return clips, ~pasted(gallery, i, clips)

    scores = encoder_scores(cache, synth_ground_truth(synth_dataset / "UCF-101"), background_only)
    assert scores["metrics"]["same_background@1"] == 100.0 and scores["metrics"]["same_foreground@1"] == 0.0


@pytest.mark.parametrize("backgrounds", ["clean", "raw"])
def test_an_encoder_of_the_filled_hole_alone_finds_nothing_on_clean_plates(cache, synth_dataset, backgrounds):
    """It sees a gallery item only where its background's subject was removed (outline and
    colour against the surroundings) and a query only where its own subject is: on clean
    plates near chance; on raw backgrounds, where the subject is still there, it finds it."""
    def hole_only(gallery, clips, kind, i):
        if kind == "query":
            return ring_contrast(clips, plate_holes(gallery, i))
        partner = gallery.partners[i]
        return ring_contrast(clips, plate_holes(gallery, partner) & ~pasted(gallery, i, clips))

    scores = encoder_scores(cache, synth_ground_truth(synth_dataset / "UCF-101"), hole_only, backgrounds)
    chance = scores["chance"]["same_background@1"]  # 1 of 12
    if backgrounds == "raw":
        assert scores["metrics"]["same_background@1"] >= 75.0
    else:
        assert scores["metrics"]["same_background@1"] <= 2 * chance + 1e-6


# --------------------------------------------------------------------------- the command's JSON


def test_swap_retrieval_json_and_neighbours_file(cache, tmp_path):
    result = run_evaluate(EvaluateSettings(cache=str(cache), run_dir=str(tmp_path / "run"),
                                           save_features=str(tmp_path / "f.npz"), **ALL))
    written = json.loads(Path(result["settings"]["output"]).read_text())
    assert written == result
    names = ["same_foreground@1", "same_foreground@5", "same_background@1"]
    assert list(written["metrics"]) == names and list(written["chance"]) == names
    assert list(written["frozen"]) == ["metrics", "drop"] and list(written["frozen"]["metrics"]) == names
    assert written["swap"] == {"masks": "cache", "beta": 0.5, "backgrounds": "clean", "seed": 0, "gallery": 12}
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


def test_a_cache_without_splits_queries_every_video(synth_dataset, tmp_path):
    """A folder of videos has no split files: swap-retrieval, which trains nothing, then
    queries all of them without being told."""
    cache = tmp_path / "folder.zarr"
    run_preprocess(PreprocessSettings(source=str(synth_dataset / "UCF-101"), cache=str(cache), layout="folder", **SMALL_CACHE))
    assert not open_cache(cache).splits
    options = {k: v for k, v in ALL.items() if k != "test_split"}
    result = run_evaluate(EvaluateSettings(cache=str(cache), run_dir=str(tmp_path / "run"), ground_truth=True, **options))
    assert result["counts"]["videos"] == 12 and result["dataset"]["test_split"] == "all"
    assert result["swap"]["backgrounds"] == "clean" and result["schema"] == "fame-evaluate/2"
