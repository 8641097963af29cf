"""pipelines.train.training: the per-epoch checkpoints."""

import torch

from pipelines.train.checkpoints import epoch_path, latest_path
from pipelines.train.training import save_epoch_checkpoint


def test_a_kept_epoch_is_written_once_and_survives_the_next_latest(tmp_path):
    first = {"epoch": 1, "weights": torch.arange(4.0)}
    latest = save_epoch_checkpoint(first, tmp_path, keep=True)
    kept = epoch_path(tmp_path, 1)
    assert latest == latest_path(tmp_path)
    assert latest.read_bytes() == kept.read_bytes()
    assert latest.stat().st_ino == kept.stat().st_ino  # one file, two names

    save_epoch_checkpoint({"epoch": 2, "weights": torch.zeros(4)}, tmp_path)  # not kept
    assert torch.load(latest, weights_only=True)["epoch"] == 2
    assert torch.equal(torch.load(kept, weights_only=True)["weights"], torch.arange(4.0))
    assert sorted(p.name for p in latest.parent.iterdir()) == sorted([latest.name, kept.name])
