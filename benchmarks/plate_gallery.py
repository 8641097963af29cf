"""A picture of the swap gallery on real footage: for each named video, a test clip as the
query sees it, its clean plate (the clip without its own subject, ``pipelines.masks.clean_plates``)
and the gallery item made on that plate (another video's true foreground pasted onto it),
exactly as ``fame evaluate --protocol swap-retrieval --ground-truth`` builds them.

Run (the picture in docs/images was made with, on the cache of benchmarks/real_bias.py):
  python benchmarks/plate_gallery.py --cache real-bias/cache.zarr \\
      --ground-truth real-bias/source/ground_truth \\
      --videos sbi/HumanBody2.mp4 ucsd/jump.mp4 davis/kite-walk.mp4 davis/bmx-bumps.mp4 \\
      --credit "DAVIS 2016 (Perazzi et al.), CC BY-NC 4.0; SBI 2015 (Maddalena and Petrosino); UCSD (Mahadevan and Vasconcelos)" \\
      --output docs/images/clean-plates-real.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.data.cache import open_cache, video_id_for  # noqa: E402
from pipelines.evaluate.bg_swap import SwappedClipDataset  # noqa: E402
from pipelines.masks.clean_plates import plate_hole  # noqa: E402
from pipelines.visualize import contact_sheet as pictures  # noqa: E402

OUTLINE = (40, 220, 40)  # the true foreground of the query's frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--ground-truth", type=Path, required=True)
    parser.add_argument("--videos", nargs="+", required=True, help="paths below the dataset root")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--clip-len", type=int, default=8)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--frames", type=int, default=3, help="frames shown per clip")
    parser.add_argument("--credit", default="")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    reader = open_cache(args.cache)
    ids = [video_id_for(path) for path in args.videos]
    partners = [(i + 1) % len(ids) for i in range(len(ids))]  # video i's foreground on video i+1's plate
    gallery = SwappedClipDataset(args.cache, ids, partners, clip_len=args.clip_len, stride=args.stride,
                                 crop=args.crop, num_clips=1, ground_truth=args.ground_truth)
    shown = np.linspace(0, args.clip_len - 1, args.frames).round().astype(int)
    rows = []
    for index, path in enumerate(args.videos):
        clip = gallery.clips[index]["clips"][0]  # 3, T, S, S
        subject = gallery.subject_masks(index)[0]  # T, S, S
        plate = gallery.background_clips(index)[0]
        donor = partners.index(index)  # the gallery item made on this plate carries the donor's foreground
        item = gallery[donor]["clips"][0]
        _, still = plate_hole(clip, subject)

        def tiles(frames, outline=None):
            out = []
            for t in shown:
                tile = frames[:, t].permute(1, 2, 0).numpy()
                if outline is not None:
                    tile = pictures.draw_outline(tile, outline[t].numpy(), OUTLINE, width=1)
                out.append(tile)
            return out

        rows.append((f"{path}: query (green: true foreground)", tiles(clip, subject)))
        rows.append((f"clean plate ({'still camera: other frames' if still else 'moving camera: surroundings'})",
                     tiles(plate)))
        rows.append((f"gallery item: {reader.info(ids[donor])['path']}'s foreground on it", tiles(item)))
    title = ["swap-retrieval's gallery on real footage:", "each background loses its own subject first",
             *[part.strip() for part in args.credit.split(";") if part.strip()]]  # one credit a line
    sheet = pictures.contact_sheet(rows, title=title, column_labels=[f"clip frame {t + 1}" for t in shown])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, optimize=True)
    print(f"{args.output}: {sheet.size[0]}x{sheet.size[1]}")


if __name__ == "__main__":
    main()
