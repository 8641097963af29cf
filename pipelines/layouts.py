"""Reading video datasets as their official downloads ship them.

`discover_dataset(source)` turns what a user already has on disk into a `DatasetIndex`: the
class names, every video that exists and has a label, the official splits, and a list of
problems (listed-but-missing videos, refused paths, unparsable lines), one line each.
Parsing never opens a video.

One reader per layout (`_read_ucf101`, `_read_hmdb51`, `_read_diving48`, `_read_kinetics`,
`_read_folder`, `_read_list`); `detect_layout` picks one for `--layout auto`.

Safety: every path named by a split or list file is normalised and must stay inside the
dataset root; absolute paths, `..` that leaves the root and symlinks that lead out are refused
and reported, never followed. Folder scans skip hidden names and do not follow symlinked
folders.
"""

from __future__ import annotations

import csv
import json
import os
import posixpath
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
LAYOUTS = ("ucf101", "hmdb51", "diving48", "kinetics", "folder", "list")

# Top-level folder (and Kinetics CSV) names that hold one split each -> the split's name.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}

# Where split files live when unpacked from the official archives (see `_split_file_dirs`).
_UCF_LISTS = "ucfTrainTestlist"
_HMDB_LISTS = "testTrainMulti_7030_splits"
_ANNOTATIONS = "annotations"  # Diving48 JSONs and Kinetics CSVs

_UCF_CLASSES = "classInd.txt"
_UCF_LIST_FILE = re.compile(r"(train|test)list0*([0-9]+)\.txt", re.IGNORECASE)
_HMDB_SPLIT_FILE = re.compile(r"(.+)_test_split([0-9]+)\.txt")
_HMDB_MEMBERSHIP = {"0": None, "1": "train", "2": "test"}  # 0 = in neither half of the fold

_DIVING_VIDEOS = "rgb"
_DIVING_VIDEO_EXT = ".mp4"
_DIVING_SPLITS = {
    "train": ("Diving48_V2_train.json", "Diving48_train.json"),  # V2 labels first, then V1
    "test": ("Diving48_V2_test.json", "Diving48_test.json"),
}
_DIVING_VOCAB = "Diving48_vocab.json"
_DIVING_VOCAB_JOIN = " / "

_KINETICS_CLIP = re.compile(r"[A-Za-z0-9_-]{11}_[0-9]{6}_[0-9]{6}")  # <youtube_id>_<start>_<end>
_KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")

_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:/")
_INTEGER = re.compile(r"[0-9]+")
_PROBLEMS_IN_ERROR = 3  # problems quoted when a source yields no video at all


class LayoutError(Exception):
    """A dataset source that cannot be used; the message says what, where and what to do."""


@dataclass(frozen=True)
class VideoEntry:
    path: str  # POSIX path relative to the dataset root
    label: int  # 0-based class index into DatasetIndex.classes
    class_name: str


@dataclass
class DatasetIndex:
    layout: str  # one of LAYOUTS
    root: Path  # absolute dataset root; entry and split paths are relative to it
    classes: list[str]  # index = label
    entries: list[VideoEntry]  # sorted by path, unique: every video that exists and has a label
    splits: dict[str, list[str]]  # split name -> sorted paths, a subset of the entries' paths
    problems: list[tuple[str, str]]  # (path or file, one-line reason)

    def split_names(self) -> list[str]:
        return sorted(self.splits)


def fold_split_name(split: str, fold: int) -> str:
    """The name of `split` in official fold `fold` of a folded dataset (UCF101, HMDB51): the
    project's one spelling of it, in the index, the cache and the commands.

    >>> fold_split_name("train", 1)
    'train1'
    """
    return f"{split}{fold}"


# --------------------------------------------------------------------------- public API


