"""What reading a dataset produces: the `DatasetIndex` of its videos, labels and splits, the
`IndexBuilder` each reader fills, the `LayoutError` a source that cannot be used raises, and
the one spelling of a split's name in a fold (`fold_split_name`)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path


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


def name_key(name: str) -> str:
    """Key for matching names whatever their case and Unicode normal form (UCF101's lists
    spell `HandStandPushups`, its folder `HandstandPushups`; macOS writes NFD names)."""
    return unicodedata.normalize("NFC", name).casefold()


@dataclass
class IndexBuilder:
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
        label_of = {name_key(name): label for label, name in enumerate(classes)}
        unknown_folders = set()
        for path in videos:
            folder, slash, _ = path.partition("/")
            label = label_of.get(name_key(folder))
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
