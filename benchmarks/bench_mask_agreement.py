"""Offline (cached) masks vs the paper's online masks, and both vs ground truth.

For random training crops of `fame synth` videos (which have ground-truth foreground), it
compares what pretraining uses, the cached full-frame soft map of the nearest window
cropped and resized with the clip (``pipelines.data.clips.crop_resize_map``), with the paper's
online map, steps 1-4 computed on the cropped clip itself (``pipelines.fame``). Both are
binarised to the top ``beta`` of the crop (step 5). Reported: the IoU of the two binary
masks, and for each the ROC-AUC of the soft map and the share of the true foreground of
the clip kept inside the binary mask.

Run: python benchmarks/bench_mask_agreement.py [--videos 20] [--crops 4] [--beta 0.5]
     [--frame-codec jpeg] [--frame-quality 90] [--hop 16] [--colour-context 0] [--frames 64] [--masks paper]
     [--decoder pyav]
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from pipelines.data.cache import open_cache
from pipelines.data.clips import crop_resize_clip, crop_resize_map, random_resized_crop_box, sample_clip_indices
from pipelines.data.synth import SynthSettings, load_ground_truth, write_dataset
from pipelines.fame import select_foreground, soft_foreground_map
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess
from pipelines.masks.quality import foreground_kept, mask_agreement, roc_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--crops", type=int, default=4, help="random crops per video")
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame-codec", default="jpeg", help="preprocess --frame-codec (the online map sees these frames)")
    parser.add_argument("--frame-quality", type=int, default=90, help="preprocess --frame-quality")
    parser.add_argument("--hop", type=int, default=16, help="preprocess --hop (frames between mask windows)")
    parser.add_argument("--colour-context", type=int, default=0,
                        help="preprocess --colour-context (windows on each side pooled into step 4's histograms)")
    parser.add_argument("--frames", type=int, default=64, help="frames per synthetic video")
    parser.add_argument("--masks", default="paper", help="preprocess --masks: the method of the cached maps")
    parser.add_argument("--decoder", default="pyav", help="preprocess --decoder (pyav | decord)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="fame-masks-"))
    classes = 5
    write_dataset(SynthSettings(out_dir=str(work), classes=classes, videos_per_class=max(1, args.videos // classes),
                                frames=args.frames, height=240, width=320, seed=args.seed))
    run_preprocess(PreprocessSettings(source=str(work / "UCF-101"), cache=str(work / "c.zarr"), workers=1,
                                      frame_codec=args.frame_codec, frame_quality=args.frame_quality, hop=args.hop,
                                      colour_context=args.colour_context, masks=args.masks, decoder=args.decoder))
    reader = open_cache(work / "c.zarr")
    rng = np.random.default_rng(args.seed)
    rows = {k: [] for k in ("iou", "auc_offline", "auc_online", "kept_offline", "kept_online")}
    for vid in reader.video_ids:
        info = reader.info(vid)
        truth = load_ground_truth(work, info["path"])  # T, H0, W0 at source size
        for _ in range(args.crops):
            indices = sample_clip_indices(info["num_frames"], clip_len=16, stride=2, rng=rng)
            frames = reader.frames(vid, indices)
            box = random_resized_crop_box(info["height"], info["width"], rng=rng)
            flip = bool(rng.integers(0, 2))
            clip = crop_resize_clip(frames, box, args.crop, flip=flip)  # 3, T, S, S uint8
            offline = crop_resize_map(reader.soft_mask(vid, indices), box, args.crop, flip=flip,
                                      frame_shape=(info["height"], info["width"]))  # S, S
            online = soft_foreground_map(clip[None].float() / 255)[0]  # S, S
            # the clip's true foreground, brought to cache size, then cropped the same way
            scale_y = truth.shape[1] / info["height"]
            scale_x = truth.shape[2] / info["width"]
            ys = np.minimum((np.arange(info["height"]) * scale_y).astype(int), truth.shape[1] - 1)
            xs = np.minimum((np.arange(info["width"]) * scale_x).astype(int), truth.shape[2] - 1)
            union = truth[indices].any(0)[ys][:, xs].astype(np.uint8) * 255
            true_crop = crop_resize_map(union, box, args.crop, flip=flip).numpy() > 0.5
            if not true_crop.any() or true_crop.all():
                continue
            mask_off = select_foreground(offline[None], beta=args.beta)[0].numpy()
            mask_on = select_foreground(online[None], beta=args.beta)[0].numpy()
            rows["iou"].append(mask_agreement(mask_off, mask_on))
            rows["auc_offline"].append(roc_auc(offline.numpy(), true_crop))
            rows["auc_online"].append(roc_auc(online.numpy(), true_crop))
            rows["kept_offline"].append(foreground_kept(offline.numpy(), true_crop, beta=args.beta))
            rows["kept_online"].append(foreground_kept(online.numpy(), true_crop, beta=args.beta))
    n = len(rows["iou"])
    frames = args.frame_codec + (f" q{args.frame_quality}" if args.frame_codec == "jpeg" else "")
    print(f"\n{len(reader.video_ids)} synthetic videos ({args.frames} frames at 320x240, cache short side 128, {frames} "
          f"frames, hop {args.hop}, --masks {args.masks}, colour context {args.colour_context}), {n} random "
          f"crops (scale 0.2-1) of 16x2 clips resized to {args.crop}, beta {args.beta}\n")
    print("| measure | offline (cached map, cropped) | online (steps 1-4 on the crop) |")
    print("| --- | --- | --- |")
    print(f"| ROC-AUC of the soft map vs true foreground (mean +- sd) | {np.mean(rows['auc_offline']):.3f} +- "
          f"{np.std(rows['auc_offline']):.3f} | {np.mean(rows['auc_online']):.3f} +- {np.std(rows['auc_online']):.3f} |")
    print(f"| share of true foreground kept at beta | {np.mean(rows['kept_offline']):.3f} +- "
          f"{np.std(rows['kept_offline']):.3f} | {np.mean(rows['kept_online']):.3f} +- {np.std(rows['kept_online']):.3f} |")
    print(f"| IoU of the two binary masks (mean +- sd, median) | {np.mean(rows['iou']):.3f} +- {np.std(rows['iou']):.3f}, "
          f"{np.median(rows['iou']):.3f} | |")


if __name__ == "__main__":
    main()
