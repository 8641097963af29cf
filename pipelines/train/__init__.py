"""The training stage: ``fame pretrain``, MoCo + FAME from the cache, and the training plumbing
evaluate's classifier reuses.

What it holds:

- ``pretrain``: ``fame pretrain``, the FAME step (``fame.fame_merge`` on the training device),
  the ``Trainer`` and the run (``run_pretrain``, ``TrainingDiverged``).
- ``settings``: ``PretrainSettings``, the settings a resume may change (torch-free: the CLI's
  help shows them); ``recipes``: the paper's settings as named, versioned TOML files in
  ``recipes/`` (``load_recipe``, ``resolve_settings``).
- ``loader``: the cache's videos that fit a run and the loader of their clip pairs
  (``check_cache_fits``, ``build_loader``).
- ``moco``: MoCo, momentum encoder, queue, symmetric loss (``MoCo``); ``models``: the
  backbones (``build_backbone``, ``BACKBONES``); ``augment``: the per-clip augmentations after
  FAME (``ClipAugment``, ``normalise``).
- ``training``: what both training loops share (``epoch_seed``, ``grad_scaler``,
  ``save_epoch_checkpoint``); ``checkpoints``: atomic writing and ``weights_only`` loading
  (``CheckpointError``); ``checkpoint_formats``: our, the official FAME and torchvision-style
  checkpoints into a backbone (``load_backbone``, ``read_checkpoint``).
- ``devices``: the device and the autocast context (``resolve_device``, ``autocast_context``);
  ``distributed``: rank 0 / world size 1 without a process group, torchrun detection, the
  collectives (``rank``, ``world_size``, ``launch_rank``, ``wrap_ddp``); ``run_logs``:
  TensorBoard scalars and the curves PNG.

Its face: ``pretrain.run_pretrain``, ``settings.PretrainSettings`` and ``recipes.load_recipe``.
It imports the base, ``pipelines.data`` and ``pipelines.masks``, never ``evaluate`` or
``visualize``. This file imports nothing, so that ``settings`` stays free of torch.
"""
