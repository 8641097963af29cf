"""Tests for pipelines/data/layouts/: each builder writes a dataset as its official download ships
it (empty placeholder videos, split files in the official formats) into tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import resolve_split
from pipelines.data.layouts import (
    LAYOUTS,
    DatasetIndex,
    LayoutError,
    VideoEntry,
    detect_layout,
    discover_dataset,
)

FOLDS = (1, 2, 3)


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


def write(path: Path, lines: list[str], newline: str = "\n") -> None:
    """Lines as the official files have them, followed by trailing blank lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline * 3).encode("utf-8"))


def by_path(index: DatasetIndex) -> dict[str, VideoEntry]:
    return {entry.path: entry for entry in index.entries}


def reasons(index: DatasetIndex) -> dict[str, str]:
    return dict(index.problems)


# --------------------------------------------------------------------------- builders

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "PlayingCello"]


def ucf_video(name: str, group: int) -> str:
    """The path as on disk; the real download's files say `HandStand` inside the `Handstand` folder."""
    stem = "HandStandPushups" if name == "HandstandPushups" else name
    return f"{name}/v_{stem}_g{group:02d}_c01.avi"


def build_ucf101(tmp_path: Path, newline: str = "\n", lists_at: str = "sibling") -> tuple[Path, Path | None]:
    """UCF-101/<Class>/v_<Class>_gXX_cYY.avi; fold N tests group N. Returns (source, split_dir to pass)."""
    source = tmp_path / "UCF-101"
    touch(source, *(ucf_video(name, group) for name in UCF_CLASSES for group in FOLDS))
    lists = {
        "sibling": tmp_path / "ucfTrainTestlist",
        "inside": source / "ucfTrainTestlist",
        "explicit": tmp_path / "downloads" / "splits",
    }[lists_at]
    write(lists / "classInd.txt", [f"{i} {name}" for i, name in enumerate(UCF_CLASSES, start=1)], newline)

    def listed(name: str, group: int) -> str:  # the official lists spell HandStandPushups
        return ucf_video(name, group).replace("HandstandPushups/", "HandStandPushups/")

    for fold in FOLDS:
        train = [f"{listed(n, g)} {i}" for i, n in enumerate(UCF_CLASSES, 1) for g in FOLDS if g != fold]
        test = [listed(n, fold) for n in UCF_CLASSES]
        write(lists / f"trainlist0{fold}.txt", train, newline)
        write(lists / f"testlist0{fold}.txt", test, newline)
    return source, (lists if lists_at == "explicit" else None)


HMDB_CLASSES = ["brush_hair", "cartwheel"]


def hmdb_name(name: str, i: int) -> str:
    return f"April_09_{name}_u_nm_np1_ba_goo_{i}.avi"


def build_hmdb51(tmp_path: Path) -> tuple[Path, Path | None]:
    """<class>/<name>.avi; per fold, video 0 trains, video 1 tests, video 2 is unused (id 0)."""
    source = tmp_path / "hmdb51_org"
    touch(source, *(f"{name}/{hmdb_name(name, i)}" for name in HMDB_CLASSES for i in range(3)))
    for name in HMDB_CLASSES:
        for fold in FOLDS:
            lines = [f"{hmdb_name(name, i)} {membership} " for i, membership in enumerate((1, 2, 0))]
            write(tmp_path / "testTrainMulti_7030_splits" / f"{name}_test_split{fold}.txt", lines)
    return source, None


DIVING_VOCAB = [["Back", "15som", "05Twis", "FREE"], ["Forward", "35som", "NoTwis", "PIKE"]]


def build_diving48(tmp_path: Path, version: str = "V2_") -> tuple[Path, Path | None]:
    """rgb/<vid_name>.mp4 with Diving48_V2_{train,test}.json and Diving48_vocab.json."""
    source = tmp_path / "Diving48"
    touch(source, "rgb/-mmq0PT-u8k_00155.mp4", "rgb/-mmq0PT-u8k_00156.mp4", "rgb/_8Vy3dlHg2w_00000.mp4")
    train = [
        {"vid_name": "-mmq0PT-u8k_00155", "label": 0, "start_frame": 0, "end_frame": 59},
        {"vid_name": "-mmq0PT-u8k_00156", "label": 2, "start_frame": 0, "end_frame": 71},
    ]
    test = [{"vid_name": "_8Vy3dlHg2w_00000", "label": 1, "start_frame": 0, "end_frame": 48}]
    (source / f"Diving48_{version}train.json").write_text(json.dumps(train))
    (source / f"Diving48_{version}test.json").write_text(json.dumps(test))
    (source / "Diving48_vocab.json").write_text(json.dumps(DIVING_VOCAB))
    return source, None


