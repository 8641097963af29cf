"""``fame visualize-masks``: picture writers, the HTML index, the mask-quality metrics, whole runs."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import av
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fame_cli.main import app
from pipelines.data.cache import open_cache
from pipelines.masks.ground_truth import GroundTruthError, clip_ground_truth, resize_nearest
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess
from pipelines.visualize import contact_sheet as pictures
from pipelines.visualize.animation import write_gif, write_mp4
from pipelines.visualize.html_index import write_index
from pipelines.visualize.run import (
    VisualizeSettings,
    activation_maps,
    clip_indices,
    clip_mask_quality,
    mask_statistics,
    merge_with_backgrounds,
    render_animation_frames,
    run_visualize,
    summarise_quality,
)

SMALL = dict(short_side=32, window=8, stride=2, hop=4)


def random_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


class Links(HTMLParser):
    """Every src/href of a page."""

    def __init__(self):
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.targets += [value for name, value in attrs if name in ("src", "href") and value]


def assert_links_exist(out: Path) -> list[str]:
    parser = Links()
    parser.feed((out / "index.html").read_text(encoding="utf-8"))
    files = [t for t in parser.targets if not t.startswith("#")]
    for target in files:
        assert "://" not in target and not target.startswith("/"), target  # relative, nothing external
        assert (out / unquote(target)).is_file(), target
    return files


@pytest.fixture(scope="module")
def caches(synth_dataset, tmp_path_factory) -> dict[str, Path]:
    """The synthetic dataset cached twice: with lossless frames and --no-frames, both decoded by decord,
    the decoder that reads a --no-frames cache's clips back, so both caches hold the same pictures."""
    folder = tmp_path_factory.mktemp("vis")
    paths = {"frames": folder / "frames.zarr", "no_frames": folder / "no_frames.zarr"}
    for name, path in paths.items():
        run_preprocess(PreprocessSettings(source=str(synth_dataset / "UCF-101"), cache=str(path),
                                          frames=name == "frames", frame_codec="zstd", decoder="decord", **SMALL))
    return paths


# --------------------------------------------------------------------------- pictures


def test_heat_colours_brighten_with_the_value():
    colours = pictures.heat_colours(np.linspace(0, 1, 11)).astype(int)  # 11, 3
    assert colours.shape == (11, 3)
    assert np.all(np.diff(colours.sum(axis=1)) > 0)


def test_outline_is_the_mask_border_with_a_halo_outside():
    mask = np.zeros((7, 7), bool)
    mask[2:5, 2:5] = True
    edge = pictures.boundary(mask)
    assert edge.sum() == 8 and not edge[3, 3]
    out = pictures.draw_outline(np.full((7, 7, 3), 128, np.uint8), mask, (0, 255, 0))
    assert (out[edge] == (0, 255, 0)).all() and (out[3, 3] == 128).all()
    assert (out[1, 3] == 0).all() and (out[0, 0] == 128).all()  # halo just outside, nothing farther
    square = np.zeros((9, 9), bool)
    square[2:7, 2:7] = True
    assert pictures.boundary(square, 2).sum() == 25 - 1  # a 5x5 square less its centre


@pytest.mark.parametrize("height, width, columns", [(48, 64, 6), (128, 171, 3)])
def test_contact_sheet_size_and_tile_placement(height, width, columns):
    tiles = [np.full((height, width, 3), 10 * (c + 1), np.uint8) for c in range(columns)]
    rows = [("frames", tiles), ("soft map", tiles), ("mask", tiles), ("merged", tiles)]
    sheet = pictures.contact_sheet(rows, title=["a video", "stats"], column_labels=[f"t{c}" for c in range(columns)])
    factor = pictures.upscale_factor(height, width)
    assert min(height, width) * factor >= pictures.MIN_TILE_SIDE
    tile_h, tile_w, pad = height * factor, width * factor, pictures.PAD
    top = pad + 2 * pictures.LINE_HEIGHT + pictures.LINE_HEIGHT + pad
    assert sheet.size == (pictures.LABEL_WIDTH + columns * (tile_w + pad) + pad, top + 4 * (tile_h + pad))
    pixels = np.asarray(sheet)
    x_last = pictures.LABEL_WIDTH + (columns - 1) * (tile_w + pad)
    assert (pixels[top + 3 * (tile_h + pad) + tile_h // 2, x_last + tile_w // 2] == 10 * columns).all()


def test_contact_sheet_refuses_tiles_of_different_sizes():
    with pytest.raises(ValueError, match="tiles must all be"):
        pictures.contact_sheet([("a", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)])])


