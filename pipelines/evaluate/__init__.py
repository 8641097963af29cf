"""The evaluation stage: ``fame evaluate``, the FAME paper's downstream protocols on a cache and
the background-bias scores.

What it holds:

- ``run``: ``fame evaluate`` (``run_evaluate``; it re-exports ``EvaluateSettings``,
  ``EvaluateError``, ``read_config`` and ``PROTOCOLS`` for the CLI and the demo).
- ``settings``: ``EvaluateSettings``, the protocols and their paper recipes, the ``[evaluate]``
  table (``resolve_settings``, ``default_run_dir``).
- ``job``: the ``Job`` one evaluation works with (cache, splits, device, weights) and the model
  every protocol starts from; ``protocols``: the steps of finetune/linear and retrieval/knn;
  ``outputs``: the metrics JSON and the files beside it.
- ``classifier_training``: fine-tuning and the linear probe; ``inference``: the test passes
  and test clip sets; ``classification_metrics``: top-k, the confusion matrix;
  ``retrieval``: recall@k, neighbour lists, weighted kNN.
- ``swap_retrieval``: ``--protocol swap-retrieval`` (``swap_retrieval_protocol``,
  ``chance_levels``); ``bg_swap``: the background-swap test set (a test video's foreground on
  another's clean plate) that ``--bg-swap`` and swap-retrieval's gallery share.

Its face: ``run.run_evaluate`` and ``settings.EvaluateSettings``. It imports the base and the
stages below it (``data``, ``masks``, ``train``), never ``visualize``. This file imports
nothing.
"""
