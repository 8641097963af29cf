"""Real-world encodings, made here with PyAV's own encoders, each read by both decoders.

The corpus: a container whose tags are Latin-1 bytes (as in HMDB51's clips), MJPEG in AVI,
VP9 in WebM, HEVC in Matroska, 10-bit and 4:4:4 H.264, MPEG-4 Part 2 with B-frames (Xvid,
as UCF101 ships), 29.97 fps, greyscale, an odd frame size and a rotation tag; plus AV1,
which decord's older ffmpeg cannot read (the fallback, for real). Tiny frames, 20 each.

Tolerance: the two decoders give the same frame count, fps and size; at native size the
same pixels for 8-bit sources of even size (10-bit and odd sizes: PSNR >= 28 dB); resized
to the stage's short side (a non-integer scale, as 240 -> 128), luma PSNR >= 40 dB between
them (measured 45.1-59.1 dB) and RGB PSNR >= 22 dB (measured 23.6-51.2 dB). The gap in
colour is PyAV's route, not the file: it scales within 4:2:0, so its frames keep chroma at
half their resolution (as the cache's JPEG frames do anyway), where decord converts to RGB
at full size first; the corpus's saturated colour waves are the worst case for that
(docs/benchmarks.md measures real clips).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from helpers import encode_video, smooth_moving_video
from pipelines.data.cache import open_cache, video_id_for
from pipelines.data.video import CorruptVideoError, decode_video, read_video, resized_shape
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess

FRAMES = 20
SHORT_SIDE = 40  # 96x128 -> 40x53: a resize at decode time by a non-integer factor, the stage's case
MIN_LUMA_PSNR = 40.0  # between the two decoders' resized frames: brightness
MIN_PSNR = 22.0  # and RGB (PyAV keeps chroma at half resolution, decord at full)
NATIVE_MIN_PSNR = 28.0  # at native size, where the two convert 10-bit or odd-sized frames differently
LATIN1_TITLE = "Pippi Långstrump går ombord, Michel från Lönneberga"  # å, ö: not UTF-8 once written as Latin-1

#: name -> (file, encoder, pixel format, extra arguments of encode_video)
CORPUS = {
    "latin1-tags": ("latin1-tags.avi", "mpeg4", "yuv420p",
                    dict(tags={"title": LATIN1_TITLE, "artist": "Astrid Lindgren Ó"}, tags_encoding="latin-1")),
    "mjpeg": ("mjpeg.avi", "mjpeg", "yuvj420p", {}),
    "vp9": ("vp9.webm", "libvpx-vp9", "yuv420p", {}),
    "hevc": ("hevc.mkv", "libx265", "yuv420p", dict(options={"x265-params": "log-level=error"})),
    "h264-10bit": ("h264-10bit.mp4", "libx264", "yuv420p10le", {}),
    "h264-444": ("h264-444.mp4", "libx264", "yuv444p", {}),
    "mpeg4-part2": ("mpeg4-part2.avi", "mpeg4", "yuv420p", dict(options={"bf": "2", "g": "300"})),
    "h264-29.97fps": ("h264-2997.mp4", "libx264", "yuv420p", dict(fps=Fraction(30000, 1001))),
    "greyscale": ("greyscale.mp4", "libx264", "gray", {}),
    "odd-size": ("odd-size.avi", "mpeg4", "yuv420p", dict(size=(75, 101))),
    "rotation-90": ("rotated-90.mp4", "libx264", "yuv420p", dict(rotation=90)),
}
AV1 = ("av1.mkv", "libsvtav1", "yuv420p", {})


def make(folder: Path, name: str, spec) -> Path:
    """Encode one corpus file, or skip when PyAV's ffmpeg lacks the encoder."""
    import av

    filename, codec, pix_fmt, extra = spec
    if codec not in av.codecs_available:
        pytest.skip(f"{name}: PyAV's bundled ffmpeg has no {codec} encoder here")
    extra = dict(extra)
    height, width = extra.pop("size", (96, 128))
    if extra.get("rotation") and not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip(f"{name}: this PyAV ({av.__version__}) cannot write a rotation tag")
    return encode_video(folder / filename, smooth_moving_video(FRAMES, height, width), codec=codec,
                        pix_fmt=pix_fmt, **extra)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The corpus as a `folder` dataset: one class folder per encoder family (files made once)."""
    import av

    root = tmp_path_factory.mktemp("corpus") / "videos"
    for name, spec in CORPUS.items():
        if spec[1] in av.codecs_available:
            make(root / name.split("-")[0], name, spec)
    return root


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def luma(frames: np.ndarray) -> np.ndarray:
    """Brightness (BT.601 weights) of RGB frames."""
    return frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def resized(frames: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Frames resized in float with an antialiased bilinear filter (the reference for a decoder's resize)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(tensor, size=shape, mode="bilinear", antialias=True).permute(0, 2, 3, 1).numpy()


def corpus_file(corpus: Path, name: str) -> Path:
    path = corpus / name.split("-")[0] / CORPUS[name][0]
    if not path.exists():
        pytest.skip(f"{name}: PyAV's bundled ffmpeg has no {CORPUS[name][1]} encoder here")
    return path


@pytest.mark.parametrize("name", list(CORPUS))
def test_both_decoders_read_it_alike(corpus, name):
    path = corpus_file(corpus, name)
    ours, probe = decode_video(path, short_side=SHORT_SIDE)
    reference, reference_probe = read_video(path, short_side=SHORT_SIDE)
    assert len(ours) == len(reference) == FRAMES
    assert ours.shape == reference.shape and probe == reference_probe
    assert psnr(luma(ours), luma(reference)) >= MIN_LUMA_PSNR, (name, psnr(luma(ours), luma(reference)))
    assert psnr(ours, reference) >= MIN_PSNR, (name, psnr(ours, reference))
    if name == "h264-29.97fps":
        assert probe.fps == pytest.approx(30000 / 1001)
    if name == "rotation-90":
        assert ours.shape[1:3] == (53, 40)  # upright: portrait
    if name == "greyscale":
        assert np.array_equal(ours[..., 0], ours[..., 2]) and np.array_equal(reference[..., 0], reference[..., 2])
    if name == "odd-size":
        assert (probe.source_height, probe.source_width) == (75, 101) and ours.shape[1:3] == (40, 54)


@pytest.mark.parametrize("name", [n for n in CORPUS if n != "rotation-90"])
def test_native_size_frames_are_the_same(corpus, name):
    """Without a resize both decoders convert with ffmpeg's scaler: 8-bit sources of even size give the
    same pixels (10-bit ones and odd sizes take other paths of the converter in each)."""
    path = corpus_file(corpus, name)
    ours, _ = decode_video(path, short_side=None)
    reference, _ = read_video(path, short_side=None)
    assert ours.shape == reference.shape and len(ours) == FRAMES
    if name in ("h264-10bit", "odd-size"):
        assert psnr(ours, reference) >= NATIVE_MIN_PSNR, psnr(ours, reference)
    else:
        assert np.array_equal(ours, reference)


def test_latin1_tags_no_longer_refuse_a_file(corpus):
    """The issue's HMDB51 file: PyAV, strict about UTF-8 by default, refused it on opening."""
    import av

    path = corpus_file(corpus, "latin1-tags")
    assert LATIN1_TITLE.encode("latin-1") in path.read_bytes()  # the tag is there, as Latin-1 bytes
    with pytest.raises(UnicodeDecodeError):
        av.open(str(path)).close()  # what decode_video did before
    frames, probe = decode_video(path, short_side=SHORT_SIDE)
    assert len(frames) == FRAMES and probe.num_frames == FRAMES


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotation_tag_is_honoured_like_decord(tmp_path, degrees):
    """Both decoders turn the frames upright, as a player shows them (turns counter-clockwise)."""
    import av

    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip(f"this PyAV ({av.__version__}) cannot write a rotation tag")
    truth = smooth_moving_video(FRAMES, 96, 128)
    path = encode_video(tmp_path / f"r{degrees}.mp4", truth, codec="libx264", pix_fmt="yuv444p",
                        options={"crf": "4"}, rotation=degrees)
    ours, probe = decode_video(path, short_side=SHORT_SIDE)
    reference, reference_probe = read_video(path, short_side=SHORT_SIDE)
    upright = np.rot90(truth, degrees // 90, axes=(1, 2))
    assert ours.shape == reference.shape == (FRAMES, *resized_shape(*upright.shape[1:3], SHORT_SIDE), 3)
    assert probe == reference_probe and (probe.source_height, probe.source_width) == upright.shape[1:3]
    assert psnr(luma(ours), luma(reference)) >= MIN_LUMA_PSNR and psnr(ours, reference) >= MIN_PSNR
    truth = luma(resized(upright, ours.shape[1:3]))
    assert psnr(luma(ours), truth) >= 35  # upright, as a player shows it ...
    assert psnr(luma(np.rot90(ours, 2, axes=(1, 2))), truth) < 25  # ... not upside down


def test_av1_only_pyav_reads(tmp_path):
    """decord's older ffmpeg cannot read AV1: the case the stage's fallback exists for."""
    path = make(tmp_path, "av1", AV1)
    frames, probe = decode_video(path, short_side=SHORT_SIDE)
    assert len(frames) == FRAMES
    with pytest.raises(CorruptVideoError, match="not a readable video"):
        read_video(path, short_side=SHORT_SIDE)


# --------------------------------------------------------------------------- the stage on the corpus

SMALL = dict(short_side=32, window=8, stride=2, hop=4)


def test_the_default_stage_caches_the_whole_corpus(corpus, tmp_path):
    cache = tmp_path / "c.zarr"
    summary = run_preprocess(PreprocessSettings(source=str(corpus), cache=str(cache), layout="folder", **SMALL))
    assert summary.errors == [] and summary.fallbacks == 0
    reader = open_cache(cache)
    made = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.*"))
    assert sorted(reader.info(v)["path"] for v in reader.video_ids) == made
    assert reader.decoder_counts() == {"pyav": len(made)}
    assert all(reader.info(v)["num_frames"] == FRAMES for v in reader.video_ids)
    rotated = reader.info(video_id_for("rotation/rotated-90.mp4"))
    assert (rotated["height"], rotated["width"]) == (43, 32)  # upright: portrait


def test_fallback_to_decord_is_recorded_and_the_cache_resumes(corpus, tmp_path, monkeypatch):
    """PyAV made strict about tags again (as before the fix) fails on the Latin-1 file; decord reads it."""
    from pipelines.data import video

    monkeypatch.setattr(video, "METADATA_ERRORS", "strict")
    cache = tmp_path / "c.zarr"
    settings = PreprocessSettings(source=str(corpus), cache=str(cache), layout="folder", frame_codec="zstd", **SMALL)
    summary = run_preprocess(settings)
    assert summary.errors == [] and summary.fallbacks == 1
    latin1 = video_id_for("latin1/latin1-tags.avi")
    reader = open_cache(cache)
    assert reader.decoder(latin1) == "decord" and reader.info(latin1)["decoder"] == "decord"
    assert reader.decoder_counts() == {"pyav": len(reader) - 1, "decord": 1}
    cached = reader.frames(latin1, range(FRAMES))
    assert np.array_equal(cached, read_video(corpus / "latin1" / "latin1-tags.avi", short_side=32)[0])
    again = run_preprocess(settings)  # resumes: the video decord read is finished, not redone
    assert (again.done, again.skipped, again.errors) == (0, len(reader), [])


def test_fallback_to_pyav_with_workers_and_info_counts_it(corpus, tmp_path):
    """--decoder decord: the AV1 file goes to PyAV, in the worker processes; `fame info` counts it."""
    import shutil

    from typer.testing import CliRunner

    from fame_cli.main import app

    source = tmp_path / "videos"
    shutil.copytree(corpus / "mjpeg", source / "mjpeg")
    make(source / "av1", "av1", AV1)
    cache = tmp_path / "c.zarr"
    runner = CliRunner()
    run = runner.invoke(app, ["preprocess", str(source), "--cache", str(cache), "--layout", "folder",
                              "--decoder", "decord", "--workers", "2", "--short-side", "32", "--window", "8",
                              "--hop", "4"])
    assert run.exit_code == 0, run.output
    assert "0 failed" in run.output and "1 read by the other decoder" in " ".join(run.output.split())
    reader = open_cache(cache)
    assert reader.decoder(video_id_for("av1/av1.mkv")) == "pyav"
    assert reader.decoder(video_id_for("mjpeg/mjpeg.avi")) == "decord"
    assert reader.summary()["decoders"] == {"decord": 1, "pyav": 1}
    shown = runner.invoke(app, ["info", "--cache", str(cache)])
    assert "decoders decord 1, pyav 1 (fallback)" in " ".join(shown.output.replace("│", " ").split())


def test_a_file_no_decoder_reads_is_one_line(tmp_path):
    source = tmp_path / "videos" / "a"
    encode_video(source / "ok.mp4", smooth_moving_video(FRAMES, 48, 64), codec="libx264", pix_fmt="yuv420p")
    (source / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 40)
    summary = run_preprocess(PreprocessSettings(source=str(tmp_path / "videos"), cache=str(tmp_path / "c.zarr"),
                                                layout="folder", **SMALL))
    assert summary.done == 1 and [e.path for e in summary.errors] == ["a/garbage.mp4"]
    reason = summary.errors[0].reason
    assert reason.startswith("no decoder reads it (pyav: not a readable video (") and "; decord: " in reason
    assert reason.endswith("); re-encode or remove it") and "\n" not in reason


def test_no_frames_cache_does_not_fall_back_from_the_clip_reader(tmp_path):
    """A --no-frames cache is read by decord at training: a file only PyAV reads is reported, with why."""
    path = make(tmp_path / "videos" / "a", "av1", AV1)
    summary = run_preprocess(PreprocessSettings(source=str(tmp_path / "videos"), cache=str(tmp_path / "c.zarr"),
                                                layout="folder", frames=False, decoder="decord", **SMALL))
    assert [e.path for e in summary.errors] == [path.relative_to(tmp_path / "videos").as_posix()]
    assert "a --no-frames cache's clips are read by decord at training" in summary.errors[0].reason
