"""``fame visualize-masks``: look at the soft maps, the binary masks and the merged clips.

For each chosen video it takes one clip (by default exactly the stored mask window nearest
the middle of the video), and shows

* the clip's frames,
* its cached soft foreground map (steps 1-4 of FAME) as a heat map over the frames,
* the binary mask at ``beta`` (step 5; ``"auto"``: fitted to the clip's map), the frame darkened outside it,
* the merged clip (step 6): its own frames inside the mask, the clip of another chosen video
  (a random derangement, seeded) outside it, as training makes them;
* with a checkpoint, the encoder's class-agnostic activation maps over the clip.

It writes a PNG contact sheet and (``format`` gif or mp4) an animation per video, an
``index.html`` showing them all with mask statistics, ``report.json``, and, when ground
truth is found (``fame synth`` data, or a folder in the format of ``ground_truth.py``),
``mask_quality.json``. ``compare`` adds the soft maps of other mask methods
(``pipelines.masks.methods``), computed from the cached frames of the same clips, as rows of
the contact sheets and as columns of the quality report, so methods are judged side by side.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.atomic_files import atomic_write_json, json_safe
from pipelines.data.cache import CacheError, open_cache, video_id_for
from pipelines.data.clips import clip_span
from pipelines.data.video import VideoError
from pipelines.evaluate.bg_swap import PLATE_SHARE
from pipelines.fame import foreground_fraction, merge_foreground_background, random_derangement, select_foreground
from pipelines.masks.clean_plates import camera_is_still, clean_plate
from pipelines.masks.ground_truth import GroundTruthError, clip_ground_truth, synth_ground_truth
from pipelines.masks.methods import MaskParameters, compute_video_masks
from pipelines.masks.quality import foreground_kept, mask_agreement, roc_auc
from pipelines.settings import SettingsError
from pipelines.train.augment import normalise
from pipelines.visualize import animation, contact_sheet as pictures
from pipelines.visualize.html_index import write_index
from pipelines.visualize.settings import FORMATS, VisualizeSettings  # noqa: F401  (re-exported)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")  # dropped from file names
#: the paper's input normalisation (Kinetics RGB mean and std), applied before the encoder;
#: the same values as ``augment.MEAN``/``augment.STD`` of the training clips
HEAT_ALPHA = 0.6  # weight of the heat map over the frame
DIM_OUTSIDE = 0.25  # brightness of the frame outside the binary mask
MASK_OUTLINE = (255, 255, 255)  # outline of the binary mask in the animation
TRUTH_OUTLINE = (0, 230, 0)  # outline of the true foreground
OUTLINE_WIDTH = 2  # pixels of the true foreground's outline on a contact sheet
DEFAULT_FPS = 25.0  # playback rate of videos whose cache records none


ProgressCallback = Callable[[int, int], None]  # (videos done, total)


# --------------------------------------------------------------------------- choosing


def choose_videos(cache, settings: VisualizeSettings) -> list[str]:
    """The named videos, or ``sample`` of the split drawn with the seed, spread over the classes.

    A sample is drawn class by class in turn (so every class shows up while there is room),
    then sorted by class and id.
    """
    if settings.videos:
        chosen = []
        for name in settings.videos:
            video_id = name if name in cache.video_ids else video_id_for(name)
            if video_id not in cache.video_ids:
                raise CacheError(
                    f"{name!r} is not a finished video of {cache.path}; `fame info --cache ...` lists them"
                )
            if video_id not in chosen:
                chosen.append(video_id)
        return chosen
    pool = cache.split(settings.split, settings.fold)
    if not pool:
        raise CacheError(f"{cache.path}: split {settings.split!r} has no finished videos")
    rng = np.random.default_rng(settings.seed)
    by_class: dict = {}
    for video_id in rng.permutation(pool):
        by_class.setdefault(cache.info(str(video_id))["label"], []).append(str(video_id))
    queues = [by_class[label] for label in sorted(by_class)]
    chosen = []
    while len(chosen) < min(settings.sample, len(pool)):
        for queue in queues:
            if queue and len(chosen) < settings.sample:
                chosen.append(queue.pop(0))
    return sorted(chosen, key=lambda v: (cache.info(v)["label"], v))


def clip_indices(info: dict, clip_len: int | None = None, stride: int | None = None) -> np.ndarray:
    """Frame indices of the clip shown for a video: ``clip_len`` frames ``stride`` apart.

    With the cache's own window and stride (the default) the clip is the stored window nearest
    the middle of the video, so the soft map shown is exactly the clip's. Otherwise the clip is
    centred in the video and takes the soft map of the window nearest it, as training does.
    """
    window = info["mask_window"]
    clip_len = clip_len or window["window"]
    stride = stride or window["stride"]
    span = clip_span(clip_len, stride)
    start = max(0, (info["num_frames"] - span) // 2)
    if (clip_len, stride) == (window["window"], window["stride"]):
        starts = np.asarray(info["window_starts"])
        start = int(starts[np.argmin(np.abs(starts - start))])
    # a video shorter than the clip repeats its last frame, as training's clips do
    return np.minimum(start + stride * np.arange(clip_len), info["num_frames"] - 1)


# --------------------------------------------------------------------------- the maths


def resize_map(soft: np.ndarray, height: int, width: int) -> np.ndarray:
    """A soft map (h, w float) resized bilinearly to height x width (a no-op when equal)."""
    if soft.shape == (height, width):
        return soft
    maps = torch.from_numpy(soft)[None, None]  # 1, 1, h, w
    return F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def resize_clip(clip: np.ndarray, height: int, width: int) -> np.ndarray:
    """T, h, w, 3 uint8 frames resized bilinearly to T, height, width, 3 (a no-op when equal)."""
    if clip.shape[1:3] == (height, width):
        return clip
    frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float()  # T, 3, h, w
    resized = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def motion_energy(clip: np.ndarray) -> np.ndarray:
    """``mean_t sum_c |x_{t+1} - x_t|`` of a T, H, W, 3 uint8 clip, RGB in [0, 1]: H, W in [0, 3]."""
    frames = clip.astype(np.float32) / 255
    return np.abs(np.diff(frames, axis=0)).sum(axis=-1).mean(axis=0)


def mask_statistics(clip: np.ndarray, mask: np.ndarray) -> dict:
    """Foreground share of a binary mask (H, W) and the clip's mean motion inside and outside it.

    Motion is ``motion_energy``: the mean over frame pairs of the summed RGB difference, in
    [0, 3]. NaN where a region is empty (a ratio with a still outside is +inf -> NaN).
    """
    energy = motion_energy(clip)  # H, W
    inside = float(energy[mask].mean()) if mask.any() else math.nan
    outside = float(energy[~mask].mean()) if (~mask).any() else math.nan
    ratio = inside / outside if outside > 0 else math.nan
    return {"foreground_share": float(mask.mean()), "motion_inside": inside, "motion_outside": outside,
            "motion_ratio": ratio}


def binary_mask(soft: np.ndarray, beta: float | str) -> tuple[np.ndarray, float]:
    """Step 5 on one map (H, W float): the mask at ``beta`` ("auto": fitted to the map) and the share used."""
    maps = torch.from_numpy(np.ascontiguousarray(soft, dtype=np.float32))[None]  # 1, H, W
    share = foreground_fraction(maps, beta)
    share = float(share[0]) if torch.is_tensor(share) else float(share)
    return select_foreground(maps, beta=share)[0].numpy(), share


def clip_mask_quality(soft: np.ndarray, truth: np.ndarray, *, beta: float | str = 0.5) -> dict:
    """How well a clip's soft map (H, W) finds the true foreground (T, H, W bool, one per frame).

    The clip has one map for all its frames, so it is compared with the union of the true
    foreground over the frames (every pixel the actor covers at some point): ROC-AUC of the
    soft map against it, the share of it inside the mask at ``beta`` ("auto": fitted to the
    map, the share used is ``beta``), the IoU of that mask with it, and its own share of the
    frame (when that exceeds ``beta`` not all of it can be kept).
    """
    union = np.asarray(truth, dtype=bool).any(axis=0)  # H, W
    mask, share = binary_mask(soft, beta)
    kept = float((mask & union).sum() / union.sum()) if union.any() else math.nan
    return {"roc_auc": roc_auc(soft, union), "foreground_kept": kept,
            "iou": mask_agreement(mask, union) if union.any() else math.nan, "beta": share,
            "truth_share": float(union.mean())}


QUALITY_MEASURES = ("roc_auc", "foreground_kept", "iou", "beta", "truth_share")


def summarise_quality(per_video: dict[str, dict]) -> dict:
    """Means over the videos with a measurement (NaNs and errors left out)."""
    measured = {k: v for k, v in per_video.items() if "error" not in v}
    mean = {}
    for key in QUALITY_MEASURES:
        values = [v[key] for v in measured.values() if key in v and not math.isnan(v[key])]
        mean[key] = float(np.mean(values)) if values else math.nan
    return {"videos": len(measured), "mean": mean, "per_video": per_video}


def compared_maps(cache, video_id: str, item: dict, methods: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The soft map of the item's window by each of ``methods``, computed from the cached frames
    of the whole video with the cache's window settings, at the clip's size (H, W float in [0, 1])."""
    if not methods:
        return {}
    info = cache.info(video_id)
    frames = cache.frames(video_id, np.arange(info["num_frames"]))  # T, H, W, 3
    s = cache.settings
    parameters = MaskParameters(window=s.get("window", 16), stride=s.get("stride", 2), hop=s.get("hop", 16))
    height, width = item["clip"].shape[1:3]
    maps = {}
    for method in methods:
        windows, _ = compute_video_masks(frames, method, parameters)  # G, h, w
        maps[method] = resize_map(windows[item["window"]].astype(np.float32) / 255, height, width)
    return maps