KINETICS_CLIPS = {  # split folder -> (class, clip)
    "train": [("abseiling", "---QUuC4vJs_000084_000094"), ("air drumming", "--nQbRBEz2s_000104_000114")],
    "val": [("abseiling", "0wR5jVB-WPk_000417_000427"), ("air drumming", "-VtLx-mcPds_000006_000016")],
}


def build_kinetics(tmp_path: Path) -> tuple[Path, Path | None]:
    """The kinetics-dataset downloader after arranging by class: <split>/<class>/<clip>.mp4, no CSVs."""
    source = tmp_path / "k400"
    touch(source, *(f"{split}/{name}/{clip}.mp4" for split, clips in KINETICS_CLIPS.items() for name, clip in clips))
    return source, None


def kinetics_csv(path: Path, rows: list[tuple[str, str, int, int, str]]) -> None:
    lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
    lines += [f'"{label}",{youtube_id},{start},{end},{split},0' for label, youtube_id, start, end, split in rows]
    write(path, lines)


def build_kinetics_with_csvs(tmp_path: Path) -> tuple[Path, Path | None]:
    """As downloaded, before arranging: flat train/ and val/ folders plus annotations/*.csv."""
    source = tmp_path / "k400"
    touch(source, "train/---QUuC4vJs_000084_000094.mp4", "val/0wR5jVB-WPk_000417_000427.mp4")
    touch(source, "train/air_drumming/--nQbRBEz2s_000104_000114.mp4")  # folder named unlike the label
    kinetics_csv(source / "annotations/train.csv", [
        ("abseiling", "---QUuC4vJs", 84, 94, "train"),
        ("air drumming", "--nQbRBEz2s", 104, 114, "train"),
        ("zumba", "gone0000000", 0, 10, "train"),  # taken down from YouTube: not on disk
    ])
    kinetics_csv(source / "annotations/validate.csv", [("abseiling", "0wR5jVB-WPk", 417, 427, "validate")])
    return source, None


def build_folder(tmp_path: Path) -> tuple[Path, Path | None]:
    """<class>/**/<video>, with spaces and non-ASCII names, clutter to ignore."""
    source = tmp_path / "my clips"
    touch(source, "Tai Chi/morning session 1.mp4", "Tai Chi/park/évening 2.MKV", "Café/naïve clip.webm")
    touch(source, "Café/.DS_Store", "Café/._naïve clip.webm", "Café/notes.txt", ".hidden/x.mp4", "README.md")
    return source, None


def build_list(tmp_path: Path) -> tuple[Path, Path | None]:
    """A list file next to its videos: `path label` lines, names as labels."""
    touch(tmp_path, "videos/run 01.mp4", "videos/jump/ジャンプ.mp4")
    source = tmp_path / "all.txt"
    write(source, ["# my list", "videos/run 01.mp4 running", "videos/jump/ジャンプ.mp4 jumping"], "\r\n")
    return source, None


BUILDERS = {
    "ucf101": build_ucf101,
    "hmdb51": build_hmdb51,
    "diving48": build_diving48,
    "kinetics": build_kinetics,
    "folder": build_folder,
    "list": build_list,
}


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("layout", LAYOUTS)
def test_auto_detects_each_layout(tmp_path, layout):
    source, split_dir = BUILDERS[layout](tmp_path)
    assert detect_layout(source, split_dir) == layout
    index = discover_dataset(source, "auto", split_dir)
    assert index.layout == layout
    assert index.entries and index.problems == []
    assert index.root == (source.parent if layout == "list" else source).resolve()


@pytest.mark.parametrize("lists_at", ["sibling", "inside", "explicit"])
def test_ucf101_split_files_found_wherever_they_ship(tmp_path, lists_at):
    source, split_dir = build_ucf101(tmp_path, lists_at=lists_at)
    assert detect_layout(source, split_dir) == "ucf101"
    assert discover_dataset(source, split_dir=split_dir).split_names() == [
        "test1", "test2", "test3", "train1", "train2", "train3"
    ]


def test_explicit_split_dir_without_lists_is_an_error(tmp_path):
    source, _ = build_ucf101(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="classInd.txt"):
        discover_dataset(source, "ucf101", tmp_path / "empty")


def test_sibling_lists_of_another_dataset_do_not_capture_a_folder(tmp_path):
    build_ucf101(tmp_path)
    source, _ = build_folder(tmp_path)
    assert detect_layout(source) == "folder"


