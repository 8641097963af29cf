"""The preprocessing stage: bad inputs, resume, a real SIGKILL mid-run, sharding."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import moving_square_video, write_test_video
from pipelines.data.cache import CacheError, open_cache, video_id_for
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess

SMALL = dict(short_side=32, window=8, stride=2, hop=4)


def settings_for(source: Path, cache: Path, **overrides) -> PreprocessSettings:
    return PreprocessSettings(source=str(source), cache=str(cache), **{**SMALL, **overrides})


def read_all(cache: Path) -> dict:
    """Everything a cache holds, for equality checks."""
    reader = open_cache(cache)
    content = {}
    for vid in reader.video_ids:
        info = reader.info(vid)
        frames = reader.frames(vid, range(info["num_frames"])) if reader.has_frames else None
        content[vid] = (info, None if frames is None else frames.tobytes(), reader.soft_masks(vid).tobytes())
    errors = sorted((e["path"], e["reason"]) for e in reader.errors)
    return {"videos": content, "errors": errors, "dataset": reader.dataset, "settings": reader.settings}


@pytest.fixture(scope="module")
def dataset_with_bad_files(synth_dataset, tmp_path_factory) -> Path:
    """The synthetic dataset plus every kind of bad input the stage must withstand."""
    out = tmp_path_factory.mktemp("bad") / "data"
    shutil.copytree(synth_dataset, out)
    root, lists = out / "UCF-101", out / "ucfTrainTestlist"
    bad = {
        "Vertical/v_Vertical_g90_c01.avi": b"",  # zero bytes
        "Vertical/v_Vertical_g91_c01.avi": b"RIFF....AVI not really a video" * 10,  # not a video
    }
    for relative, data in bad.items():
        (root / relative).write_bytes(data)
    good = (root / "Vertical/v_Vertical_g01_c01.avi").read_bytes()
    (root / "Vertical/v_Vertical_g92_c01.avi").write_bytes(good[: len(good) // 3])  # truncated
    write_test_video(root / "Vertical/v_Vertical_g93_c01.avi", moving_square_video(frames=5))  # shorter than a window
    write_test_video(root / "Vertical/v_Vertical_g94_c01.avi", moving_square_video(frames=20)[..., 0])  # gray
    write_test_video(root / "Vertical/v_Vertical_g95_c01.avi", moving_square_video(frames=20, height=37, width=51))
    write_test_video(root / "Vertical/v Vértical ü_g96_c01.avi", moving_square_video(frames=20))  # space, non-ASCII
    extra = [
        "Vertical/v_Vertical_g90_c01.avi 2", "Vertical/v_Vertical_g91_c01.avi 2", "Vertical/v_Vertical_g92_c01.avi 2",
        "Vertical/v_Vertical_g93_c01.avi 2", "Vertical/v_Vertical_g94_c01.avi 2", "Vertical/v_Vertical_g95_c01.avi 2",
        "Vertical/v Vértical ü_g96_c01.avi 2",
        "Vertical/v_Vertical_g97_c01.avi 2",  # listed, missing on disk
        "../outside/v_Evil_g01_c01.avi 2",  # points outside the dataset root: refused
    ]
    with open(lists / "trainlist01.txt", "a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in extra))
    (out / "outside").mkdir()
    write_test_video(out / "outside" / "v_Evil_g01_c01.avi", moving_square_video(frames=20))
    return out


def test_preprocess_builds_a_readable_cache(synth_dataset, tmp_path):
    cache = tmp_path / "c.zarr"
    summary = run_preprocess(settings_for(synth_dataset / "UCF-101", cache))
    assert not summary.failed and summary.done == 12 and summary.layout == "ucf101"
    reader = open_cache(cache)
    assert len(reader.video_ids) == 12
    vid = video_id_for("Circle/v_Circle_g02_c01.avi")
    info = reader.info(vid)
    assert info["path"] == "Circle/v_Circle_g02_c01.avi" and info["class_name"] == "Circle"
    assert info["label"] == reader.classes.index("Circle")
    assert (info["num_frames"], info["height"], info["width"]) == (40, 32, 43)
    assert info["fps"] == 25.0
    clip = reader.frames(vid, range(3, 19, 2))
    assert clip.shape == (8, 32, 43, 3) and clip.dtype == np.uint8
    soft = reader.soft_mask(vid, range(3, 19, 2))
    assert soft.shape == (32, 43) and soft.dtype == np.uint8 and soft.max() > 200
    assert set(reader.split("train", fold=2)) | set(reader.split("test", fold=2)) == set(reader.video_ids)
    # the cache is plain zarr: arrays open without fame
    import zarr

    group = zarr.open_group(str(cache), mode="r")
    assert group[f"videos/{vid}/frames"].shape == (40, 32, 43, 3)


def test_bad_inputs_get_one_line_each_and_the_rest_is_processed(dataset_with_bad_files, tmp_path):
    cache = tmp_path / "c.zarr"
    summary = run_preprocess(settings_for(dataset_with_bad_files / "UCF-101", cache))
    assert summary.failed
    failed = {r.path: r.reason for r in summary.errors}
    assert set(failed) == {
        "Vertical/v_Vertical_g90_c01.avi", "Vertical/v_Vertical_g91_c01.avi", "Vertical/v_Vertical_g92_c01.avi",
    }
    assert "0 bytes" in failed["Vertical/v_Vertical_g90_c01.avi"]
    assert all("\n" not in reason for reason in failed.values())
    problems = dict(summary.problems)
    assert any("g97" in path for path in problems)  # listed but missing
    assert any(".." in path for path in problems)  # refused, not followed
    reader = open_cache(cache)
    assert not any("Evil" in v for v in reader.video_ids)
    for ok in ("v_Vertical_g93_c01.avi", "v_Vertical_g94_c01.avi", "v_Vertical_g95_c01.avi", "v Vértical ü_g96_c01.avi"):
        assert video_id_for(f"Vertical/{ok}") in reader.video_ids
    odd = reader.info(video_id_for("Vertical/v_Vertical_g95_c01.avi"))
    assert (odd["height"], odd["width"]) == (32, 44)
    short = reader.info(video_id_for("Vertical/v_Vertical_g93_c01.avi"))  # 5 frames, a window spans 15
    assert (short["num_frames"], short["window_starts"], short["window_padding"]) == (5, [0], 10)
    assert len(reader.video_ids) == 12 + 4
    listed = {e["path"] for e in reader.summary()["errors"]}
    assert "Vertical/v_Vertical_g90_c01.avi" in listed and "Vertical/v_Vertical_g93_c01.avi" not in listed
    assert any("g97" in p for p in listed)


def test_cli_exit_status_and_info_json(dataset_with_bad_files, tmp_path):
    cache = tmp_path / "c.zarr"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "fame_cli", "preprocess", str(dataset_with_bad_files / "UCF-101"), "--cache", str(cache),
         "--short-side", "32", "--window", "8", "--hop", "4", "--workers", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert "v_Vertical_g90_c01.avi: file is empty (0 bytes)" in run.stderr
    info = subprocess.run([sys.executable, "-m", "fame_cli", "info", "--cache", str(cache), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["videos"] == 16 and summary["frames"] > 0  # 12 + 4 odd ones (the 5-frame video kept)
    assert summary["frames_stored"] is True and summary["frame_codec"] == "jpeg"
    assert summary["classes"] == ["Horizontal", "Vertical", "Circle"]
    assert summary["splits"]["train1"] > 0 and summary["splits"]["test1"] > 0
    assert {"path", "reason"} <= set(summary["errors"][0])


def test_resume_skips_finished_and_redoes_half_written(synth_dataset, tmp_path):
    cache = tmp_path / "c.zarr"
    settings = settings_for(synth_dataset / "UCF-101", cache)
    run_preprocess(settings)
    before = read_all(cache)
    # simulate a kill in the middle of a video: arrays present, "complete" never written
    vid = video_id_for("Circle/v_Circle_g01_c01.avi")
    meta = cache / "videos" / vid / "zarr.json"
    data = json.loads(meta.read_text())
    data["attributes"]["complete"] = False
    meta.write_text(json.dumps(data))
    assert vid not in open_cache(cache).video_ids  # never read as complete
    summary = run_preprocess(settings)
    assert (summary.done, summary.skipped) == (1, 11)
    assert read_all(cache) == before


def test_resume_refuses_other_settings(synth_dataset, tmp_path):
    cache = tmp_path / "c.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=1, masks="paper"))
    with pytest.raises(CacheError, match="short_side"):
        run_preprocess(settings_for(synth_dataset / "UCF-101", cache, short_side=40, masks="paper"))
    with pytest.raises(CacheError, match="frame_quality"):  # JPEG frames: the quality is content
        run_preprocess(settings_for(synth_dataset / "UCF-101", cache, frame_quality=80, masks="paper"))
    with pytest.raises(CacheError, match="colour_context"):
        run_preprocess(settings_for(synth_dataset / "UCF-101", cache, colour_context=2, masks="paper"))


def test_colour_context_is_recorded_and_changes_only_the_masks(synth_dataset, tmp_path):
    paper, pooled = tmp_path / "paper.zarr", tmp_path / "pooled.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", paper, limit=2, frame_codec="raw", masks="paper"))
    run_preprocess(settings_for(synth_dataset / "UCF-101", pooled, limit=2, frame_codec="raw", colour_context=2,
                                masks="paper"))
    a, b = open_cache(paper), open_cache(pooled)
    # the paper's step 4 is recorded by absence, as in caches made before the option existed
    assert "colour_context" not in a.settings and b.settings["colour_context"] == 2
    for vid in a.video_ids:
        frames = range(a.info(vid)["num_frames"])
        assert np.array_equal(a.frames(vid, frames), b.frames(vid, frames))
        assert a.soft_masks(vid).shape == b.soft_masks(vid).shape
    assert any(not np.array_equal(a.soft_masks(v), b.soft_masks(v)) for v in a.video_ids)
    summary = run_preprocess(settings_for(synth_dataset / "UCF-101", pooled, limit=3, frame_codec="raw",
                                          colour_context=2, masks="paper"))
    assert (summary.done, summary.skipped) == (1, 2)
    from typer.testing import CliRunner

    from fame_cli.main import app

    shown = " ".join(CliRunner().invoke(app, ["info", "--cache", str(pooled)]).output.replace("│", " ").split())
    assert "windows of 8 frames at stride 2, every 4 frames; colour context 2 windows each side" in shown
    shown = " ".join(CliRunner().invoke(app, ["info", "--cache", str(paper)]).output.replace("│", " ").split())
    assert "colour context 0 (the paper's step 4)" in shown


@pytest.mark.parametrize("made, resumed", [
    ({"frame_codec": "zstd"}, {"frame_codec": "zstd", "frame_quality": 50}),  # quality is JPEG's only
    ({"frames": False}, {"frames": False, "frame_codec": "raw"}),  # no frames, no frame codec
])
def test_resume_ignores_settings_that_do_not_change_the_content(synth_dataset, tmp_path, made, resumed):
    cache = tmp_path / "c.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=1, **made))
    summary = run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, **resumed))
    assert (summary.done, summary.skipped) == (1, 1)


def test_no_frames_cache_decodes_from_source(synth_dataset, tmp_path):
    full, light = tmp_path / "full.zarr", tmp_path / "light.zarr"
    # lossless frames, decoded by decord as a --no-frames cache's clips are (the default decoder's are close, not equal)
    run_preprocess(settings_for(synth_dataset / "UCF-101", full, limit=3, frame_codec="zstd", decoder="decord"))
    run_preprocess(settings_for(synth_dataset / "UCF-101", light, limit=3, frames=False, decoder="decord"))
    a, b = open_cache(full), open_cache(light)
    assert not b.has_frames and a.video_ids == b.video_ids
    vid = a.video_ids[0]
    assert np.array_equal(a.frames(vid, [0, 2, 4]), b.frames(vid, [0, 2, 4]))
    assert np.array_equal(a.soft_mask(vid, range(0, 16, 2)), b.soft_mask(vid, range(0, 16, 2)))
    assert not (light / "videos" / vid / "frames").exists()


@pytest.mark.parametrize("codec", ["jpeg", "zstd", "raw"])
def test_frames_match_the_decoded_video(synth_dataset, tmp_path, codec):
    """zstd and raw frames are what the stage's decoder decoded; JPEG frames (the default) are close to it."""
    from pipelines.data.video import decode_video as read_video

    cache = tmp_path / f"{codec}.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, frame_codec=codec))
    reader = open_cache(cache)
    for vid in reader.video_ids:
        info = reader.info(vid)
        decoded, _ = read_video(synth_dataset / "UCF-101" / info["path"], short_side=SMALL["short_side"])
        cached = reader.frames(vid, range(info["num_frames"]))
        error = cached.astype(np.float64) - decoded
        if codec in ("zstd", "raw"):
            assert not error.any()
        else:
            assert 10 * np.log10(255**2 / np.mean(error**2)) > 30  # PSNR in dB
            assert np.abs(error).mean() < 3
    frames_json = json.loads((cache / "videos" / reader.video_ids[0] / "frames" / "zarr.json").read_text())
    inner = frames_json["codecs"][0]["configuration"]
    assert inner["codecs"][-1]["name"] == {"jpeg": "fame.jpeg", "zstd": "zstd", "raw": "bytes"}[codec]
    assert inner["chunk_shape"][0] == {"jpeg": 1, "zstd": 8, "raw": 1}[codec]
    assert reader.settings["frame_codec"] == codec and reader.summary()["frame_codec"] == codec