def test_gif_has_one_frame_per_input_and_the_size(tmp_path):
    frames = random_frames(7, 30, 41)
    path = write_gif(frames, tmp_path / "a.gif", fps=12.5)
    with Image.open(path) as gif:
        assert gif.n_frames == 7 and gif.size == (41, 30) and gif.info["duration"] == 80 and gif.info["loop"] == 0
    assert not (tmp_path / "a.gif.partial").exists()


def test_animation_frames_of_a_still_clip_stay_distinct_in_the_gif(tmp_path):
    clip = np.repeat(random_frames(1, 24, 32), 5, axis=0)  # five identical frames
    soft = np.zeros((24, 32), np.float32)
    soft[8:16, 8:16] = 1
    item = {"video_id": "v", "frames": list(range(0, 10, 2)), "clip": clip, "soft": soft, "mask": soft > 0.5,
            "merged": clip}
    frames = render_animation_frames(item)
    assert len(frames) == 5 and all(f.shape[0] % 2 == 0 and f.shape[1] % 2 == 0 for f in frames)
    with Image.open(write_gif(frames, tmp_path / "still.gif", fps=10)) as gif:
        assert gif.n_frames == 5  # the frame number printed on each keeps Pillow from merging them


def test_mp4_decodes_with_the_expected_frames(tmp_path):
    frames = random_frames(9, 31, 45)  # odd sides: cut to even for yuv420p
    path = write_mp4(frames, tmp_path / "a.mp4", fps=12.5)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == 12.5
    assert len(decoded) == 9 and decoded[0].shape == (30, 44, 3)
    decord = pytest.importorskip("decord")
    assert len(decord.VideoReader(str(path))) == 9


# --------------------------------------------------------------------------- metrics


def test_mask_quality_against_a_hand_computed_case():
    soft = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.3]])
    truth = np.zeros((2, 2, 3), bool)
    truth[0, 0, 0] = True  # frame 0: the actor at (0, 0)
    truth[1, 1, 0] = True  # frame 1: at (1, 0); union = {0.9, 0.7}
    # pairs (foreground, background) ranked right: 0.9 beats all four, 0.7 beats 0.1, 0.2, 0.3 -> 7/8
    quality = clip_mask_quality(soft, truth, beta=0.5)  # top 3 = {0.9, 0.8, 0.7}: both kept
    assert quality == {"roc_auc": 0.875, "foreground_kept": 1.0, "truth_share": pytest.approx(2 / 6),
                       "iou": pytest.approx(2 / 3), "beta": 0.5}  # mask {0.9, 0.8, 0.7} vs union {0.9, 0.7}
    assert clip_mask_quality(soft, truth, beta=1 / 3)["foreground_kept"] == 0.5  # top 2 = {0.9, 0.8}
    summary = summarise_quality({"a": quality, "b": {"roc_auc": 0.5, "foreground_kept": math.nan, "truth_share": 0.1},
                                 "c": {"error": "no ground truth"}})
    assert summary["videos"] == 2
    assert summary["mean"]["roc_auc"] == pytest.approx(0.6875) and summary["mean"]["foreground_kept"] == 1.0


def test_mask_statistics_hand_computed():
    clip = np.zeros((3, 2, 2, 3), np.uint8)
    clip[1, 0, 0, 0] = 255  # pixel (0, 0) flashes red: |diff| summed over RGB is 1 at both steps
    clip[:, 1, 1] = 200  # static
    mask = np.array([[True, False], [False, False]])
    stats = mask_statistics(clip, mask)
    assert stats["foreground_share"] == 0.25 and stats["motion_inside"] == 1.0 and stats["motion_outside"] == 0.0
    assert math.isnan(stats["motion_ratio"])
    clip[:, 0, 1] = [[0, 0, 0], [51, 0, 0], [0, 0, 0]]  # motion 0.2 at (0, 1), outside the mask
    assert mask_statistics(clip, mask)["motion_ratio"] == pytest.approx(1.0 / (0.2 / 3))


def test_merge_keeps_the_foreground_and_takes_another_videos_background():
    items = []
    for value in range(3):
        mask = np.zeros((4, 6), bool)
        mask[:, value] = True
        items.append({"video_id": f"v{value}", "clip": np.full((2, 4, 6, 3), 50 * (value + 1), np.uint8), "mask": mask})
    items.append({"video_id": "big", "clip": np.full((2, 8, 12, 3), 250, np.uint8), "mask": np.ones((8, 12), bool)})
    items = merge_with_backgrounds(items, seed=0)
    ids = [item["video_id"] for item in items]
    assert sorted(item["background_from"] for item in items) == sorted(ids)
    for item in items:
        assert item["background_from"] != item["video_id"]  # a derangement
        other = items[ids.index(item["background_from"])]
        merged, clip, mask = item["merged"], item["clip"], item["mask"]
        assert merged.shape == clip.shape
        assert (merged[:, mask] == clip[:, mask]).all()
        assert (merged[:, ~mask] == other["clip"][0, 0, 0]).all()  # resized when the sizes differ