def detect_layout(source: Path, split_dir: Path | None = None) -> str:
    """The layout `--layout auto` would read `source` as; LayoutError if none fits.

    Checked in this order: a file is a list; `classInd.txt` reachable -> ucf101;
    `*_test_split<N>.txt` reachable -> hmdb51; `rgb/` and a Diving48 JSON -> diving48;
    train/val/test folders holding `<youtube_id>_<start>_<end>` clips, or Kinetics CSVs ->
    kinetics; class folders with videos -> folder. UCF101 and HMDB51 also need one of their
    class names to be a folder of `source`, so a neighbouring dataset's lists do not capture it.

    >>> detect_layout(Path("data/UCF-101"))  # doctest: +SKIP
    'ucf101'
    """
    source = _existing(Path(source).expanduser())
    split_dir = _checked_split_dir(split_dir)
    if source.is_file():
        return "list"
    for layout, looks_like in _DETECTORS:
        if looks_like(source, split_dir):
            return layout
    raise LayoutError(
        f"{source}: no known dataset layout. Looked for: {_UCF_CLASSES} in {_UCF_LISTS}/ (UCF101); "
        f"<class>_test_split1.txt in {_HMDB_LISTS}/ (HMDB51); {_DIVING_VIDEOS}/ with "
        f"{_DIVING_SPLITS['train'][0]} (Diving48); train|val|test/<class>/<youtube_id>_<start>_<end>.mp4 "
        "or Kinetics CSVs (Kinetics); <class>/<video> folders (folder). Check the path, pass "
        "--split-dir if the split files live elsewhere, or name the layout with --layout."
    )


def discover_dataset(source: Path, layout: str = "auto", split_dir: Path | None = None) -> DatasetIndex:
    """Index the dataset at `source` (a folder, or a list file for the list layout).

    >>> index = discover_dataset(Path("data/UCF-101"))  # doctest: +SKIP
    >>> index.layout, len(index.classes), index.split_names()[:2]  # doctest: +SKIP
    ('ucf101', 101, ['test1', 'test2'])
    """
    source = _existing(Path(source).expanduser())
    split_dir = _checked_split_dir(split_dir)
    if layout == "auto":
        layout = detect_layout(source, split_dir)
    if layout not in _READERS:
        raise LayoutError(f"unknown layout {layout!r}; choose one of: auto, {', '.join(LAYOUTS)}")
    if (layout == "list") != source.is_file():
        wanted = "a list file" if layout == "list" else "a folder"
        raise LayoutError(f"the {layout} layout reads {wanted}, but {source} is not one")
    if split_dir is not None and layout in ("folder", "list"):
        raise LayoutError(f"the {layout} layout has no split files; drop --split-dir {split_dir}")
    index = _READERS[layout](source, split_dir)
    if not index.entries:
        quoted = "; ".join(f"{where}: {why}" for where, why in index.problems[:_PROBLEMS_IN_ERROR])
        raise LayoutError(
            f"{source}: read as {layout}, but no video both exists and has a label"
            + (f" ({len(index.problems)} problems, e.g. {quoted})" if quoted else "")
        )
    return index


# --------------------------------------------------------------------------- paths and files


def _existing(path: Path) -> Path:
    """`path` made absolute with symlinks resolved (a file keeps its own name, so a symlinked
    list file still has its own folder as root), or LayoutError if nothing is there."""
    if not path.exists():
        raise LayoutError(f"{path} does not exist; give the dataset folder (or list file) as downloaded")
    path = path.absolute()
    return path.parent.resolve() / path.name if path.is_file() else path.resolve()


def _checked_split_dir(split_dir: Path | None) -> Path | None:
    if split_dir is None:
        return None
    split_dir = _existing(Path(split_dir).expanduser())
    if not split_dir.is_dir():
        raise LayoutError(f"--split-dir {split_dir} is not a folder")
    return split_dir


def _fold(name: str) -> str:
    """Key for matching names whatever their case and Unicode normal form (UCF101's lists
    spell `HandStandPushups`, its folder `HandstandPushups`; macOS writes NFD names)."""
    return unicodedata.normalize("NFC", name).casefold()