def test_bad_frame_codec_settings_are_refused(tmp_path):
    for bad in ({"frame_codec": "png"}, {"frame_quality": 0}, {"frame_chunk": -1}, {"colour_context": -1}):
        with pytest.raises(ValueError):
            settings_for(tmp_path, tmp_path / "c.zarr", **bad)


def test_shards_write_one_store_equal_to_a_single_run(synth_dataset, tmp_path):
    single, sharded = tmp_path / "single.zarr", tmp_path / "sharded.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", single))
    for index in range(3):
        run_preprocess(settings_for(synth_dataset / "UCF-101", sharded, shard=(index, 3)))
    assert read_all(sharded) == read_all(single)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_single_run(synth_dataset, tmp_path):
    """Kill a real `fame preprocess` process with SIGKILL at several moments, then resume."""
    source = synth_dataset / "UCF-101"
    reference = tmp_path / "reference.zarr"
    run_preprocess(settings_for(source, reference))
    cache = tmp_path / "killed.zarr"
    command = [sys.executable, "-m", "fame_cli", "preprocess", str(source), "--cache", str(cache),
               "--short-side", "32", "--window", "8", "--hop", "4", "--workers", "1"]
    killed_mid_run = 0
    for _ in range(3):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            try:
                done = len(open_cache(cache).video_ids)
            except CacheError:  # not created yet
                done = 0
            if done >= 1 + killed_mid_run * 3:
                break
            time.sleep(0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            done = len(open_cache(cache).video_ids)
            killed_mid_run += done < 12
    assert killed_mid_run >= 1, "every run finished before it could be killed"
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert read_all(cache) == read_all(reference)


@pytest.mark.parametrize("option", [["--frame-codec", "png"], ["--frame-quality", "0"], ["--frame-chunk", "-1"],
                                    ["--colour-context", "-1"]])
def test_cli_refuses_bad_frame_settings_in_one_line(synth_dataset, tmp_path, option):
    from typer.testing import CliRunner

    from fame_cli.main import app

    result = CliRunner().invoke(app, ["preprocess", str(synth_dataset / "UCF-101"), "--cache", str(tmp_path / "c.zarr"),
                                      *option])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and option[0] in lines[0]
    assert not (tmp_path / "c.zarr").exists()


def test_mask_method_is_recorded_and_a_resume_with_another_is_refused(synth_dataset, tmp_path):
    from typer.testing import CliRunner

    from fame_cli.main import app
    from pipelines.masks.motion import VERSION, map_shape

    cache = tmp_path / "motion.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=1, short_side=128, masks="motion"))
    reader = open_cache(cache)
    assert reader.settings["masks"] == "motion" and reader.settings["mask_version"] == VERSION
    assert reader.mask_method == ("motion", VERSION)
    assert reader.settings["fg_fraction"] is None and reader.settings["colour_bins"] is None  # the paper's only
    vid = reader.video_ids[0]
    info = reader.info(vid)
    assert reader.soft_masks(vid).shape[1:] == map_shape(info["height"], info["width"]) != (info["height"], info["width"])
    with pytest.raises(CacheError, match=r"its masks are --masks motion \(version 1\), asked --masks paper"):
        run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, short_side=128, masks="paper"))
    shown = " ".join(CliRunner().invoke(app, ["info", "--cache", str(cache)]).output.replace("│", " ").split())
    assert "masks motion (version 1): windows of 8 frames at stride 2, every 4 frames" in shown
    result = CliRunner().invoke(app, ["preprocess", str(synth_dataset / "UCF-101"), "--cache", str(tmp_path / "x.zarr"),
                                      "--masks", "flow", "--workers", "1"])
    assert result.exit_code == 2 and "--masks 'flow': choose one of motion, paper" in result.output
    with pytest.raises(ValueError, match="--colour-context 2: refines the paper's colour step; it needs --masks paper"):
        settings_for(synth_dataset / "UCF-101", cache, colour_context=2)