# --------------------------------------------------------------------------- the encoder


def load_encoder(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The backbone of a checkpoint (ours from ``fame pretrain``, an official FAME release, or
    a plain state dict; see ``checkpoint_formats``) in eval mode on ``device``, and what was loaded."""
    from pipelines.train.checkpoint_formats import CheckpointFormatError, load_backbone, read_checkpoint
    from pipelines.train.models import build_backbone

    weights = read_checkpoint(path)
    if not weights.arch:
        raise CheckpointFormatError(f"{path}: cannot tell which backbone the weights belong to")
    model = build_backbone(weights.arch)
    loaded = load_backbone(model, weights, arch=weights.arch)
    summary = {"path": str(path), "format": loaded.format, "arch": loaded.arch, "loaded": len(loaded.loaded),
               "missing": loaded.missing}
    return model.to(device).eval(), summary


@torch.no_grad()
def activation_maps(model: torch.nn.Module, clip: np.ndarray) -> np.ndarray:
    """Class-agnostic activation maps of an encoder over a clip (T, H, W, 3 uint8): T, H, W in [0, 1].

    The mean over channels of |feature_maps| (the last conv block), upsampled trilinearly to
    the clip's frames and min-max normalised over the whole clip.
    """
    device = next(model.parameters()).device
    x = torch.from_numpy(clip).to(device).float().div(255).permute(3, 0, 1, 2)[None]  # 1, 3, T, H, W
    maps = model.feature_maps(normalise(x)).float().abs().mean(dim=1, keepdim=True)  # 1, 1, T', H', W'
    maps = F.interpolate(maps, size=clip.shape[:3], mode="trilinear", align_corners=False)[0, 0]  # T, H, W
    low, high = maps.min(), maps.max()
    return ((maps - low) / (high - low) if high > low else torch.zeros_like(maps)).cpu().numpy()


# --------------------------------------------------------------------------- pictures


def slug(index: int, video_id: str) -> str:
    """A safe, unique file name stem for the index-th video."""
    stem = Path(video_id).stem if Path(video_id).suffix.lower() in VIDEO_SUFFIXES else video_id
    return f"{index:03d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:120]


def _columns(length: int, count: int) -> list[int]:
    return sorted({int(round(i)) for i in np.linspace(0, length - 1, min(count, length))})


def _short(video_id: str) -> str:
    """A video's file name without folders and extension, for captions."""
    return Path(video_id.replace("__", "/")).stem


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def _beta_label(asked: float | str, used: float) -> str:
    return f"auto ({used:.2f})" if asked == "auto" else f"{used:g}"


def render_sheet(item: dict, settings: VisualizeSettings):
    """The contact sheet of one video (a Pillow image): rows frames / soft map / mask / merged (/ activations)."""
    clip, soft, mask, merged, truth = item["clip"], item["soft"], item["mask"], item["merged"], item.get("truth")
    heat = pictures.heat_colours(soft)
    picked = _columns(len(clip), settings.columns)
    masked = []
    for t in picked:
        tile = pictures.dim_outside(clip[t], mask, DIM_OUTSIDE)
        if truth is not None:
            tile = pictures.draw_outline(tile, truth[t], TRUTH_OUTLINE, width=OUTLINE_WIDTH)
        masked.append(tile)
    rows = [
        (f"frames ({len(clip)}-frame clip, stride {item['stride']})", [clip[t] for t in picked]),
        (f"soft map, --masks {item.get('method', 'cache')} (heat overlay, bright = foreground)", [pictures.blend(clip[t], heat, HEAT_ALPHA) for t in picked]),
        *[(f"soft map, --masks {method} (computed for comparison)",
           [pictures.blend(clip[t], pictures.heat_colours(other), HEAT_ALPHA) for t in picked])
          for method, other in item.get("compared", {}).items()],
        (f"binary mask, beta={_beta_label(settings.beta, item['beta'])} (outside darkened"
         + ("; green: true foreground)" if truth is not None else ")"), masked),
        (f"merged: this clip inside the mask, {_short(item['background_from'])} outside", [merged[t] for t in picked]),
    ]
    if item.get("plate") is not None:
        rows.append((f"clean plate: the clip without its subject ({item['plate_subject']}, {item['plate_camera']} camera),"
                     " the background the swap test sets paste onto", [item["plate"][t] for t in picked]))
    if item.get("activations") is not None:
        acts = pictures.heat_colours(item["activations"])
        label = f"encoder activations ({item.get('encoder', 'checkpoint')})"
        rows.append((label, [pictures.blend(clip[t], acts[t], HEAT_ALPHA) for t in picked]))
    stats, quality = item["statistics"], item.get("quality") or {}
    line = (f"foreground share {_number(stats['foreground_share'])} · motion inside {_number(stats['motion_inside'])}"
            f" / outside {_number(stats['motion_outside'])}")
    if "roc_auc" in quality:
        line += (f" · ROC-AUC {_number(quality['roc_auc'])} · truth kept {_number(quality['foreground_kept'])}"
                 f" · IoU {_number(quality['iou'])}")
    title = [f"{item['video_id']}  (class {item['class_name']})", line]
    return pictures.contact_sheet(rows, title=title, column_labels=[f"frame {item['frames'][t]}" for t in picked])


def render_animation_frames(item: dict) -> list[np.ndarray]:
    """One picture per clip frame: original | soft map + mask outline | merged (| activations)."""
    clip, mask, merged = item["clip"], item["mask"], item["merged"]
    heat = pictures.heat_colours(item["soft"])
    edge = pictures.boundary(mask)
    labels = ["original", "soft map + mask outline", "merged"]
    acts = item.get("activations")
    if acts is not None:
        labels.append("encoder activations")
        acts = pictures.heat_colours(acts)
    frames = []
    for t in range(len(clip)):
        soft_panel = pictures.blend(clip[t], heat, HEAT_ALPHA)
        soft_panel[edge] = MASK_OUTLINE
        panels = [clip[t], soft_panel, merged[t]]
        if acts is not None:
            panels.append(pictures.blend(clip[t], acts[t], HEAT_ALPHA))
        footer = f"{item['video_id']} · frame {item['frames'][t]} ({t + 1}/{len(clip)})"
        frames.append(pictures.side_by_side(panels, labels, footer))
    return frames


# --------------------------------------------------------------------------- the run


def _load(cache, video_id: str, settings: VisualizeSettings) -> dict:
    """Clip, soft map and binary mask of one video (raises VideoError/ValueError when unusable)."""
    info = cache.info(video_id)
    indices = clip_indices(info, settings.clip_len, settings.stride)
    clip = cache.frames(video_id, indices)  # T, H, W, 3
    height, width = clip.shape[1:3]
    soft = resize_map(cache.soft_mask(video_id, indices).astype(np.float32) / 255, height, width)  # H, W
    mask, share = binary_mask(soft, settings.beta)  # H, W
    return {"video_id": video_id, "path": info["path"], "class_name": info.get("class_name"),
            "label": info.get("label"), "frames": [int(i) for i in indices],
            "window": cache.window_index(video_id, indices), "fps": float(info.get("fps") or DEFAULT_FPS),
            "stride": int(indices[1] - indices[0]) if len(indices) > 1 else 1,
            "clip": clip, "soft": soft, "mask": mask, "beta": share, "method": cache.mask_method[0]}


def plate_of(item: dict) -> dict:
    """The clean plate of an item's clip (``pipelines.masks.clean_plates``), as the swap test sets
    make it: without the true foreground of each frame when there is ground truth, else
    without the top ``PLATE_SHARE`` of the soft map. ``{"plate": T, H, W, 3 uint8,
    "plate_subject", "plate_camera"}``."""
    clip = torch.from_numpy(np.ascontiguousarray(item["clip"])).permute(3, 0, 1, 2)  # 3, T, H, W
    truth = item.get("truth")
    if truth is not None:
        subject, described = torch.from_numpy(np.asarray(truth, dtype=bool)), "true foreground removed"
    else:
        share = max(float(item["beta"]), PLATE_SHARE)
        subject = select_foreground(torch.from_numpy(item["soft"])[None], beta=share)[0]
        described = f"top {share:g} of the soft map removed"
    if subject.dim() == 2:
        subject = subject[None].expand(clip.shape[1], -1, -1)
    still = camera_is_still(clip, subject)
    plate = clean_plate(clip, subject, still=still)
    return {"plate": plate.permute(1, 2, 3, 0).numpy(), "plate_subject": described,
            "plate_camera": "still" if still else "moving"}


def merge_with_backgrounds(items: list[dict], seed: int) -> list[dict]:
    """The items, each with its FAME-merged clip (step 6): its own foreground on the clip of
    ``perm[i]`` (a seeded derangement), resized to its size. Returns new dicts; ``items`` is
    left as it is."""
    generator = torch.Generator().manual_seed(seed)
    perm = random_derangement(len(items), generator=generator).tolist()
    merged_items = []
    for item, other in zip(items, perm):
        height, width = item["clip"].shape[1:3]
        background = resize_clip(items[other]["clip"], height, width)  # T, H, W, 3
        clip = torch.from_numpy(item["clip"]).permute(3, 0, 1, 2)[None]  # 1, 3, T, H, W
        backgrounds = torch.from_numpy(background).permute(3, 0, 1, 2)[None]  # 1, 3, T, H, W
        merged = merge_foreground_background(clip, torch.from_numpy(item["mask"])[None], backgrounds=backgrounds)[0]
        merged_items.append({**item, "merged": merged.permute(1, 2, 3, 0).numpy(),  # T, H, W, 3 uint8
                             "background_from": items[other]["video_id"]})
    return merged_items


def run_visualize(settings: VisualizeSettings, progress: ProgressCallback | None = None) -> dict:
    """Write the pictures, ``index.html`` and the reports; returns the report (as in ``report.json``)."""
    settings.validate()
    started = time.perf_counter()
    cache = open_cache(settings.cache, source=settings.source)
    own_method = cache.mask_method[0]
    compare = tuple(m for m in dict.fromkeys(settings.compare) if m != own_method)
    chosen = choose_videos(cache, settings)
    if settings.ground_truth:
        truth_folder = Path(settings.ground_truth)
    else:
        truth_folder = synth_ground_truth(cache.dataset.get("root"))
    if truth_folder is not None and not truth_folder.is_dir():
        raise ValueError(f"--ground-truth {truth_folder}: no such folder")
    model, checkpoint = None, None
    if settings.checkpoint:
        from pipelines.train.devices import resolve_device

        model, checkpoint = load_encoder(settings.checkpoint, resolve_device(settings.device))

    items, skipped = [], []
    for video_id in chosen:
        try:
            items.append(_load(cache, video_id, settings))
        except (VideoError, ValueError) as error:
            skipped.append({"video_id": video_id, "reason": getattr(error, "reason", None) or str(error)})
    if not items:
        reasons = list(dict.fromkeys(s["reason"] for s in skipped))  # distinct, in order
        raise ValueError(f"none of the {len(chosen)} chosen videos could be shown: " + "; ".join(reasons[:3]))
    items = merge_with_backgrounds(items, settings.seed)

    out = Path(settings.output)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    quality = {method: {} for method in (own_method, *compare)}
    videos = []
    for index, item in enumerate(items):
        item["statistics"] = mask_statistics(item["clip"], item["mask"])
        item["compared"] = compared_maps(cache, item["video_id"], item, compare)
        if truth_folder is not None:
            height, width = item["clip"].shape[1:3]
            try:
                item["truth"] = clip_ground_truth(
                    truth_folder, item["path"], item["frames"], height=height, width=width
                )
                item["quality"] = clip_mask_quality(item["soft"], item["truth"], beta=settings.beta)
                item["compared_quality"] = {method: clip_mask_quality(soft, item["truth"], beta=settings.beta)
                                            for method, soft in item["compared"].items()}
            except GroundTruthError as error:
                item["quality"] = {"error": str(error)}
                item["compared_quality"] = {method: item["quality"] for method in compare}
            quality[own_method][item["video_id"]] = item["quality"]
            for method, measured in item["compared_quality"].items():
                quality[method][item["video_id"]] = measured
        item.update(plate_of(item))
        if model is not None:
            item["activations"] = activation_maps(model, item["clip"])
            item["encoder"] = checkpoint["arch"]
        stem = slug(index, item["video_id"])
        files = {"sheet": f"videos/{stem}.png"}
        render_sheet(item, settings).save(out / files["sheet"])
        if settings.format != "png":
            files["animation"] = f"videos/{stem}.{settings.format}"
            writer = animation.write_gif if settings.format == "gif" else animation.write_mp4
            writer(render_animation_frames(item), out / files["animation"], fps=item["fps"] / item["stride"])
        keys = ("video_id", "path", "class_name", "label", "frames", "window", "beta", "background_from", "statistics",
                "plate_subject", "plate_camera")
        videos.append({**{k: item[k] for k in keys}, "quality": item.get("quality"),
                       "compared_quality": item.get("compared_quality"), "slug": stem, "files": files})
        for key in ("clip", "merged", "activations", "truth", "compared", "plate"):  # free the arrays as we go
            item.pop(key, None)
        if progress:
            progress(index + 1, len(items))

    report = {
        "settings": asdict(settings),
        "cache": str(cache.path),
        "checkpoint": checkpoint,
        "videos": videos,
        "skipped": skipped,
        "mask_quality": None,
    }
    if truth_folder is not None:
        report["mask_quality"] = {"ground_truth": str(truth_folder), "beta": settings.beta,
                                  "truth": "union of the true foreground over the clip's frames",
                                  "method": own_method, **summarise_quality(quality[own_method]),
                                  "methods": {method: summarise_quality(per_video) for method, per_video in quality.items()}}
        atomic_write_json(out / "mask_quality.json", report["mask_quality"])
    report["seconds"] = time.perf_counter() - started
    atomic_write_json(out / "report.json", report)
    report["index"] = str(write_index(out, json_safe(report)))
    return json_safe(report)
