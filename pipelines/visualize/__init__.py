"""The visualisation stage: ``fame visualize-masks``, pictures of the soft maps, the binary masks,
the merged clips and the clean plates, with their quality against ground truth.

What it holds:

- ``run``: ``fame visualize-masks`` (``run_visualize``; it re-exports ``VisualizeSettings``).
- ``settings``: ``VisualizeSettings`` and the animation ``FORMATS`` (torch-free: the CLI's help
  shows them).
- ``contact_sheet``: PNG contact sheets (heat maps, outlines, labelled rows);
  ``animation``: GIF and MP4 animations (``write_gif``, ``write_mp4``); ``html_index``: the
  offline HTML gallery (``write_index``).

Its face: ``run.run_visualize`` and ``settings.VisualizeSettings``. It is the last stage: it
imports the base and every stage below it (``data``, ``masks``, ``train``, and ``evaluate``'s
``bg_swap.PLATE_SHARE``, so its clean plates are the swap test sets'); only the demo imports
it. This file imports nothing, so that ``settings`` stays free of torch.
"""
