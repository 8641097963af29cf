"""Reading video datasets as their official downloads ship them.

`discover_dataset(source)` turns what a user already has on disk into a `DatasetIndex`: the
class names, every video that exists and has a label, the official splits, and a list of
problems (listed-but-missing videos, refused paths, unparsable lines), one line each.
Parsing never opens a video.

One reader per layout, in a module per dataset family (`ucf101_hmdb51`, `diving48`,
`kinetics`, `folders`); `detect_layout` picks one for `--layout auto`. What they produce is in
`index` (`DatasetIndex`, `LayoutError`); `paths` reads the files safely: every path named by a
split or list file must stay inside the dataset root (absolute paths, `..` that leaves the root
and symlinks that lead out are refused and reported, never followed), and folder scans skip
hidden names and do not follow symlinked folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipelines.data.layouts.diving48 import DIVING_SPLITS, DIVING_VIDEOS, looks_like_diving48, read_diving48
from pipelines.data.layouts.folders import looks_like_folder, read_folder, read_list
from pipelines.data.layouts.index import DatasetIndex, LayoutError, VideoEntry, fold_split_name
from pipelines.data.layouts.kinetics import looks_like_kinetics, read_kinetics
from pipelines.data.layouts.paths import SPLIT_FOLDERS, VIDEO_EXTENSIONS, checked_split_dir, existing_path
from pipelines.data.layouts.ucf101_hmdb51 import (
    HMDB_LISTS,
    UCF_CLASSES,
    UCF_LISTS,
    looks_like_hmdb51,
    looks_like_ucf101,
    read_hmdb51,
    read_ucf101,
)

__all__ = [
    "LAYOUTS",
    "SPLIT_FOLDERS",
    "VIDEO_EXTENSIONS",
    "DatasetIndex",
    "LayoutError",
    "VideoEntry",
    "detect_layout",
    "discover_dataset",
    "fold_split_name",
]

LAYOUTS = ("ucf101", "hmdb51", "diving48", "kinetics", "folder", "list")
_PROBLEMS_IN_ERROR = 3  # problems quoted when a source yields no video at all


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
    source = existing_path(Path(source).expanduser())
    split_dir = checked_split_dir(split_dir)
    if source.is_file():
        return "list"
    for layout, looks_like in _DETECTORS:
        if looks_like(source, split_dir):
            return layout
    raise LayoutError(
        f"{source}: no known dataset layout. Looked for: {UCF_CLASSES} in {UCF_LISTS}/ (UCF101); "
        f"<class>_test_split1.txt in {HMDB_LISTS}/ (HMDB51); {DIVING_VIDEOS}/ with "
        f"{DIVING_SPLITS['train'][0]} (Diving48); train|val|test/<class>/<youtube_id>_<start>_<end>.mp4 "
        "or Kinetics CSVs (Kinetics); <class>/<video> folders (folder). Check the path, pass "
        "--split-dir if the split files live elsewhere, or name the layout with --layout."
    )


def discover_dataset(source: Path, layout: str = "auto", split_dir: Path | None = None) -> DatasetIndex:
    """Index the dataset at `source` (a folder, or a list file for the list layout).

    >>> index = discover_dataset(Path("data/UCF-101"))  # doctest: +SKIP
    >>> index.layout, len(index.classes), index.split_names()[:2]  # doctest: +SKIP
    ('ucf101', 101, ['test1', 'test2'])
    """
    source = existing_path(Path(source).expanduser())
    split_dir = checked_split_dir(split_dir)
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


_READERS: dict[str, Callable[[Path, Path | None], DatasetIndex]] = {
    "ucf101": read_ucf101,
    "hmdb51": read_hmdb51,
    "diving48": read_diving48,
    "kinetics": read_kinetics,
    "folder": read_folder,
    "list": read_list,
}
_DETECTORS: list[tuple[str, Callable[[Path, Path | None], bool]]] = [
    ("ucf101", looks_like_ucf101),
    ("hmdb51", looks_like_hmdb51),
    ("diving48", looks_like_diving48),
    ("kinetics", looks_like_kinetics),
    ("folder", looks_like_folder),
]
