"""The masks stage: the soft foreground maps FAME merges with, computed once per temporal window
by ``fame preprocess``, and the measures and references that judge them.

What it holds:

- ``preprocess``: ``fame preprocess``, decode once, masks once, write the cache, resumable and
  parallel (``run_preprocess``, ``PreprocessSettings``, ``process_video``).
- ``methods``: the named mask methods of ``--masks`` and their versions (``get_method``,
  ``compute_video_masks``, ``MaskParameters``, ``DEFAULT_METHOD``).
- ``motion``: camera-compensated motion: the ``motion`` method (``video_motion_maps``) and the
  default, ``adaptive`` (``video_adaptive_maps``).
- ``window_maps``: the paper's steps 1-4 for every window of a whole video
  (``video_soft_maps``, ``window_starts``, ``pad_to_window``).
- ``quality``: a map against true masks (``roc_auc``, ``foreground_kept``, ``mask_agreement``).
- ``ground_truth``: finding and reading ground-truth masks (``clip_ground_truth``,
  ``GroundTruthError``).
- ``clean_plates``: a clip's background without its own subject (``clean_plate``), for the swap
  test sets and ``visualize-masks``.

Its face: ``preprocess.run_preprocess`` and ``methods.get_method``. It imports the base and
``pipelines.data``, never ``train``, ``evaluate`` or ``visualize``. This file imports nothing,
so that ``preprocess`` (whose settings the CLI's help shows) stays free of torch.
"""