def test_adaptive_masks_are_recorded_shown_and_kept_apart_from_motion(synth_dataset, tmp_path):
    from typer.testing import CliRunner

    from fame_cli.main import app
    from pipelines.masks.motion import ADAPTIVE_VERSION

    cache = tmp_path / "adaptive.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=1, short_side=128, masks="adaptive"))
    reader = open_cache(cache)
    assert reader.mask_method == ("adaptive", ADAPTIVE_VERSION)
    shown = " ".join(CliRunner().invoke(app, ["info", "--cache", str(cache)]).output.replace("│", " ").split())
    assert f"masks adaptive (version {ADAPTIVE_VERSION})" in shown
    with pytest.raises(CacheError, match=rf"its masks are --masks adaptive \(version {ADAPTIVE_VERSION}\), asked --masks motion"):
        run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, short_side=128, masks="motion"))
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, short_side=128, masks="adaptive"))  # resumes
    assert len(open_cache(cache).video_ids) == 2


def test_caches_made_before_mask_methods_open_and_resume_as_paper(synth_dataset, tmp_path):
    """A cache written before --masks existed has no masks setting: it holds the paper's maps, it
    opens as such, resumes with --masks paper (adding the same maps as before), and is refused,
    in one line, with the new default."""
    cache = tmp_path / "old.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=1, masks="paper"))
    root = json.loads((cache / "zarr.json").read_text())
    settings = root["attributes"]["settings"]
    assert "masks" not in settings and "mask_version" not in settings  # recorded by absence, as before
    assert settings["fg_fraction"] == 0.5  # the paper's constants, as before
    assert open_cache(cache).mask_method == ("paper", 1)
    with pytest.raises(CacheError, match=r"its masks are --masks paper \(version 1\), asked --masks adaptive"):
        run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2))
    summary = run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, masks="paper"))
    assert (summary.done, summary.skipped) == (1, 1)
    reader = open_cache(cache)
    for vid in reader.video_ids:
        info = reader.info(vid)
        frames = reader.frames(vid, range(info["num_frames"]))
        assert reader.soft_masks(vid).shape[1:] == frames.shape[1:3]
    assert reader.summary()["masks"] == {"method": "paper", "version": 1}
