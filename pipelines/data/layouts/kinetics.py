"""Kinetics: split folders of `<youtube_id>_<start>_<end>` clips, labelled by the official CSVs
when present, else by their class folders."""

from __future__ import annotations

import csv
import posixpath
import re
from collections import Counter
from pathlib import Path

from pipelines.data.layouts.folders import read_class_folders
from pipelines.data.layouts.index import DatasetIndex, IndexBuilder, LayoutError
from pipelines.data.layouts.paths import ANNOTATIONS, SPLIT_FOLDERS, first_dir, first_video, scan_videos, split_file_dirs, split_folders

_KINETICS_CLIP = re.compile(r"[A-Za-z0-9_-]{11}_[0-9]{6}_[0-9]{6}")  # <youtube_id>_<start>_<end>
_KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")


def _kinetics_csvs(folder: Path) -> dict[Path, str]:
    """Kinetics CSVs of `folder` (`train.csv`, `validate.csv`, ... with a youtube_id column) -> split."""
    found = {}
    for name, split in SPLIT_FOLDERS.items():
        path = folder / f"{name}.csv"
        if path.is_file():
            with path.open(encoding="utf-8-sig", newline="") as text:
                header = next(csv.reader(text), [])
            if all(column in header for column in _KINETICS_COLUMNS):
                found[path] = split
    return found


def _kinetics_csv_dir(source: Path, split_dir: Path | None) -> Path | None:
    return first_dir(split_file_dirs(source, split_dir, ANNOTATIONS), lambda d: bool(_kinetics_csvs(d)))


def looks_like_kinetics(source: Path, split_dir: Path | None) -> bool:
    folders = split_folders(source)
    if not folders:
        return False
    if _kinetics_csv_dir(source, split_dir) is not None:
        return True
    names = (first_video(top) for tops in folders.values() for top in tops)
    return any(name is not None and _KINETICS_CLIP.fullmatch(posixpath.splitext(name)[0]) for name in names)


def _read_kinetics_rows(path: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(split, clip key `<youtube_id>_<start:06d>_<end:06d>`, label or "") per good CSV row,
    and a problem per bad one."""
    rows, problems = [], []
    with path.open(encoding="utf-8-sig", newline="") as text:
        reader = csv.DictReader(text)
        for row in reader:
            try:
                start, end = (int(float(row[column])) for column in _KINETICS_COLUMNS[1:])
                key = f"{row['youtube_id'].strip()}_{start:06d}_{end:06d}"
            except (TypeError, ValueError, AttributeError):
                why = "expected youtube_id, time_start and time_end values"
                problems.append((f"{path.name}:{reader.line_num}", why))
                continue
            split = SPLIT_FOLDERS.get((row.get("split") or "").strip().lower(), SPLIT_FOLDERS[path.stem])
            rows.append((split, key, (row.get("label") or "").strip()))
    return rows, problems


def _kinetics_clips(
    source: Path, folders: dict[str, list[Path]]
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]]]:
    """split -> clip key (the file name without extension) -> path, for every video in the
    split folders, whether in a class folder or directly in the split folder; and the problems."""
    clips: dict[str, dict[str, str]] = {split: {} for split in folders}
    problems = []
    for split, tops in folders.items():
        for top in tops:
            videos, found = scan_videos(source, top)
            problems += found
            for path in videos:
                clips[split].setdefault(posixpath.splitext(posixpath.basename(path))[0], path)
    return clips, problems


def read_kinetics(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`<split>/<class>/<youtube_id>_<start>_<end>.mp4` (or flat `<split>/<clip>.mp4`), labelled by
    the official CSVs when present, else by the class folders."""
    folders = split_folders(source)
    if not folders:
        raise LayoutError(f"Kinetics: {source} has none of the split folders {', '.join(SPLIT_FOLDERS)}")
    csv_dir = _kinetics_csv_dir(source, split_dir)
    if csv_dir is None and split_dir is not None:
        raise LayoutError(f"Kinetics: no train.csv / validate.csv / test.csv with youtube_id in {split_dir}")
    if csv_dir is None:
        return read_class_folders(source, "kinetics")
    clips, problems = _kinetics_clips(source, folders)
    out = IndexBuilder(splits={split: set() for split in folders}, problems=problems)
    rows = {}
    for path in _kinetics_csvs(csv_dir):
        rows[path.name], problems = _read_kinetics_rows(path)
        out.problems += problems
    classes = sorted({label for file_rows in rows.values() for _, _, label in file_rows if label})
    label_of = {name: label for label, name in enumerate(classes)}
    for listed_in, file_rows in rows.items():
        skipped = Counter()
        for split, key, label in file_rows:
            if split not in folders or not label:
                skipped[f"no {split}/ folder" if split not in folders else "no label"] += 1
                continue
            path = clips[split].get(key)
            if path is None:
                out.problems.append((f"{split}/{key}", f"listed in {listed_in} but missing on disk"))
                continue
            out.add(path, label_of[label], listed_in)
            out.assign(split, path, listed_in)
        out.problems += [(listed_in, f"{n} rows skipped: {why}") for why, n in sorted(skipped.items())]
    for split, by_key in clips.items():
        unlisted = sum(path not in out.labels for path in by_key.values())
        if unlisted:
            out.problems.append((split, f"{unlisted} videos are in no labelled CSV row; left out"))
    return out.index("kinetics", source, classes)