def _has_video_extension(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _inside(root: Path, path: str | Path) -> bool:
    """Whether `path`, symlinks followed, stays within `root` (already resolved)."""
    real = os.path.realpath(path)
    return os.path.commonpath([real, root]) == str(root)


def _normalise(raw: str) -> tuple[str | None, str]:
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


def _read_lines(path: Path) -> list[tuple[int, str]]:
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


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        where = f"{err.msg}, line {err.lineno}"
        raise LayoutError(f"{path} is not valid JSON ({where}); download it again") from err
    except OSError as err:
        raise LayoutError(f"cannot read {path}: {err.strerror}") from err


def _scan(root: Path, top: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Video files below `top`, as sorted POSIX paths relative to `root`, and the problems met.

    Hidden names and non-video files are skipped; symlinked folders are not followed; a
    symlink whose target lies outside `root` is refused.
    """
    videos: list[str] = []
    problems: list[tuple[str, str]] = []
    if not _inside(root, top):
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
            if item.is_symlink() and not _inside(root, item.path):
                problems.append((rel, "symlink leads outside the dataset root; refused"))
            elif item.is_dir(follow_symlinks=False):
                pending.append(Path(item.path))
            elif _has_video_extension(item.name) and item.is_file():
                videos.append(rel)
    return sorted(videos), sorted(problems)


class _Disk:
    """The videos below a dataset root, for looking up the paths that split files name.

    Lookups try the exact path, then ignore case (UCF101's `HandStandPushups`); the path
    returned is always the one on disk.
    """

    def __init__(self, root: Path, top: Path | None = None):
        self.videos, self.problems = _scan(root, top or root)
        self._exact = set(self.videos)
        self._folded: dict[str, str] = {}
        for path in self.videos:
            self._folded.setdefault(_fold(path), path)
        self._refused = {_fold(path) for path, _ in self.problems}

    def find(self, raw: str, listed_in: str) -> tuple[str | None, tuple[str, str] | None]:
        """The on-disk path for `raw` as named in `listed_in`, or None and the problem (None
        too when the scan already reported this path as refused)."""
        rel, why = _normalise(raw)
        if rel is None:
            return None, (raw, f"{why} (in {listed_in})")
        if rel in self._exact:
            return rel, None
        found = self._folded.get(_fold(rel))
        if found is None and _fold(rel) not in self._refused:
            return None, (rel, f"listed in {listed_in} but missing on disk")
        return found, None


def _split_file_dirs(source: Path, split_dir: Path | None, official: str) -> list[Path]:
    """Where split files are looked for, in order: `--split-dir` (or its `official` subfolder)
    when given; otherwise SOURCE/`official`, SOURCE itself, then the sibling `official` folder."""
    if split_dir is not None:
        return [split_dir, split_dir / official]
    return [source / official, source, source.parent / official]


def _first_dir(candidates: list[Path], holds: Callable[[Path], bool]) -> Path | None:
    return next((folder for folder in candidates if folder.is_dir() and holds(folder)), None)


def _names_a_folder(source: Path, classes: Iterable[str]) -> bool:
    """Whether one of `classes` is (case-insensitively) a folder of `source`."""
    wanted = {_fold(name) for name in classes}
    return any(child.is_dir() and _fold(child.name) in wanted for child in source.iterdir())


def _first_video(top: Path) -> str | None:
    """The name of some video file below `top` (hidden folders skipped), or None."""
    for _, folders, files in os.walk(top):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        videos = sorted(name for name in files if _has_video_extension(name) and not name.startswith("."))
        if videos:
            return videos[0]
    return None


def _split_folders(root: Path) -> dict[str, list[Path]]:
    """Top-level split folders of `root` by split name ("validation" -> "val")."""
    folders: dict[str, list[Path]] = {}
    for name, split in SPLIT_FOLDERS.items():
        if (root / name).is_dir():
            folders.setdefault(split, []).append(root / name)
    return folders


# --------------------------------------------------------------------------- building an index


@dataclass
class _Builder:
    """What a reader has found so far; `index()` turns it into a DatasetIndex."""

    labels: dict[str, int] = field(default_factory=dict)  # path -> label
    splits: dict[str, set[str]] = field(default_factory=dict)  # split -> paths
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str, label: int, given_in: str) -> None:
        kept = self.labels.setdefault(path, label)
        if kept != label:
            why = f"label {label} in {given_in} disagrees with label {kept} given before; kept {kept}"
            self.problems.append((path, why))

    def note(self, problem: tuple[str, str] | None) -> None:
        if problem is not None:
            self.problems.append(problem)

    def assign(self, split: str, path: str, listed_in: str) -> None:
        if path in self.labels:
            self.splits[split].add(path)
        else:
            self.problems.append((path, f"listed in {listed_in} but has no label; left out"))

    def label_by_class_folder(self, videos: list[str], classes: list[str], named_in: str) -> None:
        """Label each video by its top folder, matched case-insensitively against `classes`."""
        label_of = {_fold(name): label for label, name in enumerate(classes)}
        unknown_folders = set()
        for path in videos:
            folder, slash, _ = path.partition("/")
            label = label_of.get(_fold(folder))
            if not slash:
                self.problems.append((path, "not inside a class folder; left out"))
            elif label is None:
                unknown_folders.add(folder)
            else:
                self.add(path, label, named_in)
        for name in sorted(unknown_folders):
            why = f"no class named in {named_in} matches this folder; its videos are left out"
            self.problems.append((name, why))

    def index(self, layout: str, root: Path, classes: list[str]) -> DatasetIndex:
        return DatasetIndex(
            layout=layout,
            root=root,
            classes=classes,
            entries=[VideoEntry(path, label, classes[label]) for path, label in sorted(self.labels.items())],
            splits={name: sorted(paths) for name, paths in sorted(self.splits.items())},
            problems=self.problems,
        )


# --------------------------------------------------------------------------- UCF101


def _ucf_lists(source: Path, split_dir: Path | None) -> Path | None:
    return _first_dir(_split_file_dirs(source, split_dir, _UCF_LISTS), lambda d: (d / _UCF_CLASSES).is_file())


def _read_class_ind(path: Path) -> list[str]:
    """UCF101's `classInd.txt` (`1 ApplyEyeMakeup` per line) as class names by 0-based label."""
    names: dict[int, str] = {}
    for number, line in _read_lines(path):
        parts = line.split(None, 1)
        if len(parts) != 2 or not _INTEGER.fullmatch(parts[0]) or int(parts[0]) in names:
            raise LayoutError(f"{path}:{number}: expected '<new class id> <class name>', got {line!r}")
        names[int(parts[0])] = parts[1].strip()
    if sorted(names) != list(range(1, len(names) + 1)):
        raise LayoutError(f"{path}: class ids must run 1..N without gaps; download the split archive again")
    return [names[i] for i in sorted(names)]


def _without_label(line: str) -> str:
    """A trainlist line `Class/v_Class_g08_c01.avi 1` without its label (testlists have none)."""
    parts = line.rsplit(None, 1)
    return parts[0] if len(parts) == 2 and _INTEGER.fullmatch(parts[1]) else line


def _looks_like_ucf101(source: Path, split_dir: Path | None) -> bool:
    lists = _ucf_lists(source, split_dir)
    return lists is not None and _names_a_folder(source, _read_class_ind(lists / _UCF_CLASSES))


def _read_ucf101(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`UCF-101/<Class>/v_<Class>_gXX_cYY.avi` with `ucfTrainTestlist/`: labels from classInd.txt,
    folds from trainlist0N.txt / testlist0N.txt (a label column, if any, is not needed)."""
    lists = _ucf_lists(source, split_dir)
    if lists is None:
        where = ", ".join(map(str, _split_file_dirs(source, split_dir, _UCF_LISTS)))
        raise LayoutError(
            f"UCF101: no {_UCF_CLASSES} in {where}; unpack UCF101TrainTestSplits-RecognitionTask.zip "
            "next to UCF-101/ or pass --split-dir"
        )
    classes = _read_class_ind(lists / _UCF_CLASSES)
    disk = _Disk(source)
    out = _Builder(problems=list(disk.problems))
    out.label_by_class_folder(disk.videos, classes, _UCF_CLASSES)
    for list_file in sorted(lists.iterdir()):
        match = _UCF_LIST_FILE.fullmatch(list_file.name)
        if match is None:
            continue
        split = fold_split_name(match[1].lower(), int(match[2]))
        out.splits.setdefault(split, set())
        for _, line in _read_lines(list_file):
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
    return _first_dir(_split_file_dirs(source, split_dir, _HMDB_LISTS), lambda d: bool(_hmdb_split_files(d)))


def _looks_like_hmdb51(source: Path, split_dir: Path | None) -> bool:
    lists = _hmdb_lists(source, split_dir)
    if lists is None:
        return False
    return _names_a_folder(source, (name for name, _ in _hmdb_split_files(lists).values()))


def _read_hmdb51(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`<class>/<name>.avi` with `<class>_test_split<N>.txt` lines `<name>.avi <0|1|2>`:
    1 = train<N>, 2 = test<N>, 0 = unused (still an entry, in neither split)."""
    lists = _hmdb_lists(source, split_dir)
    if lists is None:
        where = ", ".join(map(str, _split_file_dirs(source, split_dir, _HMDB_LISTS)))
        raise LayoutError(
            f"HMDB51: no <class>_test_split<N>.txt in {where}; unpack test_train_splits.rar "
            "next to the video folders or pass --split-dir"
        )
    split_files = _hmdb_split_files(lists)
    classes = sorted({name for name, _ in split_files.values()})
    disk = _Disk(source)
    out = _Builder(problems=list(disk.problems))
    out.label_by_class_folder(disk.videos, classes, f"the split files of {lists.name}")
    for split_file, (name, fold) in split_files.items():
        for half in ("train", "test"):
            out.splits.setdefault(fold_split_name(half, fold), set())
        for number, line in _read_lines(split_file):
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


# --------------------------------------------------------------------------- Diving48


def _diving_files(source: Path, split_dir: Path | None) -> tuple[dict[str, Path], Path | None]:
    """The Diving48 split JSONs by split name, and the folder they are in."""

    def split_files(folder: Path) -> dict[str, Path]:
        found = {}
        for split, names in _DIVING_SPLITS.items():
            path = next((folder / name for name in names if (folder / name).is_file()), None)
            if path is not None:
                found[split] = path
        return found

    folder = _first_dir(_split_file_dirs(source, split_dir, _ANNOTATIONS), lambda d: bool(split_files(d)))
    return (split_files(folder), folder) if folder else ({}, None)


def _looks_like_diving48(source: Path, split_dir: Path | None) -> bool:
    return (source / _DIVING_VIDEOS).is_dir() and bool(_diving_files(source, split_dir)[0])


def _diving_classes(vocab_file: Path, labels: Iterable[int]) -> list[str]:
    """Class names from `Diving48_vocab.json` (4 sub-actions each, joined), `class_<i>` beyond it."""
    vocab = _read_json(vocab_file) if vocab_file.is_file() else []
    if not isinstance(vocab, list):
        raise LayoutError(f"{vocab_file}: expected a JSON list with one entry per class")
    names = [_DIVING_VOCAB_JOIN.join(map(str, item)) if isinstance(item, list) else str(item)
             for item in vocab]
    count = max(len(names), max(labels, default=-1) + 1)
    return names + [f"class_{i}" for i in range(len(names), count)]


def _read_diving48(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`rgb/<vid_name>.mp4` with `Diving48_V2_{train,test}.json` (or V1 names) and `Diving48_vocab.json`."""
    split_files, folder = _diving_files(source, split_dir)
    if folder is None:
        where = ", ".join(map(str, _split_file_dirs(source, split_dir, _ANNOTATIONS)))
        wanted = " or ".join(names[0] for names in _DIVING_SPLITS.values())
        raise LayoutError(f"Diving48: no {wanted} in {where}")
    disk = _Disk(source, source / _DIVING_VIDEOS)
    out = _Builder(problems=list(disk.problems))
    rows: list[tuple[str, str, int, str]] = []  # (split, vid_name, label, file)
    for split, path in split_files.items():
        out.splits[split] = set()
        items = _read_json(path)
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
        video, problem = disk.find(f"{_DIVING_VIDEOS}/{name}{_DIVING_VIDEO_EXT}", listed_in)
        out.note(problem)
        if video is not None:
            out.add(video, label, listed_in)
            out.assign(split, video, listed_in)
    return out.index("diving48", source, classes)


# --------------------------------------------------------------------------- Kinetics


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
    return _first_dir(_split_file_dirs(source, split_dir, _ANNOTATIONS), lambda d: bool(_kinetics_csvs(d)))


def _looks_like_kinetics(source: Path, split_dir: Path | None) -> bool:
    folders = _split_folders(source)
    if not folders:
        return False
    if _kinetics_csv_dir(source, split_dir) is not None:
        return True
    names = (_first_video(top) for tops in folders.values() for top in tops)
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
            videos, found = _scan(source, top)
            problems += found
            for path in videos:
                clips[split].setdefault(posixpath.splitext(posixpath.basename(path))[0], path)
    return clips, problems


def _read_kinetics(source: Path, split_dir: Path | None) -> DatasetIndex:
    """`<split>/<class>/<youtube_id>_<start>_<end>.mp4` (or flat `<split>/<clip>.mp4`), labelled by
    the official CSVs when present, else by the class folders."""
    folders = _split_folders(source)
    if not folders:
        raise LayoutError(f"Kinetics: {source} has none of the split folders {', '.join(SPLIT_FOLDERS)}")
    csv_dir = _kinetics_csv_dir(source, split_dir)
    if csv_dir is None and split_dir is not None:
        raise LayoutError(f"Kinetics: no train.csv / validate.csv / test.csv with youtube_id in {split_dir}")
    if csv_dir is None:
        return _read_class_folders(source, "kinetics")
    clips, problems = _kinetics_clips(source, folders)
    out = _Builder(splits={split: set() for split in folders}, problems=problems)
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


# --------------------------------------------------------------------------- folder and list


def _read_class_folders(root: Path, layout: str) -> DatasetIndex:
    """`<class>/...video` below the root, or below each top-level split folder if there are any;
    classes are the sorted union of the class folders holding videos."""
    folders = _split_folders(root)
    out = _Builder()
    found: list[tuple[str | None, str, str]] = []  # (split, class folder, path)
    for split, tops in folders.items() if folders else [(None, [root])]:
        if split is not None:
            out.splits[split] = set()
        for top in tops:
            videos, problems = _scan(root, top)
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


def _looks_like_folder(source: Path, split_dir: Path | None) -> bool:
    children = (child for child in source.iterdir() if child.is_dir() and not child.name.startswith("."))
    return any(_first_video(child) is not None for child in children)


def _read_folder(source: Path, split_dir: Path | None) -> DatasetIndex:
    return _read_class_folders(source, "folder")


def _parse_list_line(line: str) -> tuple[str, str, str | None] | None:
    """`path label` or `path label split`, splitting at the last whitespace so paths may hold
    spaces; the reading whose path has a video extension wins (two columns first)."""
    path_label = line.rsplit(None, 1)
    if len(path_label) == 2 and _has_video_extension(path_label[0]):
        return path_label[0], path_label[1], None
    path_label_split = line.rsplit(None, 2)
    if len(path_label_split) == 3 and _has_video_extension(path_label_split[0]):
        return path_label_split[0], path_label_split[1], path_label_split[2]
    return None


def _read_list(source: Path, split_dir: Path | None) -> DatasetIndex:
    """A text file of `path label [split]` lines, paths relative to its folder; labels are all
    0-based integers (classes `class_<i>`) or else class names (classes sorted)."""
    root = source.parent
    out = _Builder()
    rows = []
    for number, line in _read_lines(source):
        parsed = _parse_list_line(line)
        if parsed is None:
            why = f"expected '<video path> <label> [<split>]', got {line!r}"
            out.problems.append((f"{source.name}:{number}", why))
        else:
            rows.append(parsed)
    labels = {label for _, label, _ in rows}
    if all(_INTEGER.fullmatch(label) for label in labels):
        label_of = {label: int(label) for label in labels}
        classes = [f"class_{i}" for i in range(max(label_of.values(), default=-1) + 1)]
    else:
        classes = sorted(labels)
        label_of = {name: label for label, name in enumerate(classes)}
    for raw, label, split in rows:
        if split is not None:
            out.splits.setdefault(split, set())
        path, problem = _find_listed(root, raw, source.name)
        out.note(problem)
        if path is not None:
            out.add(path, label_of[label], source.name)
            if split is not None:
                out.assign(split, path, source.name)
    return out.index("list", root, classes)


def _find_listed(root: Path, raw: str, listed_in: str) -> tuple[str | None, tuple[str, str] | None]:
    """`raw` as a safe path to an existing file below `root`, or None and the problem."""
    rel, why = _normalise(raw)
    if rel is None:
        return None, (raw, f"{why} (in {listed_in})")
    if not _inside(root, root / rel):
        return None, (rel, f"symlink leads outside the dataset root; refused (in {listed_in})")
    if not (root / rel).is_file():
        return None, (rel, f"listed in {listed_in} but missing on disk")
    return rel, None


_READERS: dict[str, Callable[[Path, Path | None], DatasetIndex]] = {
    "ucf101": _read_ucf101,
    "hmdb51": _read_hmdb51,
    "diving48": _read_diving48,
    "kinetics": _read_kinetics,
    "folder": _read_folder,
    "list": _read_list,
}
_DETECTORS: list[tuple[str, Callable[[Path, Path | None], bool]]] = [
    ("ucf101", _looks_like_ucf101),
    ("hmdb51", _looks_like_hmdb51),
    ("diving48", _looks_like_diving48),
    ("kinetics", _looks_like_kinetics),
    ("folder", _looks_like_folder),
]
