"""The generic layouts: class folders of videos (`folder`, optionally below train/val/test
folders) and a list file of `path label [split]` lines (`list`)."""

from __future__ import annotations

from pathlib import Path

from pipelines.data.layouts.index import DatasetIndex, IndexBuilder
from pipelines.data.layouts.paths import INTEGER, find_listed, first_video, has_video_extension, read_lines, scan_videos, split_folders


def read_class_folders(root: Path, layout: str) -> DatasetIndex:
    """`<class>/...video` below the root, or below each top-level split folder if there are any;
    classes are the sorted union of the class folders holding videos."""
    folders = split_folders(root)
    out = IndexBuilder()
    found: list[tuple[str | None, str, str]] = []  # (split, class folder, path)
    for split, tops in folders.items() if folders else [(None, [root])]:
        if split is not None:
            out.splits[split] = set()
        for top in tops:
            videos, problems = scan_videos(root, top)
            out.problems += problems
            depth = len(top.relative_to(root).parts)
            loose = 0
            for path in videos:
                parts = path.split("/")[depth:]
                if len(parts) > 1:
                    found.append((split, parts[0], path))
                else:
                    loose += 1
            if loose:
                where = top.relative_to(root).as_posix()
                why = f"{loose} videos lie directly here, not in a class folder; left out"
                out.problems.append((where, why))
    classes = sorted({name for _, name, _ in found})
    label_of = {name: label for label, name in enumerate(classes)}
    for split, name, path in found:
        out.add(path, label_of[name], "its folder")
        if split is not None:
            out.assign(split, path, f"{split}/")
    return out.index(layout, root, classes)


def looks_like_folder(source: Path, split_dir: Path | None) -> bool:
    children = (child for child in source.iterdir() if child.is_dir() and not child.name.startswith("."))
    return any(first_video(child) is not None for child in children)


def read_folder(source: Path, split_dir: Path | None) -> DatasetIndex:
    return read_class_folders(source, "folder")


def _parse_list_line(line: str) -> tuple[str, str, str | None] | None:
    """`path label` or `path label split`, splitting at the last whitespace so paths may hold
    spaces; the reading whose path has a video extension wins (two columns first)."""
    path_label = line.rsplit(None, 1)
    if len(path_label) == 2 and has_video_extension(path_label[0]):
        return path_label[0], path_label[1], None
    path_label_split = line.rsplit(None, 2)
    if len(path_label_split) == 3 and has_video_extension(path_label_split[0]):
        return path_label_split[0], path_label_split[1], path_label_split[2]
    return None


def read_list(source: Path, split_dir: Path | None) -> DatasetIndex:
    """A text file of `path label [split]` lines, paths relative to its folder; labels are all
    0-based integers (classes `class_<i>`) or else class names (classes sorted)."""
    root = source.parent
    out = IndexBuilder()
    rows = []
    for number, line in read_lines(source):
        parsed = _parse_list_line(line)
        if parsed is None:
            why = f"expected '<video path> <label> [<split>]', got {line!r}"
            out.problems.append((f"{source.name}:{number}", why))
        else:
            rows.append(parsed)
    labels = {label for _, label, _ in rows}
    if all(INTEGER.fullmatch(label) for label in labels):
        label_of = {label: int(label) for label in labels}
        classes = [f"class_{i}" for i in range(max(label_of.values(), default=-1) + 1)]
    else:
        classes = sorted(labels)
        label_of = {name: label for label, name in enumerate(classes)}
    for raw, label, split in rows:
        if split is not None:
            out.splits.setdefault(split, set())
        path, problem = find_listed(root, raw, source.name)
        out.note(problem)
        if path is not None:
            out.add(path, label_of[label], source.name)
            if split is not None:
                out.assign(split, path, source.name)
    return out.index("list", root, classes)
