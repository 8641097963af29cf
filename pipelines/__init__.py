"""fame's library: FAME (Foreground-bAckground MErging) for contrastive video pretraining.

Read ``fame.py`` first: the paper's steps, one function each. The rest is one subpackage per
stage of the pipeline, lowest first (a module imports only its own stage and those below;
``docs/architecture.md`` draws it, ``tests/test_layout.py`` checks it):

- ``data``: dataset layouts, ``fame synth``, decoding, the Zarr cache, clips;
- ``masks``: ``fame preprocess`` and the soft foreground maps it caches;
- ``train``: ``fame pretrain``, MoCo + FAME, backbones, recipes, checkpoints, devices;
- ``evaluate``: ``fame evaluate``, the downstream protocols and the background-swap scores;
- ``visualize``: ``fame visualize-masks``, pictures of the masks.

Beside ``fame.py`` at the top, the plumbing every stage shares (``settings``, ``atomic_files``,
``threads``) and the README's demo (``demo``, ``demo_settings``), which runs every stage.
"""