def test_kinetics_csvs_alone_are_detected(tmp_path):
    source, _ = build_kinetics_with_csvs(tmp_path)
    assert detect_layout(source) == "kinetics"


def test_empty_folder_is_a_layout_error(tmp_path):
    with pytest.raises(LayoutError, match="Looked for"):
        detect_layout(tmp_path)
    with pytest.raises(LayoutError, match="Looked for"):
        discover_dataset(tmp_path)


def test_missing_source_and_unknown_layout_are_layout_errors(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        discover_dataset(tmp_path / "nowhere")
    with pytest.raises(LayoutError, match="unknown layout"):
        discover_dataset(tmp_path, "ucf-101")


def test_folder_with_no_videos_is_a_layout_error(tmp_path):
    touch(tmp_path, "a/notes.txt")
    with pytest.raises(LayoutError, match="no video"):
        discover_dataset(tmp_path, "folder")


# --------------------------------------------------------------------------- UCF101


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ucf101_classes_labels_and_folds(tmp_path, newline):
    source, _ = build_ucf101(tmp_path, newline)
    index = discover_dataset(source)
    assert index.classes == UCF_CLASSES
    entries = by_path(index)
    assert sorted(entries) == [entry.path for entry in index.entries]
    assert len(entries) == len(UCF_CLASSES) * len(FOLDS)
    for label, name in enumerate(UCF_CLASSES):
        assert entries[ucf_video(name, 1)] == VideoEntry(ucf_video(name, 1), label, name)
    for fold in FOLDS:
        assert index.splits[f"test{fold}"] == sorted(ucf_video(name, fold) for name in UCF_CLASSES)
        assert set(index.splits[f"train{fold}"]) == set(entries) - set(index.splits[f"test{fold}"])
    assert index.problems == []


def test_ucf101_handstand_spelling_recorded_as_on_disk(tmp_path):
    source, _ = build_ucf101(tmp_path)
    index = discover_dataset(source)
    assert "HandstandPushups/v_HandStandPushups_g01_c01.avi" in index.splits["test1"]
    assert not any(path.startswith("HandStandPushups/") for path in index.splits["train1"])


def test_ucf101_refuses_unsafe_paths_and_reports_missing(tmp_path):
    source, _ = build_ucf101(tmp_path)
    touch(tmp_path, "secret.avi")
    os.symlink(tmp_path / "secret.avi", source / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g09_c01.avi")
    lists = tmp_path / "ucfTrainTestlist"
    with (lists / "trainlist01.txt").open("a") as extra:
        extra.write("../secret.avi 1\n/etc/secret.avi 1\nApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1\n")
        extra.write("ApplyEyeMakeup/v_ApplyEyeMakeup_g25_c07.avi 1\n")
    index = discover_dataset(source)
    problems = reasons(index)
    assert "'..'" in problems["../secret.avi"] and "refused" in problems["../secret.avi"]
    assert problems["/etc/secret.avi"].startswith("absolute path; refused")
    assert "outside the dataset root" in problems["ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi"]
    missing = problems["ApplyEyeMakeup/v_ApplyEyeMakeup_g25_c07.avi"]
    assert missing == "listed in trainlist01.txt but missing on disk"
    assert all("secret" not in entry.path and "g09" not in entry.path for entry in index.entries)
    assert len(index.entries) == len(UCF_CLASSES) * len(FOLDS)


def test_ucf101_malformed_class_index_is_a_layout_error(tmp_path):
    source, _ = build_ucf101(tmp_path)
    write(tmp_path / "ucfTrainTestlist" / "classInd.txt", ["1 ApplyEyeMakeup", "3 PlayingCello"])
    with pytest.raises(LayoutError, match="1..N"):
        discover_dataset(source, "ucf101")


# --------------------------------------------------------------------------- HMDB51


def test_hmdb51_folds_and_unused_videos(tmp_path):
    source, _ = build_hmdb51(tmp_path)
    index = discover_dataset(source)
    assert index.classes == HMDB_CLASSES
    assert index.split_names() == ["test1", "test2", "test3", "train1", "train2", "train3"]
    entries = by_path(index)
    assert len(entries) == 6
    assert entries[f"cartwheel/{hmdb_name('cartwheel', 0)}"].label == 1
    for fold in FOLDS:
        assert index.splits[f"train{fold}"] == [f"{name}/{hmdb_name(name, 0)}" for name in HMDB_CLASSES]
        assert index.splits[f"test{fold}"] == [f"{name}/{hmdb_name(name, 1)}" for name in HMDB_CLASSES]
    unused = f"brush_hair/{hmdb_name('brush_hair', 2)}"
    assert unused in entries and not any(unused in paths for paths in index.splits.values())


def test_hmdb51_bad_lines_and_unsafe_names_are_reported(tmp_path):
    source, _ = build_hmdb51(tmp_path)
    split_file = tmp_path / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt"
    with split_file.open("a") as extra:
        extra.write("../../escape.avi 1\nnot a membership line\nApril_09_cartwheel_gone.avi 2\n")
    problems = reasons(discover_dataset(source))
    assert "refused" in problems["cartwheel/../../escape.avi"]
    assert problems["cartwheel_test_split1.txt:7"].startswith("expected '<video> <0|1|2>'")  # after 3 lines and 2 blank ones
    assert problems["cartwheel/April_09_cartwheel_gone.avi"].startswith("listed in cartwheel_test_split1.txt")


# --------------------------------------------------------------------------- Diving48


@pytest.mark.parametrize("version", ["V2_", ""])
def test_diving48_labels_vocab_and_splits(tmp_path, version):
    source, _ = build_diving48(tmp_path, version)
    index = discover_dataset(source)
    assert index.classes == ["Back / 15som / 05Twis / FREE", "Forward / 35som / NoTwis / PIKE", "class_2"]
    assert [(entry.path, entry.label) for entry in index.entries] == [
        ("rgb/-mmq0PT-u8k_00155.mp4", 0), ("rgb/-mmq0PT-u8k_00156.mp4", 2), ("rgb/_8Vy3dlHg2w_00000.mp4", 1)
    ]
    assert index.splits == {"test": ["rgb/_8Vy3dlHg2w_00000.mp4"],
                            "train": ["rgb/-mmq0PT-u8k_00155.mp4", "rgb/-mmq0PT-u8k_00156.mp4"]}


def test_diving48_without_vocab_and_with_bad_items(tmp_path):
    source, _ = build_diving48(tmp_path)
    (source / "Diving48_vocab.json").unlink()
    items = [{"vid_name": "-mmq0PT-u8k_00155", "label": 0}, {"vid_name": "../../x", "label": 1}, {"label": 1}]
    (source / "Diving48_V2_train.json").write_text(json.dumps(items))
    index = discover_dataset(source)
    assert index.classes == ["class_0", "class_1"]
    problems = reasons(index)
    assert "refused" in problems["rgb/../../x.mp4"]
    assert "vid_name" in problems["Diving48_V2_train.json[2]"]


# --------------------------------------------------------------------------- Kinetics


def test_kinetics_labels_from_class_folders(tmp_path):
    source, _ = build_kinetics(tmp_path)
    (source / "val").rename(source / "validation")
    index = discover_dataset(source)
    assert index.classes == ["abseiling", "air drumming"]
    assert index.split_names() == ["train", "val"]
    assert index.splits["val"] == sorted(f"validation/{name}/{clip}.mp4" for name, clip in KINETICS_CLIPS["val"])
    assert by_path(index)["train/air drumming/--nQbRBEz2s_000104_000114.mp4"].label == 1


def test_kinetics_labels_from_official_csvs(tmp_path):
    source, _ = build_kinetics_with_csvs(tmp_path)
    index = discover_dataset(source)
    assert index.classes == ["abseiling", "air drumming", "zumba"]
    assert [(entry.path, entry.class_name) for entry in index.entries] == [
        ("train/---QUuC4vJs_000084_000094.mp4", "abseiling"),
        ("train/air_drumming/--nQbRBEz2s_000104_000114.mp4", "air drumming"),
        ("val/0wR5jVB-WPk_000417_000427.mp4", "abseiling"),
    ]
    assert index.splits["val"] == ["val/0wR5jVB-WPk_000417_000427.mp4"]
    assert index.problems == [("train/gone0000000_000000_000010", "listed in train.csv but missing on disk")]


def test_kinetics_unlabelled_test_csv_and_absent_split_folder_are_summarised(tmp_path):
    source, _ = build_kinetics_with_csvs(tmp_path)
    touch(source, "test/abcdefghijk_000001_000011.mp4")
    write(source / "annotations/test.csv", ["youtube_id,time_start,time_end,split", "abcdefghijk,1,11,test"])
    (source / "val").rename(source / "elsewhere")
    problems = discover_dataset(source).problems
    assert ("test.csv", "1 rows skipped: no label") in problems
    assert ("validate.csv", "1 rows skipped: no val/ folder") in problems
    assert ("test", "1 videos are in no labelled CSV row; left out") in problems


# --------------------------------------------------------------------------- folder


def test_folder_spaces_non_ascii_and_clutter(tmp_path):
    source, _ = build_folder(tmp_path)
    index = discover_dataset(source, "folder")
    assert index.classes == ["Café", "Tai Chi"]
    assert [(entry.path, entry.label) for entry in index.entries] == [
        ("Café/naïve clip.webm", 0), ("Tai Chi/morning session 1.mp4", 1), ("Tai Chi/park/évening 2.MKV", 1)
    ]
    assert index.splits == {}


def test_folder_with_split_folders(tmp_path):
    touch(tmp_path, "train/cat/a.mp4", "train/dog/b.mp4", "validation/dog/c.mp4", "test/bird/d.avi", "loose.mp4")
    index = discover_dataset(tmp_path)
    assert index.layout == "folder"
    assert index.classes == ["bird", "cat", "dog"]
    assert index.splits == {"test": ["test/bird/d.avi"], "train": ["train/cat/a.mp4", "train/dog/b.mp4"],
                            "val": ["validation/dog/c.mp4"]}


def test_folder_symlink_leading_out_is_refused(tmp_path):
    source, _ = build_folder(tmp_path)
    touch(tmp_path, "elsewhere/x.mp4")
    os.symlink(tmp_path / "elsewhere", source / "Tai Chi" / "linked")
    os.symlink(tmp_path / "elsewhere" / "x.mp4", source / "Café" / "x.mp4")
    index = discover_dataset(source)
    assert set(reasons(index)) == {"Tai Chi/linked", "Café/x.mp4"}
    assert len(index.entries) == 3


# --------------------------------------------------------------------------- list


def test_list_with_class_names_spaces_and_crlf(tmp_path):
    source, _ = build_list(tmp_path)
    index = discover_dataset(source)
    assert index.root == tmp_path.resolve()
    assert index.classes == ["jumping", "running"]
    assert [(entry.path, entry.label) for entry in index.entries] == [
        ("videos/jump/ジャンプ.mp4", 0), ("videos/run 01.mp4", 1)
    ]
    assert index.splits == {}


def test_list_with_integer_labels_splits_and_bad_lines(tmp_path):
    touch(tmp_path, "a.mp4", "b c.avi", "d.mkv", "outside.mp4")
    (tmp_path / "lists").mkdir()
    touch(tmp_path / "lists", "e.mp4")
    source = tmp_path / "lists" / "all.txt"
    write(source, [
        "../a.mp4 0 train",  # leaves the list's folder: refused
        "/abs/e.mp4 0",
        "e.mp4 3 val",
        "missing.mp4 1 train",
        "no label here",
    ])
    index = discover_dataset(source, "list")
    assert index.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert index.entries == [VideoEntry("e.mp4", 3, "class_3")]
    assert index.splits == {"train": [], "val": ["e.mp4"]}
    problems = reasons(index)
    assert "refused" in problems["../a.mp4"] and "refused" in problems["/abs/e.mp4"]
    assert problems["missing.mp4"] == "listed in all.txt but missing on disk"
    assert problems["all.txt:5"].startswith("expected '<video path> <label> [<split>]'")


def test_list_third_column_and_spaces_in_path(tmp_path):
    touch(tmp_path, "b c.avi", "my video.mp4")
    source = tmp_path / "l.txt"
    write(source, ["b c.avi 1 test", "my video.mp4 0"])
    index = discover_dataset(source)
    assert [(entry.path, entry.label) for entry in index.entries] == [("b c.avi", 1), ("my video.mp4", 0)]
    assert index.splits == {"test": ["b c.avi"]}


def test_split_dir_with_folder_layout_is_an_error(tmp_path):
    source, _ = build_folder(tmp_path)
    with pytest.raises(LayoutError, match="no split files"):
        discover_dataset(source, "folder", tmp_path)


# --------------------------------------------------------------------------- resolve_split


def test_resolve_split_on_folded_and_plain_datasets(tmp_path):
    source, _ = build_ucf101(tmp_path)
    ucf = discover_dataset(source)
    assert resolve_split(ucf, "train") == "train1"
    assert resolve_split(ucf, "test", fold=3) == "test3"
    assert resolve_split(ucf, "train2", fold=1) == "train2"
    assert resolve_split(["train", "val", "test"], "validation") == "val"
    assert resolve_split(["train", "val"], "train", fold=1) == "train"


def test_resolve_split_errors_list_available_names():
    with pytest.raises(LayoutError, match="fold 4; this dataset has: test1, train1"):
        resolve_split(["train1", "test1"], "train", fold=4)
    with pytest.raises(LayoutError, match="has: train, val"):
        resolve_split(["train", "val"], "test")
    with pytest.raises(LayoutError, match="defines no splits"):
        resolve_split([], "train")
