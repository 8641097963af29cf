"""``fame evaluate``: the FAME paper's downstream protocols on a cache, and a background-swap
score (``docs/evaluation.md`` maps each protocol to the paper's and documents the JSON).

- ``finetune``: the whole network trains on the fold's train split (dropout 0.7, SGD, lr
  0.025, wd 1e-4, lr x0.1 at 40% and 80% of the epochs: the paper's 60/120 of 150).
- ``linear``: the backbone is frozen, BN statistics included (eval mode, no gradients);
  only the new linear classifier trains (lr 30, wd 0, steps at 60/80 of 100 epochs).
- ``retrieval``: per-video features (``clips_per_video`` clips averaged), centred and
  L2-normalised; test videos query the train gallery; recall@1/5/10/20/50.
- ``knn``: the weighted kNN classifier (``pipelines.evaluate.retrieval``) on the same features.
- ``swap-retrieval``: test clips query their own foregrounds moved onto other test videos'
  backgrounds, beside the same clips frozen (``pipelines.evaluate.swap_retrieval``).

Fine-tune and linear test with ``clips_per_video`` uniformly spaced, centre-cropped clips
per video and average the clips' logits (as the FAME code's ``validate``). Under torchrun
training runs with DDP, and every test pass shards the videos over the processes without
padding and gathers the results in video order: each video is counted exactly once.

>>> result = run_evaluate(EvaluateSettings(cache="ucf101.zarr", checkpoint="runs/pretrain",
...                                        protocol="knn"))             # doctest: +SKIP
>>> result["metrics"]["top1"]                                            # doctest: +SKIP

Where each part lives (in ``pipelines.evaluate``): settings ``settings``, the job and its
model ``job``, classifier training ``classifier_training``, the test passes ``inference``
(collectives in ``pipelines.train.distributed``), metrics ``classification_metrics``, the
protocols' steps ``protocols``, the files ``outputs``.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from torch import Tensor

from pipelines.evaluate.job import Log, Progress, prepare_job
from pipelines.evaluate.outputs import json_ready, write_outputs
from pipelines.evaluate.protocols import classifier_protocol, feature_protocol
from pipelines.evaluate.settings import PROTOCOLS, TRAINED, EvaluateError, EvaluateSettings, read_config
from pipelines.evaluate.swap_retrieval import swap_retrieval_protocol
from pipelines.threads import configure_threads
from pipelines.train import distributed
from pipelines.train.devices import resolve_device
from pipelines.train.run_logs import ScalarLog

# Imported from here by others: the CLI and the demo (PROTOCOLS, EvaluateError, EvaluateSettings,
# read_config, run_evaluate).
__all__ = [
    "PROTOCOLS", "SCHEMA", "EvaluateError", "EvaluateSettings", "read_config", "run_evaluate",
]

# The "schema" field of the output JSON. 2: the swapped sets use clean plates by default and
# say which backgrounds they used (swap.backgrounds, bg_swap.backgrounds).
SCHEMA = "fame-evaluate/2"


def run_evaluate(settings: EvaluateSettings, *, progress: Progress | None = None, log: Log | None = None) -> dict:
    """Run one protocol; return the result (the JSON's content) and, on the main process,
    write the JSON and the files beside it."""
    started = time.perf_counter()
    threads = configure_threads(settings.threads)
    device = resolve_device(settings.device)
    joined = distributed.init_process_group_from_env(device)
    try:
        job = prepare_job(settings, device, progress or (lambda *a, **k: None), log or (lambda message: None))
        if distributed.is_main_process():
            job.log(f"results go to {job.output} (run directory {job.run_dir})")
            job.log(threads)
        result = {
            "schema": SCHEMA,
            "protocol": job.settings.protocol,
            "dataset": {
                "layout": job.reader.dataset.get("layout"),
                "cache": str(job.reader.path),
                "source": job.reader.dataset.get("root"),
                "classes": job.num_classes,
                "train_split": job.splits["train"],
                "test_split": job.splits["test"],
            },
            "fold": job.settings.fold,
            "settings": asdict(job.settings),
        }
        features: dict[str, Tensor] = {}
        if job.settings.protocol in TRAINED:
            classifier_protocol(job, result, features)
        elif job.settings.protocol == "swap-retrieval":
            swap_retrieval_protocol(job, result, features)
        else:
            feature_protocol(job, result, features)
        clips = job.settings.clips_per_video
        result["counts"] = {
            "videos": len(job.test_ids), "clips": len(job.test_ids) * clips, "train_videos": len(job.train_ids),
        }
        result["world_size"] = distributed.world_size()
        result["seconds"] = time.perf_counter() - started
        if distributed.is_main_process():
            _tensorboard(job, result)
            result = write_outputs(job, result, features)
        else:
            result = json_ready(job, result)
        distributed.barrier()
        return result
    finally:
        if joined:
            distributed.cleanup()


def _tensorboard(job, result: dict) -> None:
    """The test metrics (and the swapped sets') as TensorBoard scalars in RUN/tensorboard, at
    the epoch trained (0 for the feature protocols); nothing without ``tensorboard``."""
    step = int(result.get("epochs_done") or 0)
    with ScalarLog(job.run_dir) as events:
        events.scalars("test", result["metrics"], step=step)
        for name in ("bg_swap", "frozen"):
            if isinstance(result.get(name), dict) and "metrics" in result[name]:
                events.scalars(f"test_{name}", result[name]["metrics"], step=step)