def test_full_disk_ends_in_one_line_and_the_cache_resumes(synth_dataset, tmp_path, monkeypatch):
    """ENOSPC while writing the third video: one line, a non-zero exit, nothing half-written kept."""
    import errno

    from typer.testing import CliRunner

    import pipelines.data.cache as cache_module
    from fame_cli.main import app

    source, cache, reference = synth_dataset / "UCF-101", tmp_path / "c.zarr", tmp_path / "reference.zarr"
    run_preprocess(settings_for(source, reference))
    write_array = cache_module.write_sharded_array
    calls = []

    def fills_the_disk(path, data, **kwargs):
        calls.append(path)
        if len(calls) == 5:  # frames and masks of two videos, then the third video's frames
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write_array(path, data, **kwargs)

    monkeypatch.setattr(cache_module, "write_sharded_array", fills_the_disk)
    command = ["preprocess", str(source), "--cache", str(cache), "--short-side", "32", "--window", "8", "--hop", "4",
               "--workers", "1"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "rerun the same command" in errors[0]
    assert "Traceback" not in result.output
    assert len(open_cache(cache).video_ids) == 2
    assert not Path(calls[-1]).parent.exists()  # the third video's files: given back
    monkeypatch.setattr(cache_module, "write_sharded_array", write_array)
    resumed = CliRunner().invoke(app, command)
    assert resumed.exit_code == 0, resumed.output
    assert read_all(cache) == read_all(reference)


def test_a_file_given_as_cache_ends_in_one_line(synth_dataset, tmp_path):
    from typer.testing import CliRunner

    from fame_cli.main import app

    not_a_folder = tmp_path / "cache.zarr"
    not_a_folder.write_text("my notes")
    result = CliRunner().invoke(app, ["preprocess", str(synth_dataset / "UCF-101"), "--cache", str(not_a_folder)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "is a file, not a cache folder" in result.output and "Traceback" not in result.output
    assert not_a_folder.read_text() == "my notes"


def test_processes_creating_one_store_at_once_all_succeed(tmp_path):
    """The shared-file-system case: several --shard writers start on one new store together."""
    import multiprocessing

    from helpers import open_cache_for_writing_at

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for attempt in range(20):
            path = str(tmp_path / f"c{attempt}.zarr")
            start_at = time.time() + 0.05
            outcomes = pool.starmap(open_cache_for_writing_at, [(path, start_at)] * 2)
            assert outcomes == ["ok", "ok"], outcomes
            reader = open_cache(path)
            assert reader.settings == {"short_side": 32} and reader.video_ids == []
            assert not [p for p in Path(path).rglob("*") if p.name.startswith(".")]  # no temporaries left


@pytest.mark.slow
def test_two_concurrent_shard_writers_build_the_same_cache_as_one_process(synth_dataset, tmp_path):
    source = synth_dataset / "UCF-101"
    single, shared = tmp_path / "single.zarr", tmp_path / "shared.zarr"
    # the same torch thread count everywhere: the motion maps' float sums differ in their last
    # bits between 1 and 2 threads (each writer alone would take a share of the cores: 1 here)
    run_preprocess(settings_for(source, single, threads=1))
    command = [sys.executable, "-m", "fame_cli", "preprocess", str(source), "--cache", str(shared),
               "--short-side", "32", "--window", "8", "--hop", "4", "--workers", "1", "--threads", "1"]
    writers = [subprocess.Popen([*command, "--shard", f"{i}/2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for i in range(2)]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr
    assert read_all(shared) == read_all(single)
    assert not [p for p in shared.rglob("*") if p.name.startswith(".")]


def test_info_and_reader_with_a_missing_shard_and_a_half_done_one(synth_dataset, tmp_path):
    from typer.testing import CliRunner

    from fame_cli.main import app

    source, cache, single = synth_dataset / "UCF-101", tmp_path / "c.zarr", tmp_path / "single.zarr"
    run_preprocess(settings_for(source, single))
    run_preprocess(settings_for(source, cache, shard=(0, 3)))  # shard 1/3 never ran
    first_shard = set(open_cache(cache).video_ids)
    run_preprocess(settings_for(source, cache, shard=(2, 3), limit=2))  # shard 2/3 stopped after 2 videos ...
    stopped = sorted(set(open_cache(cache).video_ids) - first_shard)[-1]
    meta = cache / "videos" / stopped / "zarr.json"
    data = json.loads(meta.read_text())
    data["attributes"]["complete"] = False  # ... the second of them mid-write
    meta.write_text(json.dumps(data))
    reader = open_cache(cache)
    assert len(reader) == 4 + 1 and reader.unfinished == [stopped]
    assert stopped not in reader.split("all") and stopped not in sum(reader.splits.values(), [])
    with pytest.raises(KeyError, match="not a finished video"):
        reader.soft_masks(stopped)
    summary = reader.summary()
    assert (summary["videos"], summary["pending"], summary["unfinished"]) == (5, 7, 1)
    shown = CliRunner().invoke(app, ["info", "--cache", str(cache)])
    assert shown.exit_code == 0
    assert "7 listed videos are not in the cache yet, 1 of them half-written" in " ".join(shown.output.split())
    for index in (1, 2):  # running the missing shard and the stopped one finishes the cache
        run_preprocess(settings_for(source, cache, shard=(index, 3)))
    assert read_all(cache) == read_all(single)
    assert open_cache(cache).summary()["pending"] == 0


def test_decoder_decord_is_recorded_by_absence_and_checked_on_resume(synth_dataset, tmp_path):
    """Caches made before --decoder were decord's: they resume with --decoder decord, not with the new default."""
    cache = tmp_path / "c.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=1, decoder="decord"))
    assert "decoder" not in open_cache(cache).settings
    with pytest.raises(CacheError, match="decoder: cache has None, asked 'pyav'"):
        run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2))
    assert run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, decoder="decord")).done == 1
    with pytest.raises(ValueError, match="--decoder"):
        settings_for(synth_dataset, cache, decoder="opencv")


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_videos_record_their_decoder_and_older_ones_read_as_the_caches(synth_dataset, tmp_path, decoder):
    """Each video records the decoder of its frames; a video written before that reads as the cache's decoder."""
    cache = tmp_path / "c.zarr"
    run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, decoder=decoder))
    reader = open_cache(cache)
    assert [reader.info(v)["decoder"] for v in reader.video_ids] == [decoder, decoder]
    meta = cache / "videos" / reader.video_ids[0] / "zarr.json"
    data = json.loads(meta.read_text())
    del data["attributes"]["decoder"]  # as written before the field existed
    meta.write_text(json.dumps(data))
    reader = open_cache(cache)
    assert reader.decoder(reader.video_ids[0]) == decoder and reader.decoder_counts() == {decoder: 2}
    assert reader.summary()["decoders"] == {decoder: 2}
    assert run_preprocess(settings_for(synth_dataset / "UCF-101", cache, limit=2, decoder=decoder)).skipped == 2