def test_clip_indices_default_to_the_stored_window_nearest_the_middle():
    info = {"num_frames": 40, "mask_window": {"window": 8, "stride": 2, "hop": 4},
            "window_starts": [0, 4, 8, 12, 16, 20, 24, 25]}
    assert clip_indices(info).tolist() == list(range(12, 28, 2))
    assert clip_indices(info, 4, 3).tolist() == [15, 18, 21, 24]  # centred
    # longer than the video: from the first frame, the last one repeated (as training's clips)
    assert clip_indices(info, 16, 3).tolist() == [*range(0, 40, 3), 39, 39]


def test_ground_truth_formats_agree(tmp_path):
    masks = np.zeros((5, 6, 8), bool)
    masks[:, 1:3, 2:6] = True
    masks[3] = False
    (tmp_path / "packed/A").mkdir(parents=True)
    np.savez_compressed(tmp_path / "packed/A/v.npz", mask=np.packbits(masks), shape=np.array(masks.shape))
    (tmp_path / "plain/A").mkdir(parents=True)
    np.savez_compressed(tmp_path / "plain/A/v.npz", mask=masks.astype(np.uint8))
    (tmp_path / "png/A/v").mkdir(parents=True)
    for t, frame in enumerate(masks):
        Image.fromarray(frame.astype(np.uint8) * 255).save(tmp_path / f"png/A/v/{t:05d}.png")
    for folder in ("packed", "plain", "png"):
        got = clip_ground_truth(tmp_path / folder, "A/v.avi", [1, 3], height=12, width=16)
        assert got.shape == (2, 12, 16)
        assert (got == resize_nearest(masks[[1, 3]], 12, 16)).all() and got[0, 2:6, 4:12].all() and not got[1].any()
    with pytest.raises(GroundTruthError, match="no ground truth"):
        clip_ground_truth(tmp_path / "png", "A/w.avi", [0], height=6, width=8)
    with pytest.raises(GroundTruthError, match="no PNG for frame"):
        clip_ground_truth(tmp_path / "png", "A/v.avi", [7], height=6, width=8)
    with pytest.raises(GroundTruthError, match="has 5 frames"):
        clip_ground_truth(tmp_path / "plain", "A/v.avi", [5], height=6, width=8)


def test_activation_maps_cover_the_clip_in_unit_range():
    from pipelines.train.models import build_backbone

    maps = activation_maps(build_backbone("small").eval(), random_frames(8, 32, 40))
    assert maps.shape == (8, 32, 40) and maps.min() == 0.0 and maps.max() == pytest.approx(1.0)


# --------------------------------------------------------------------------- the index


def test_index_links_only_existing_files(tmp_path):
    (tmp_path / "videos").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "videos/000_a%b c.png")
    (tmp_path / "report.json").write_text("{}")
    video = {"video_id": "K/a%b c.avi", "slug": "000_a%b c", "path": "K/a%b c.avi", "class_name": "K<&>",
             "frames": [0, 2, 4], "background_from": "other", "statistics": {"foreground_share": 0.5},
             "quality": {"error": "no ground truth for it"},
             "files": {"sheet": "videos/000_a%b c.png", "animation": "videos/000_a%b c.gif"}}  # no GIF written
    report = {"settings": {"beta": 0.5, "seed": 0}, "cache": "c.zarr", "videos": [video], "skipped": [],
              "mask_quality": None, "checkpoint": None}
    page = write_index(tmp_path, report).read_text(encoding="utf-8")
    assert assert_links_exist(tmp_path) == ["report.json", "videos/000_a%25b%20c.png", "videos/000_a%25b%20c.png"]
    assert "K/a%b c.avi" in page and "K&lt;&amp;&gt;" in page and ".gif" not in page


# --------------------------------------------------------------------------- whole runs


def test_end_to_end_on_synthetic_data_with_ground_truth_found(caches, tmp_path):
    out = tmp_path / "out"
    report = run_visualize(VisualizeSettings(cache=str(caches["frames"]), output=str(out), sample=4, columns=3))
    cache = open_cache(caches["frames"])
    ids = [v["video_id"] for v in report["videos"]]
    assert len(ids) == 4 and len({cache.info(v)["class_name"] for v in ids}) == 3  # spread over the classes
    page = (out / "index.html").read_text(encoding="utf-8")
    assert all(v in page for v in ids)
    linked = assert_links_exist(out)
    assert sum(t.endswith(".png") for t in linked) == 8 and sum(t.endswith(".gif") for t in linked) == 4
    with Image.open(out / report["videos"][0]["files"]["animation"]) as gif:
        assert gif.n_frames == 8  # the cache's mask window: 8 frames
    quality = json.loads((out / "mask_quality.json").read_text())
    assert set(quality["per_video"]) == set(ids) and quality["videos"] == 4
    assert quality["mean"]["roc_auc"] > 0.7  # the soft map ranks the moving shape first
    for video in report["videos"]:
        assert video["statistics"]["foreground_share"] == pytest.approx(0.5, abs=0.01)
        assert video["statistics"]["motion_inside"] > video["statistics"]["motion_outside"]
    assert json.loads((out / "report.json").read_text())["settings"]["sample"] == 4


