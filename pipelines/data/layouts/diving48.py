"""Diving48: `rgb/<vid_name>.mp4` with the official train/test JSONs and the class vocabulary."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from pipelines.data.layouts.index import DatasetIndex, IndexBuilder, LayoutError
from pipelines.data.layouts.paths import ANNOTATIONS, DiskVideos, first_dir, read_json, split_file_dirs

DIVING_VIDEOS = "rgb"
_DIVING_VIDEO_EXT = ".mp4"
DIVING_SPLITS = {
    "train": ("Diving48_V2_train.json", "Diving48_train.json"),  # V2 labels first, then V1
    "test": ("Diving48_V2_test.json", "Diving48_test.json"),
}
_DIVING_VOCAB = "Diving48_vocab.json"
_DIVING_VOCAB_JOIN = " / "


def _diving_files(source: Path, split_dir: Path | None) -> tuple[dict[str, Path], Path | None]:
    """The Diving48 split JSONs by split name, and the folder they are in."""

    def split_files(folder: Path) -> dict[str, Path]:
        found = {}
        for split, names in DIVING_SPLITS.items():
            path = next((folder / name for name in names if (folder / name).is_file()), None)
            if path is not None:
                found[split] = path
        return found

    folder = first_dir(split_file_dirs(source, split_dir, ANNOTATIONS), lambda d: bool(split_files(d)))
    return (split_files(folder), folder) if folder else ({}, None)


def looks_like_diving48(source: Path, split_dir: Path | None) -> bool:
    return (source / DIVING_VIDEOS).is_dir() and bool(_diving_files(source, split_dir)[0])


def _diving_classes(vocab_file: Path, labels: Iterable[int]) -> list[str]:
    """Class names from `Diving48_vocab.json` (4 sub-actions each, joined), `class_<i>` beyond it."""
    vocab = read_json(vocab_file) if vocab_file.is_file() else []
    if not isinstance(vocab, list):
        raise LayoutError(f"{vocab_file}: expected a JSON list with one entry per class")
    names = [_DIVING_VOCAB_JOIN.join(map(str, item)) if isinstance(item, list) else str(item)
             for item in vocab]
    count = max(len(names), max(labels, default=-1) + 1)
    return names + [f"class_{i}" for i in range(len(names), count)]


def read_diving48(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`rgb/<vid_name>.mp4` with `Diving48_V2_{train,test}.json` (or V1 names) and `Diving48_vocab.json`."""
    split_files, folder = _diving_files(source, split_dir)
    if folder is None:
        where = ", ".join(map(str, split_file_dirs(source, split_dir, ANNOTATIONS)))
        wanted = " or ".join(names[0] for names in DIVING_SPLITS.values())
        raise LayoutError(f"Diving48: no {wanted} in {where}")
    disk = DiskVideos(source, source / DIVING_VIDEOS)
    out = IndexBuilder(problems=list(disk.problems))
    rows: list[tuple[str, str, int, str]] = []  # (split, vid_name, label, file)
    for split, path in split_files.items():
        out.splits[split] = set()
        items = read_json(path)
        if not isinstance(items, list):
            raise LayoutError(f"{path}: expected a JSON list of {{'vid_name': ..., 'label': ...}} objects")
        for position, item in enumerate(items):
            item = item if isinstance(item, dict) else {}
            name, label = item.get("vid_name"), item.get("label")
            if not isinstance(name, str) or type(label) is not int or label < 0:
                why = "expected a string 'vid_name' and an integer 'label' >= 0"
                out.problems.append((f"{path.name}[{position}]", why))
                continue
            rows.append((split, name, label, path.name))
    classes = _diving_classes(folder / _DIVING_VOCAB, (label for _, _, label, _ in rows))
    for split, name, label, listed_in in rows:
        video, problem = disk.find(f"{DIVING_VIDEOS}/{name}{_DIVING_VIDEO_EXT}", listed_in)
        out.note(problem)
        if video is not None:
            out.add(video, label, listed_in)
            out.assign(split, video, listed_in)
    return out.index("diving48", source, classes)
