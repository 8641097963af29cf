"""Ground-truth foreground masks of a dataset's videos, for measuring mask quality.

A ground-truth folder mirrors the dataset: for the video ``<Class>/<name>.avi`` (its path
below the dataset root) it holds either

* ``<Class>/<name>.npz`` with ``mask``: the foreground of every decoded frame, either a
  T, H, W array (bool, or any number type: non-zero is foreground) or, as ``fame synth``
  writes it, ``np.packbits`` of that array together with ``shape`` = (T, H, W); or
* ``<Class>/<name>/`` holding one PNG per frame, named by the 0-based frame index
  (``0.png``, ``00012.png``, ... any zero padding); a non-zero pixel in any channel is
  foreground. Only the frames a clip needs must be present.

Masks may have any resolution (usually the source video's); they are resized to the cached
frames with nearest-neighbour sampling. ``fame synth`` data is found without being named:
its ground truth lies in ``<dataset root>/../ground_truth``.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import numpy as np

from pipelines.data.synth import unpack_ground_truth

#: where ``fame synth`` writes its masks, beside the dataset root
SYNTH_FOLDER = "ground_truth"


class GroundTruthError(Exception):
    """The ground truth of one video is missing or unusable; the message says why, in one line."""


def synth_ground_truth(dataset_root: str | os.PathLike | None) -> Path | None:
    """``<dataset root>/../ground_truth`` when it exists (``fame synth`` data), else None."""
    if not dataset_root:
        return None
    folder = Path(dataset_root).parent / SYNTH_FOLDER
    return folder if folder.is_dir() else None


def resize_nearest(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of ..., h, w masks to ..., height, width (pixel centres matched)."""
    h, w = masks.shape[-2:]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
    return masks[..., rows[:, None], cols[None, :]]


#: what to do about a ground-truth folder that does not serve every video
FIX = ("regenerate it (fame synth writes one), point --ground-truth-dir at a folder in the format of "
       "docs/visualize.md, or leave --ground-truth out to use the cache's masks")


def _unreadable(path: Path, error: Exception) -> GroundTruthError:
    return GroundTruthError(f"{path}: not a readable .npz of masks ({type(error).__name__}: {error}); {FIX}")


def _from_npz(path: Path, indices: np.ndarray) -> np.ndarray:
    try:
        with np.load(path) as data:
            if "mask" not in data:
                raise GroundTruthError(f"{path}: has no array named 'mask'; {FIX}")
            mask = data["mask"]
            if "shape" in data:  # bit-packed, as fame synth writes it
                mask = unpack_ground_truth(mask, data["shape"])
    except GroundTruthError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # truncated, not a zip, not masks
        raise _unreadable(path, error) from None
    if mask.ndim != 3:
        raise GroundTruthError(f"{path}: 'mask' must be T, H, W, got shape {mask.shape}")
    if indices.max() >= len(mask):
        raise GroundTruthError(f"{path}: has {len(mask)} frames, the clip needs frame {int(indices.max())}")
    return mask[indices] != 0


def _from_pngs(folder: Path, indices: np.ndarray) -> np.ndarray:
    from PIL import Image

    by_index = {int(p.stem): p for p in folder.iterdir() if p.suffix.lower() == ".png" and re.fullmatch(r"\d+", p.stem)}
    missing = [int(i) for i in indices if int(i) not in by_index]
    if missing:
        raise GroundTruthError(f"{folder}: no PNG for frame(s) {missing[:5]} (name them by 0-based frame index)")
    frames = []
    for i in indices:
        with Image.open(by_index[int(i)]) as image:
            pixels = np.asarray(image)
        frames.append(pixels.any(axis=-1) if pixels.ndim == 3 else pixels != 0)
    if len({f.shape for f in frames}) != 1:
        raise GroundTruthError(f"{folder}: the PNGs differ in size")
    return np.stack(frames)


def _files_of(folder: Path, relative_path: str) -> tuple[Path, Path]:
    base = folder / relative_path
    return base.with_suffix(".npz"), base.with_suffix("")


def check_ground_truth(folder: str | os.PathLike, relative_paths: list[str]) -> None:
    """Raise GroundTruthError (one line: the file, what is wrong, what to do) unless every video
    of ``relative_paths`` has masks in ``folder``: an ``.npz`` that opens and holds ``mask``, or
    a folder of PNGs. Checked before a run starts, so that it does not stop halfway (or inside a
    loader worker); cheap: an ``.npz``'s arrays are not decompressed."""
    folder = Path(folder)
    missing = []
    for relative in relative_paths:
        npz, pngs = _files_of(folder, relative)
        if npz.is_file():
            try:
                with np.load(npz) as data:
                    if "mask" not in data.files:
                        raise GroundTruthError(f"{npz}: has no array named 'mask'; {FIX}")
            except GroundTruthError:
                raise
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                raise _unreadable(npz, error) from None
        elif not (pngs.is_dir() and any(p.suffix.lower() == ".png" for p in pngs.iterdir())):
            missing.append(npz)
    if missing:
        more = f" (and {len(missing) - 1} other video(s))" if len(missing) > 1 else ""
        raise GroundTruthError(f"{missing[0]}: missing, nor is there a folder of PNGs {missing[0].with_suffix('')}/"
                               f"{more}; {FIX}")


def clip_ground_truth(
    folder: str | os.PathLike, relative_path: str, indices, *, height: int, width: int
) -> np.ndarray:
    """The true foreground of frames ``indices`` of one video, at height x width: T, H, W bool.

    ``relative_path`` is the video's path below the dataset root. Raises GroundTruthError
    when the folder has no (usable) masks for it.
    """
    indices = np.asarray(indices, dtype=np.intp)
    npz, pngs = _files_of(Path(folder), relative_path)
    if npz.is_file():
        masks = _from_npz(npz, indices)
    elif pngs.is_dir():
        masks = _from_pngs(pngs, indices)
    else:
        raise GroundTruthError(f"no ground truth for {relative_path} (looked for {npz} and {pngs}/); {FIX}")
    return resize_nearest(masks, height, width)
