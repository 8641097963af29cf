"""UCF101 and HMDB51: class folders of videos, with the official split lists of three folds
(`train1`, `test1`, ...; `fold_split_name`)."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.data.layouts.index import DatasetIndex, IndexBuilder, LayoutError, fold_split_name
from pipelines.data.layouts.paths import INTEGER, DiskVideos, first_dir, names_a_folder, read_lines, split_file_dirs

# Where the split files live when unpacked from the official archives (see `split_file_dirs`).
UCF_LISTS = "ucfTrainTestlist"
HMDB_LISTS = "testTrainMulti_7030_splits"

UCF_CLASSES = "classInd.txt"
_UCF_LIST_FILE = re.compile(r"(train|test)list0*([0-9]+)\.txt", re.IGNORECASE)
_HMDB_SPLIT_FILE = re.compile(r"(.+)_test_split([0-9]+)\.txt")
_HMDB_MEMBERSHIP = {"0": None, "1": "train", "2": "test"}  # 0 = in neither half of the fold


def _required(lists: Path | None, dataset: str, what: str, searched, archive: str) -> Path:
    """``lists``, the folder of a dataset's split files; a LayoutError naming where they were
    looked for and which official archive to unpack when there is none."""
    if lists is None:
        where = ", ".join(map(str, searched))
        raise LayoutError(f"{dataset}: no {what} in {where}; unpack {archive} or pass --split-dir")
    return lists


# --------------------------------------------------------------------------- UCF101


def _ucf_lists(source: Path, split_dir: Path | None) -> Path | None:
    return first_dir(split_file_dirs(source, split_dir, UCF_LISTS), lambda d: (d / UCF_CLASSES).is_file())


def _read_class_ind(path: Path) -> list[str]:
    """UCF101's `classInd.txt` (`1 ApplyEyeMakeup` per line) as class names by 0-based label."""
    names: dict[int, str] = {}
    for number, line in read_lines(path):
        parts = line.split(None, 1)
        if len(parts) != 2 or not INTEGER.fullmatch(parts[0]) or int(parts[0]) in names:
            raise LayoutError(f"{path}:{number}: expected '<new class id> <class name>', got {line!r}")
        names[int(parts[0])] = parts[1].strip()
    if sorted(names) != list(range(1, len(names) + 1)):
        raise LayoutError(f"{path}: class ids must run 1..N without gaps; download the split archive again")
    return [names[i] for i in sorted(names)]


def _without_label(line: str) -> str:
    """A trainlist line `Class/v_Class_g08_c01.avi 1` without its label (testlists have none)."""
    parts = line.rsplit(None, 1)
    return parts[0] if len(parts) == 2 and INTEGER.fullmatch(parts[1]) else line


def looks_like_ucf101(source: Path, split_dir: Path | None) -> bool:
    lists = _ucf_lists(source, split_dir)
    return lists is not None and names_a_folder(source, _read_class_ind(lists / UCF_CLASSES))


def read_ucf101(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`UCF-101/<Class>/v_<Class>_gXX_cYY.avi` with `ucfTrainTestlist/`: labels from classInd.txt,
    folds from trainlist0N.txt / testlist0N.txt (a label column, if any, is not needed)."""
    lists = _required(_ucf_lists(source, split_dir), "UCF101", UCF_CLASSES, split_file_dirs(source, split_dir, UCF_LISTS),
                      "UCF101TrainTestSplits-RecognitionTask.zip next to UCF-101/")
    classes = _read_class_ind(lists / UCF_CLASSES)
    disk = DiskVideos(source)
    out = IndexBuilder(problems=list(disk.problems))
    out.label_by_class_folder(disk.videos, classes, UCF_CLASSES)
    for list_file in sorted(lists.iterdir()):
        match = _UCF_LIST_FILE.fullmatch(list_file.name)
        if match is None:
            continue
        split = fold_split_name(match[1].lower(), int(match[2]))
        out.splits.setdefault(split, set())
        for _, line in read_lines(list_file):
            path, problem = disk.find(_without_label(line), list_file.name)
            out.note(problem)
            if path is not None:
                out.assign(split, path, list_file.name)
    return out.index("ucf101", source, classes)


# --------------------------------------------------------------------------- HMDB51


def _hmdb_split_files(folder: Path) -> dict[Path, tuple[str, int]]:
    """`<class>_test_split<N>.txt` files of `folder` -> (class, N)."""
    found = {}
    for path in sorted(folder.glob("*_test_split*.txt")):
        match = _HMDB_SPLIT_FILE.fullmatch(path.name)
        if match:
            found[path] = (match[1], int(match[2]))
    return found


def _hmdb_lists(source: Path, split_dir: Path | None) -> Path | None:
    return first_dir(split_file_dirs(source, split_dir, HMDB_LISTS), lambda d: bool(_hmdb_split_files(d)))


def looks_like_hmdb51(source: Path, split_dir: Path | None) -> bool:
    lists = _hmdb_lists(source, split_dir)
    if lists is None:
        return False
    return names_a_folder(source, (name for name, _ in _hmdb_split_files(lists).values()))


def read_hmdb51(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`<class>/<name>.avi` with `<class>_test_split<N>.txt` lines `<name>.avi <0|1|2>`:
    1 = train<N>, 2 = test<N>, 0 = unused (still an entry, in neither split)."""
    lists = _required(_hmdb_lists(source, split_dir), "HMDB51", "<class>_test_split<N>.txt",
                      split_file_dirs(source, split_dir, HMDB_LISTS), "test_train_splits.rar next to the video folders")
    split_files = _hmdb_split_files(lists)
    classes = sorted({name for name, _ in split_files.values()})
    disk = DiskVideos(source)
    out = IndexBuilder(problems=list(disk.problems))
    out.label_by_class_folder(disk.videos, classes, f"the split files of {lists.name}")
    for split_file, (name, fold) in split_files.items():
        for half in ("train", "test"):
            out.splits.setdefault(fold_split_name(half, fold), set())
        for number, line in read_lines(split_file):
            video_and_id = line.rsplit(None, 1)
            if len(video_and_id) != 2 or video_and_id[1] not in _HMDB_MEMBERSHIP:
                why = f"expected '<video> <0|1|2>', got {line!r}"
                out.problems.append((f"{split_file.name}:{number}", why))
                continue
            path, problem = disk.find(f"{name}/{video_and_id[0]}", split_file.name)
            out.note(problem)
            half = _HMDB_MEMBERSHIP[video_and_id[1]]
            if path is not None and half is not None:
                out.assign(fold_split_name(half, fold), path, split_file.name)
    return out.index("hmdb51", source, classes)
