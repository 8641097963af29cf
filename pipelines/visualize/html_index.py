"""``index.html`` of a ``fame visualize-masks`` output folder: one self-contained page.

Built from the run's report (see ``visualize.run_visualize``). Every ``src``/``href`` is a
relative, URL-quoted path to a file that exists in the folder when the page is written; the
page loads nothing from elsewhere (inline CSS, no scripts), so it works offline and from any
copy of the folder.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from urllib.parse import quote

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
section { border-top: 1px solid #ccc; padding: 0.8em 0; }
table { border-collapse: collapse; margin: 0.4em 0; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; font-size: 0.9em; }
img, video { max-width: 100%; display: block; margin: 0.4em 0; }
code { background: #f3f3f3; padding: 0 3px; }
.muted { color: #777; }
"""

#: statistic key -> (column heading, description)
STATISTICS = {
    "foreground_share": ("foreground share", "share of the frame inside the binary mask"),
    "motion_inside": ("motion inside", "mean frame difference inside the mask (0..3: sum over RGB of |x_t+1 - x_t|)"),
    "motion_outside": ("motion outside", "mean frame difference outside the mask"),
    "motion_ratio": ("motion ratio", "motion inside / motion outside"),
}
QUALITY = {
    "roc_auc": ("ROC-AUC", "soft map vs the true foreground (union over the clip's frames); 0.5 = chance"),
    "foreground_kept": ("truth kept", "share of the true foreground inside the binary mask"),
    "iou": ("IoU", "intersection over union of the binary mask and the true foreground"),
    "beta": ("beta", "share of the frame the binary mask keeps"),
    "truth_share": ("truth share", "share of the frame that is true foreground (union over the clip)"),
}


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _link(out_dir: Path, relative: str | None) -> str | None:
    """The quoted relative URL of ``relative`` if that file exists in ``out_dir``."""
    if relative and (out_dir / relative).is_file():
        return quote(relative)
    return None


def _table(heads: list[str], cells: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    body = "".join(f"<td>{c}</td>" for c in cells)
    return f"<table><tr>{head}</tr><tr>{body}</tr></table>"


def _video_section(out_dir: Path, video: dict) -> str:
    e = html.escape
    parts = [
        f'<section id="{e(video["slug"])}">',
        f"<h2>{e(video['video_id'])}</h2>",
        f"<p>class <b>{e(str(video['class_name']))}</b> · path <code>{e(video['path'])}</code> · "
        f"frames {e(_frame_range(video['frames']))} · merged onto the background of "
        f"<code>{e(video['background_from'])}</code></p>",
        _table([STATISTICS[k][0] for k in STATISTICS], [_number(video["statistics"].get(k)) for k in STATISTICS]),
    ]
    quality = video.get("quality")
    if quality and "error" in quality:
        parts.append(f'<p class="muted">mask quality: {e(quality["error"])}</p>')
    elif quality:
        parts.append(_table([QUALITY[k][0] for k in QUALITY], [_number(quality.get(k)) for k in QUALITY]))
    sheet = _link(out_dir, video["files"].get("sheet"))
    if sheet:
        alt = f"contact sheet of {e(video['video_id'])}"
        parts.append(f'<a href="{sheet}"><img src="{sheet}" loading="lazy" alt="{alt}"></a>')
    animation = _link(out_dir, video["files"].get("animation"))
    if animation and animation.endswith(".mp4"):
        parts.append(f'<video src="{animation}" controls loop muted autoplay playsinline></video>')
    elif animation:
        parts.append(f'<img src="{animation}" loading="lazy" alt="animation of {e(video["video_id"])}">')
    parts.append("</section>")
    return "\n".join(parts)


def _frame_range(frames: list[int]) -> str:
    if len(frames) < 2:
        return ", ".join(map(str, frames))
    return f"{frames[0]}..{frames[-1]} every {frames[1] - frames[0]} ({len(frames)} frames)"


def _legend(report: dict) -> str:
    settings = report["settings"]
    beta = settings["beta"]
    share = ("a share fitted to each clip's soft map (beta auto: above its Otsu threshold, within 10-50%)"
             if beta == "auto" else f"the top {beta:.0%}")
    rows = [
        "<b>frames</b>: the clip, at the mask window's stride",
        "<b>soft map</b>: the cached soft foreground map of the clip's window (its --masks method) as a heat "
        "map over the frame; bright = likely foreground. Maps of --compare methods follow, computed from the "
        "cached frames",
        f"<b>binary mask</b>: {share} of the soft map (step 5, beta = {beta}); "
        "outside darkened; green outline: the true foreground of that frame, when known",
        "<b>merged</b>: the FAME-merged clip (step 6): this clip inside the mask, another chosen video's clip outside",
    ]
    if report.get("checkpoint"):
        rows.append("<b>activations</b>: mean |feature map| of the encoder's last block over the clip, upsampled "
                    "and normalised (class-agnostic)")
    descriptions = [f"<b>{h}</b>: {d}" for h, d in list(STATISTICS.values()) + list(QUALITY.values())]
    return "<ul>" + "".join(f"<li>{r}</li>" for r in rows + descriptions) + "</ul>"


def write_index(out_dir: str | Path, report: dict) -> Path:
    """Write ``out_dir/index.html`` for ``report``; returns its path."""
    out_dir = Path(out_dir)
    e = html.escape
    videos = report["videos"]
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>fame visualize-masks: {e(report['cache'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>FAME masks and merged clips</h1>",
        f"<p>cache <code>{e(report['cache'])}</code> · {len(videos)} video(s) · beta {report['settings']['beta']} · "
        f"seed {report['settings']['seed']}</p>",
        _legend(report),
    ]
    checkpoint = report.get("checkpoint")
    if checkpoint:
        head.append(f"<p>activations of <code>{e(checkpoint['path'])}</code> ({e(checkpoint['format'])}, "
                    f"{e(checkpoint['arch'])})</p>")
    links = [(name, _link(out_dir, name)) for name in ("report.json", "mask_quality.json")]
    head.append("<p>" + " · ".join(f'<a href="{url}">{e(name)}</a>' for name, url in links if url) + "</p>")
    quality = report.get("mask_quality")
    if quality:
        head.append(f"<p>mask quality against <code>{e(quality['ground_truth'])}</code> ({quality['videos']} video(s)), "
                    "means over the videos:</p>")
        methods = quality.get("methods") or {quality.get("method", "cache"): quality}
        rows = "".join(
            f"<tr><td>{e(method)}</td>" + "".join(f"<td>{_number(measured['mean'].get(k))}</td>" for k in QUALITY)
            + "</tr>" for method, measured in methods.items())
        head.append("<table><tr><th>--masks</th>" + "".join(f"<th>{e(QUALITY[k][0])}</th>" for k in QUALITY)
                    + f"</tr>{rows}</table>")
    else:
        head.append('<p class="muted">no ground truth: mask quality not measured (see --ground-truth)</p>')
    head.append("<p>" + " · ".join(f'<a href="#{quote(v["slug"])}">{e(v["video_id"])}</a>' for v in videos) + "</p>")
    sections = [_video_section(out_dir, video) for video in videos]
    skipped = report.get("skipped") or []
    if skipped:
        items = "".join(f"<li><code>{e(s['video_id'])}</code>: {e(s['reason'])}</li>" for s in skipped)
        sections.append(f"<section><h2>skipped</h2><ul>{items}</ul></section>")
    page = "\n".join(head + sections + ["</body></html>", ""])
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
