"""A gallery of mask methods on the same clips: one row per video, one column per method.

Each row is the middle mask window of a video (16 frames at stride 2, decoded at short side
128 as `fame preprocess` does): its middle frame, then each method's soft map as a heat
map over that frame with the outline of its binary mask at beta 0.5 (white) and of the true
foreground over the clip (green), and the clip's ROC-AUC / truth kept in the label.

Run (the picture in docs/images was made with):
  python benchmarks/mask_gallery.py --videos ../shared/data/davis-train/videos \\
      --ground-truth ../shared/data/davis-train/ground_truth --names bear,dance-jump,car-turn,mallard-fly \\
      --credit "DAVIS 2016 (Perazzi et al.), CC BY-NC 4.0" --output docs/images/masks-davis-gallery.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipelines.data.clips import clip_span
from pipelines.data.video import read_video
from pipelines.fame import select_foreground
from pipelines.masks.ground_truth import clip_ground_truth
from pipelines.masks.methods import MaskParameters, compute_video_masks
from pipelines.masks.quality import foreground_kept, roc_auc
from pipelines.masks.window_maps import window_starts
from pipelines.visualize import contact_sheet as pictures
from pipelines.visualize.run import resize_map

SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("--ground-truth", type=Path, required=True)
    parser.add_argument("--names", required=True, help="video file stems, comma-separated")
    parser.add_argument("--masks", default="paper,frame-difference,centre,motion")
    parser.add_argument("--credit", default="", help="a line under the title (the footage's licence)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = [m.strip() for m in args.masks.split(",") if m.strip()]
    paths = {p.stem: p for p in args.videos.rglob("*") if p.suffix.lower() in SUFFIXES}
    parameters = MaskParameters()
    span = clip_span(parameters.window, parameters.stride)
    rows = []
    for name in (n.strip() for n in args.names.split(",")):
        frames, _ = read_video(paths[name], short_side=128)
        starts = window_starts(len(frames))
        window = int(np.argmin(np.abs(np.asarray(starts) - (len(frames) - span) // 2)))
        indices = starts[window] + parameters.stride * np.arange(parameters.window)
        height, width = frames.shape[1:3]
        truth = clip_ground_truth(args.ground_truth, str(paths[name].relative_to(args.videos)), indices,
                                  height=height, width=width).any(axis=0)
        middle = frames[indices[len(indices) // 2]]
        tiles, labels = [middle], []
        for method in methods:
            maps, _ = compute_video_masks(frames, method, parameters)
            soft = resize_map(maps[window].astype(np.float32) / 255, height, width)
            mask = select_foreground(torch.from_numpy(soft)[None], beta=0.5)[0].numpy()
            tile = pictures.blend(middle, pictures.heat_colours(soft), 0.6)
            tile = pictures.draw_outline(tile, mask, (255, 255, 255), width=1)
            tiles.append(pictures.draw_outline(tile, truth, (0, 230, 0), width=1))
            labels.append(f"{roc_auc(soft, truth):.2f}/{foreground_kept(soft, truth, beta=0.5):.2f}")
        rows.append((f"{name}\nROC-AUC / kept:\n" + "\n".join(f"{m}: {v}" for m, v in zip(methods, labels)), tiles))
    title = ["soft maps of the middle 16x2 window (heat), binary mask at beta 0.5 (white), true foreground (green)"]
    if args.credit:
        title.append(args.credit)
    sheet = pictures.contact_sheet(rows, title=title, column_labels=["frame", *[f"--masks {m}" for m in methods]])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # 256 colours: a third of the bytes of true colour, no visible change to the heat maps
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.output, optimize=True)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
