"""The files of a dataset on disk, read safely.

Every path named by a split or list file is normalised and must stay inside the dataset root;
absolute paths, `..` that leaves the root and symlinks that lead out are refused and reported,
never followed (`safe_relative_path`, `inside_root`, `DiskVideos.find`, `find_listed`). Folder
scans skip hidden names and do not follow symlinked folders (`scan_videos`). Text and JSON
files are read as UTF-8 with a byte-order mark allowed; what cannot be read is a `LayoutError`.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from pathlib import Path
from typing import Callable, Iterable

from pipelines.data.layouts.index import LayoutError, name_key

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")

# Top-level folder (and Kinetics CSV) names that hold one split each -> the split's name.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
# Where Diving48 JSONs and Kinetics CSVs live when unpacked from the official archives.
ANNOTATIONS = "annotations"

_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:/")
INTEGER = re.compile(r"[0-9]+")


def existing_path(path: Path) -> Path:
    """`path` made absolute with symlinks resolved (a file keeps its own name, so a symlinked
    list file still has its own folder as root), or LayoutError if nothing is there."""
    if not path.exists():
        raise LayoutError(f"{path} does not exist; give the dataset folder (or list file) as downloaded")
    path = path.absolute()
    return path.parent.resolve() / path.name if path.is_file() else path.resolve()


def checked_split_dir(split_dir: Path | None) -> Path | None:
    if split_dir is None:
        return None
    split_dir = existing_path(Path(split_dir).expanduser())
    if not split_dir.is_dir():
        raise LayoutError(f"--split-dir {split_dir} is not a folder")
    return split_dir


def has_video_extension(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def inside_root(root: Path, path: str | Path) -> bool:
    """Whether `path`, symlinks followed, stays within `root` (already resolved)."""
    real = os.path.realpath(path)
    return os.path.commonpath([real, root]) == str(root)


def safe_relative_path(raw: str) -> tuple[str | None, str]:
    """`raw` (from a split or list file) as a clean POSIX path below the root, or None and why not.

    Backslashes count as separators, so lists written on Windows work.
    """
    text = raw.strip().replace("\\", "/")
    if text.startswith("/") or _WINDOWS_DRIVE.match(text):
        return None, "absolute path; refused, paths must be relative to the dataset root"
    rel = posixpath.normpath(text)
    if rel == ".." or rel.startswith("../"):
        return None, "leads outside the dataset root ('..'); refused"
    if rel == ".":
        return None, "empty path; refused"
    return rel, ""


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines not starting with '#', stripped, with their 1-based numbers.

    CRLF endings, a UTF-8 byte-order mark and trailing blank lines are all fine.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise LayoutError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except OSError as err:
        raise LayoutError(f"cannot read {path}: {err.strerror}") from err
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), start=1))
    return [(number, line) for number, line in lines if line and not line.startswith("#")]


def read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        where = f"{err.msg}, line {err.lineno}"
        raise LayoutError(f"{path} is not valid JSON ({where}); download it again") from err
    except OSError as err:
        raise LayoutError(f"cannot read {path}: {err.strerror}") from err


def scan_videos(root: Path, top: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Video files below `top`, as sorted POSIX paths relative to `root`, and the problems met.

    Hidden names and non-video files are skipped; symlinked folders are not followed; a
    symlink whose target lies outside `root` is refused.
    """
    videos: list[str] = []
    problems: list[tuple[str, str]] = []
    if not inside_root(root, top):
        return videos, [(top.relative_to(root).as_posix(), "symlink leads outside the dataset root; refused")]
    pending = [top]
    while pending:
        folder = pending.pop()
        prefix = "" if folder == root else folder.relative_to(root).as_posix() + "/"
        try:
            with os.scandir(folder) as found:
                items = list(found)
        except OSError as err:
            problems.append((prefix or ".", f"cannot read this folder: {err.strerror}"))
            continue
        for item in items:
            if item.name.startswith("."):
                continue
            rel = prefix + item.name
            if item.is_symlink() and not inside_root(root, item.path):
                problems.append((rel, "symlink leads outside the dataset root; refused"))
            elif item.is_dir(follow_symlinks=False):
                pending.append(Path(item.path))
            elif has_video_extension(item.name) and item.is_file():
                videos.append(rel)
    return sorted(videos), sorted(problems)


class DiskVideos:
    """The videos below a dataset root, for looking up the paths that split files name.

    Lookups try the exact path, then ignore case (UCF101's `HandStandPushups`); the path
    returned is always the one on disk.
    """

    def __init__(self, root: Path, top: Path | None = None):
        self.videos, self.problems = scan_videos(root, top or root)
        self._exact = set(self.videos)
        self._folded: dict[str, str] = {}
        for path in self.videos:
            self._folded.setdefault(name_key(path), path)
        self._refused = {name_key(path) for path, _ in self.problems}

    def find(self, raw: str, listed_in: str) -> tuple[str | None, tuple[str, str] | None]:
        """The on-disk path for `raw` as named in `listed_in`, or None and the problem (None
        too when the scan already reported this path as refused)."""
        rel, why = safe_relative_path(raw)
        if rel is None:
            return None, (raw, f"{why} (in {listed_in})")
        if rel in self._exact:
            return rel, None
        found = self._folded.get(name_key(rel))
        if found is None and name_key(rel) not in self._refused:
            return None, (rel, f"listed in {listed_in} but missing on disk")
        return found, None


def find_listed(root: Path, raw: str, listed_in: str) -> tuple[str | None, tuple[str, str] | None]:
    """`raw` as a safe path to an existing file below `root`, or None and the problem."""
    rel, why = safe_relative_path(raw)
    if rel is None:
        return None, (raw, f"{why} (in {listed_in})")
    if not inside_root(root, root / rel):
        return None, (rel, f"symlink leads outside the dataset root; refused (in {listed_in})")
    if not (root / rel).is_file():
        return None, (rel, f"listed in {listed_in} but missing on disk")
    return rel, None


def split_file_dirs(source: Path, split_dir: Path | None, official: str) -> list[Path]:
    """Where split files are looked for, in order: `--split-dir` (or its `official` subfolder)
    when given; otherwise SOURCE/`official`, SOURCE itself, then the sibling `official` folder."""
    if split_dir is not None:
        return [split_dir, split_dir / official]
    return [source / official, source, source.parent / official]


def first_dir(candidates: list[Path], holds: Callable[[Path], bool]) -> Path | None:
    return next((folder for folder in candidates if folder.is_dir() and holds(folder)), None)


def names_a_folder(source: Path, classes: Iterable[str]) -> bool:
    """Whether one of `classes` is (case-insensitively) a folder of `source`."""
    wanted = {name_key(name) for name in classes}
    return any(child.is_dir() and name_key(child.name) in wanted for child in source.iterdir())


def first_video(top: Path) -> str | None:
    """The name of some video file below `top` (hidden folders skipped), or None."""
    for _, folders, files in os.walk(top):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        videos = sorted(name for name in files if has_video_extension(name) and not name.startswith("."))
        if videos:
            return videos[0]
    return None


def split_folders(root: Path) -> dict[str, list[Path]]:
    """Top-level split folders of `root` by split name ("validation" -> "val")."""
    folders: dict[str, list[Path]] = {}
    for name, split in SPLIT_FOLDERS.items():
        if (root / name).is_dir():
            folders.setdefault(split, []).append(root / name)
    return folders
