"""``fame synth``: a small synthetic action dataset in UCF101 layout.

Each video is one textured shape moving over a static textured background. The class is
the *motion* alone, and it survives the training augmentations (a horizontal flip maps
every class onto itself: "horizontal" stays horizontal, a clockwise circle becomes an
anticlockwise one, both diagonals belong to the same class). Two properties make
background bias real, as in natural video:

* every video's background is unique to it, so two clips of one video can be matched by
  background alone (what plain MoCo is tempted to learn);
* the foreground's appearance is drawn from a small pool shared by all classes, so neither
  the instance nor the class can be told from the foreground's looks: only its motion
  carries the class.

Ground-truth foreground masks are written to a side folder (``ground_truth/``), one
``.npz`` per video holding ``mask`` (T,H,W bool, bit-packed) so that mask quality can be
measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.atomic_files import atomic_path
from pipelines.settings import SettingsError

#: The motion classes: name -> description. Each is invariant under a horizontal flip.
MOTIONS = {
    "Horizontal": "oscillates left and right",
    "Vertical": "oscillates up and down",
    "Circle": "travels around a circle, either direction",
    "Pulse": "stays in place and grows and shrinks",
    "Diagonal": "oscillates along either diagonal",
    "Zigzag": "moves up and down quickly while drifting sideways slowly",
    "Still": "stays still apart from a slight tremor",
    "Orbit8": "traces a figure of eight",
}


@dataclass(frozen=True)
class SynthSettings:
    """How ``fame synth`` makes its dataset; saved as ``synth.json`` in the output."""

    out_dir: str  # where the dataset is written
    classes: int = 5  # number of motion classes (at most len(MOTIONS))
    videos_per_class: int = 20
    seed: int = 0
    frames: int = 64  # frames per video
    fps: float = 25.0
    height: int = 120
    width: int = 160
    shape_size: float = 0.3  # foreground shape size, fraction of the shorter side
    appearances: int = 4  # size of the foreground appearance pool shared by all classes
    noise: float = 2.0  # per-frame sensor noise (std, 0..255 scale)
    folds: int = 3  # UCF101-style train/test folds
    test_every: int = 4  # in fold k, video i is a test video when i % test_every == k - 1
    codec: str = "mpeg4"  # "mpeg4" (AVI, as UCF101 ships) or "h264" (as Kinetics ships)
    keyframe_interval: int = 12  # frames from one keyframe to the next (PyAV's default; x264's own is 250)

    def validate(self) -> None:
        """Raise SettingsError for values no dataset can be made with."""
        if not 1 <= self.classes <= len(MOTIONS):
            raise SettingsError(f"--classes must be between 1 and {len(MOTIONS)}, got {self.classes}")


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth random field in [0,1], H,W: bilinear upsampling of a coarse random grid."""
    grid = rng.random((cells + 1, cells + 1))
    ys = np.linspace(0, cells, height)
    xs = np.linspace(0, cells, width)
    y0 = np.clip(ys.astype(int), 0, cells - 1)
    x0 = np.clip(xs.astype(int), 0, cells - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static, unique, textured background: H,W,3 float in [0,255]."""
    palette = rng.uniform(30, 225, size=(3, 3))  # three random colours
    weights = np.stack([_smooth_noise(rng, height, width, int(rng.integers(2, 6))) for _ in range(3)], -1)
    weights = weights / weights.sum(-1, keepdims=True)
    image = weights @ palette  # H,W,3
    # stripes or checks at a random angle and frequency: high-frequency texture
    yy, xx = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, math.pi)
    frequency = rng.uniform(0.08, 0.35)
    texture = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * frequency)
    image = image + rng.uniform(10, 30) * texture[..., None]
    return np.clip(image, 0, 255)


def make_appearance(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured foreground sprite: (size,size,3 float colours, size,size bool shape)."""
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    kind = int(rng.integers(0, 3))
    if kind == 0:  # disc
        shape = (yy - centre) ** 2 + (xx - centre) ** 2 <= (size / 2) ** 2
    elif kind == 1:  # square
        shape = np.ones((size, size), bool)
    else:  # diamond
        shape = np.abs(yy - centre) + np.abs(xx - centre) <= size / 2
    colours = rng.uniform(20, 235, size=(2, 3))
    checks = ((yy // max(2, size // 4)) + (xx // max(2, size // 4))) % 2
    sprite = np.where(checks[..., None] == 1, colours[0], colours[1])
    return sprite, shape


def motion_path(
    motion: str, rng: np.random.Generator, frames: int, height: int, width: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre (y, x) and scale of the shape for one motion class."""
    t = np.arange(frames, dtype=np.float64)
    period = rng.uniform(18, 32)  # frames per cycle
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(2 * math.pi * t / period + phase)
    margin = size * 0.75
    cy = rng.uniform(margin + height * 0.15, height - margin - height * 0.15)
    cx = rng.uniform(margin + width * 0.2, width - margin - width * 0.2)
    ay = min(cy - margin, height - margin - cy) * rng.uniform(0.7, 1.0)
    ax = min(cx - margin, width - margin - cx) * rng.uniform(0.7, 1.0)
    scale = np.ones(frames)
    y = np.full(frames, cy)
    x = np.full(frames, cx)
    if motion == "Horizontal":
        x = cx + ax * wave
    elif motion == "Vertical":
        y = cy + ay * wave
    elif motion == "Circle":
        direction = rng.choice([-1.0, 1.0])
        angle = 2 * math.pi * t / period * direction + phase
        radius = min(ax, ay)
        y, x = cy + radius * np.sin(angle), cx + radius * np.cos(angle)
    elif motion == "Pulse":
        scale = 1.0 + 0.45 * wave
    elif motion == "Diagonal":
        slope = rng.choice([-1.0, 1.0])
        amplitude = min(ax, ay)
        y, x = cy + amplitude * wave * slope, cx + amplitude * wave
    elif motion == "Zigzag":
        y = cy + ay * np.sin(4 * math.pi * t / period + phase)
        x = cx + ax * np.sin(math.pi * t / (2 * frames) + phase) * 0.5
    elif motion == "Still":
        y = cy + rng.normal(0, 0.6, frames)
        x = cx + rng.normal(0, 0.6, frames)
    elif motion == "Orbit8":
        angle = 2 * math.pi * t / period + phase
        y, x = cy + ay * np.sin(2 * angle) * 0.8, cx + ax * np.sin(angle)
    else:
        raise ValueError(f"unknown motion {motion!r}; choose from {sorted(MOTIONS)}")
    return y, x, scale


def render_video(
    background: np.ndarray,
    sprite: np.ndarray,
    shape: np.ndarray,
    centres_y: np.ndarray,
    centres_x: np.ndarray,
    scales: np.ndarray,
    rng: np.random.Generator,
    *,
    noise: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste the sprite on the background along its path: (T,H,W,3 uint8, T,H,W bool mask)."""
    height, width = background.shape[:2]
    frames = len(centres_y)
    size = shape.shape[0]
    yy, xx = np.mgrid[0:height, 0:width]
    video = np.empty((frames, height, width, 3), np.uint8)
    masks = np.zeros((frames, height, width), bool)
    for index in range(frames):  # one vectorised paste per frame
        # sprite coordinates of every pixel (inverse mapping, nearest neighbour)
        sy = (yy - centres_y[index]) / scales[index] + (size - 1) / 2
        sx = (xx - centres_x[index]) / scales[index] + (size - 1) / 2
        iy, ix = np.rint(sy).astype(int), np.rint(sx).astype(int)
        inside = (iy >= 0) & (iy < size) & (ix >= 0) & (ix < size)
        iy, ix = np.clip(iy, 0, size - 1), np.clip(ix, 0, size - 1)
        mask = inside & shape[iy, ix]
        frame = np.where(mask[..., None], sprite[iy, ix], background)
        frame = frame + rng.normal(0, noise, frame.shape)
        video[index] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        masks[index] = mask
    return video, masks


def write_video(path: Path, frames: np.ndarray, fps: float, codec: str = "mpeg4", keyframe_interval: int = 12) -> None:
    """Write T,H,W,3 uint8 frames via PyAV: MPEG-4 Part 2 (as UCF101 ships) or H.264, with a
    keyframe every ``keyframe_interval`` frames (which decides what a random seek costs)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    container_format = "avi" if path.suffix == ".avi" else "mp4"
    # not durable: the data set is made again from its seed
    with atomic_path(path, durable=False) as partial, av.open(str(partial), mode="w", format=container_format) as container:
        stream = container.add_stream("libx264" if codec == "h264" else "mpeg4", rate=round(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = keyframe_interval
        if codec == "h264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        else:
            stream.bit_rate = 4_000_000
            stream.options = {"qscale": "2"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def ground_truth_path(out_dir: Path, relative_video_path: str) -> Path:
    """Where the mask side file of a video lives: ground_truth/<Class>/<stem>.npz."""
    return Path(out_dir) / "ground_truth" / Path(relative_video_path).with_suffix(".npz")


def unpack_ground_truth(packed: np.ndarray, shape) -> np.ndarray:
    """The T,H,W bool mask from its side-file form (``np.packbits`` of it, and its shape)."""
    shape = tuple(int(s) for s in shape)
    return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)


def load_ground_truth(out_dir: Path, relative_video_path: str) -> np.ndarray:
    """The T,H,W bool ground-truth foreground of one synthetic video."""
    with np.load(ground_truth_path(out_dir, relative_video_path)) as data:
        return unpack_ground_truth(data["mask"], data["shape"])


def write_dataset(settings: SynthSettings, progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the whole dataset; returns the video root (``OUT_DIR/UCF-101``)."""
    settings.validate()
    out = Path(settings.out_dir)
    root = out / "UCF-101"
    lists = out / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(settings.seed)
    size = max(4, int(settings.shape_size * min(settings.height, settings.width)))
    pool = [make_appearance(rng, size) for _ in range(settings.appearances)]
    names = list(MOTIONS)[: settings.classes]
    total = settings.classes * settings.videos_per_class
    train = {k: [] for k in range(1, settings.folds + 1)}
    test = {k: [] for k in range(1, settings.folds + 1)}
    done = 0
    for label, motion in enumerate(names):
        for index in range(settings.videos_per_class):
            # one generator per video: any video can be regenerated on its own
            video_rng = np.random.default_rng([settings.seed, label, index])
            extension = "mp4" if settings.codec == "h264" else "avi"
            relative = f"{motion}/v_{motion}_g{index + 1:02d}_c01.{extension}"
            background = make_background(video_rng, settings.height, settings.width)
            sprite, shape = pool[int(video_rng.integers(0, len(pool)))]
            ys, xs, scales = motion_path(motion, video_rng, settings.frames, settings.height, settings.width, size)
            frames, masks = render_video(background, sprite, shape, ys, xs, scales, video_rng, noise=settings.noise)
            write_video(root / relative, frames, settings.fps, settings.codec, settings.keyframe_interval)
            truth = ground_truth_path(out, relative)
            truth.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(truth, mask=np.packbits(masks), shape=np.array(masks.shape))
            for fold in range(1, settings.folds + 1):
                if index % settings.test_every == fold - 1:
                    test[fold].append(relative)
                else:
                    train[fold].append(f"{relative} {label + 1}")
            done += 1
            if progress:
                progress(done, total)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {name}\n" for i, name in enumerate(names)))
    for fold in range(1, settings.folds + 1):
        (lists / f"trainlist{fold:02d}.txt").write_text("".join(line + "\n" for line in train[fold]))
        (lists / f"testlist{fold:02d}.txt").write_text("".join(line + "\n" for line in test[fold]))
    (out / "synth.json").write_text(json.dumps({"settings": asdict(settings), "motions": {n: MOTIONS[n] for n in names}}, indent=2))
    return root