def test_no_frames_cache_gives_the_same_pictures(caches, tmp_path):
    chosen = ("Circle/v_Circle_g01_c01.avi", "Horizontal__v_Horizontal_g02_c01.avi")  # a path and an id
    reports = [run_visualize(VisualizeSettings(cache=str(caches[name]), output=str(tmp_path / name), videos=chosen,
                                               format="png")) for name in ("frames", "no_frames")]
    for with_frames, without in zip(reports[0]["videos"], reports[1]["videos"]):
        assert with_frames["statistics"] == pytest.approx(without["statistics"])
        assert with_frames["quality"] == pytest.approx(without["quality"])
        sheets = [np.asarray(Image.open(tmp_path / name / with_frames["files"]["sheet"]))
                  for name in ("frames", "no_frames")]
        assert (sheets[0] == sheets[1]).all()
    assert assert_links_exist(tmp_path / "no_frames")


def test_cli_mp4_with_ground_truth_and_checkpoint(caches, synth_dataset, tmp_path):
    pytest.importorskip("pipelines.train.checkpoint_formats")
    from pipelines.train.models import build_backbone

    checkpoint = tmp_path / "pretrain.pt"
    state = {f"encoder_q.{k}": v for k, v in build_backbone("small").state_dict().items()}
    torch.save({"format": "fame-checkpoint", "version": 1, "kind": "pretrain", "settings": {"arch": "small"},
                "model": state}, checkpoint)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "visualize-masks", "--cache", str(caches["frames"]), "--output", str(out), "--format", "mp4",
        "--videos", "Circle/v_Circle_g01_c01.avi,Vertical/v_Vertical_g03_c01.avi", "--columns", "2",
        "--ground-truth", str(synth_dataset / "ground_truth"), "--checkpoint", str(checkpoint), "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["checkpoint"]["arch"] == "small" and len(report["videos"]) == 2
    assert sum(t.endswith(".mp4") for t in assert_links_exist(out)) == 2
    with_activations = Image.open(out / report["videos"][0]["files"]["sheet"]).size
    plain = run_visualize(VisualizeSettings(cache=str(caches["frames"]), output=str(tmp_path / "plain"),
                                            videos=("Circle/v_Circle_g01_c01.avi",), format="png", columns=2))
    assert with_activations[1] > Image.open(tmp_path / "plain" / plain["videos"][0]["files"]["sheet"]).size[1]


def test_cli_refuses_an_unknown_video_in_one_line(caches, tmp_path):
    result = CliRunner().invoke(app, ["visualize-masks", "--cache", str(caches["frames"]), "--output",
                                      str(tmp_path / "o"), "--videos", "Nope/v_nope.avi"])
    assert result.exit_code == 2 and "is not a finished video" in result.output and "Traceback" not in result.output


def test_methods_compared_side_by_side_with_auto_beta(caches, tmp_path):
    """--compare computes other methods' maps from the cached frames of the same clips and scores
    them beside the cache's own; --beta auto fits each clip's share."""
    cache = caches["frames"]
    report = run_visualize(VisualizeSettings(cache=str(cache), output=str(tmp_path / "out"), sample=3, format="png",
                                             beta="auto", compare=("paper", "centre", "paper")))
    quality = report["mask_quality"]
    own = open_cache(cache).mask_method[0]
    assert own == "adaptive" and list(quality["methods"]) == ["adaptive", "paper", "centre"]
    for measured in quality["methods"].values():
        assert measured["videos"] == 3 and 0 <= measured["mean"]["roc_auc"] <= 1
        assert 0.1 <= measured["mean"]["beta"] <= 0.5 and 0 <= measured["mean"]["iou"] <= 1
    video = report["videos"][0]
    assert set(video["compared_quality"]) == set(quality["methods"]) - {own}
    assert 0.1 <= video["beta"] <= 0.5
    with pytest.raises(ValueError, match="--masks 'flow'"):
        run_visualize(VisualizeSettings(cache=str(cache), output=str(tmp_path / "x"), compare=("flow",)))
    with pytest.raises(ValueError, match="beta 2: give a share"):
        run_visualize(VisualizeSettings(cache=str(cache), output=str(tmp_path / "x"), beta=2))
