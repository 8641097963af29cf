"""Checkpoints: atomic writes, safe reads with clear errors, the backbone inside."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from helpers import backbone_state_dict
from pipelines.train.checkpoints import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    make_checkpoint,
)
from pipelines.train.moco import MoCo
from pipelines.train.models import build_backbone


def _checkpoint(**extra) -> dict:
    model = MoCo(build_backbone("small"), queue_size=16)
    return make_checkpoint(kind="pretrain", settings={"arch": "small"}, model=model.state_dict(), epoch=3, step=12,
                           rng={"seed": 0, "torch": torch.get_rng_state()}, **extra)


def test_roundtrip_keeps_everything(tmp_path):
    saved = _checkpoint()
    path = atomic_save(saved, tmp_path / "ck" / "latest.pt")
    loaded = load_checkpoint(path, kind="pretrain")
    assert loaded["epoch"] == 3 and loaded["step"] == 12 and loaded["settings"] == {"arch": "small"}
    assert all(torch.equal(loaded["model"][k], v) for k, v in saved["model"].items())
    assert torch.equal(loaded["rng"]["torch"], saved["rng"]["torch"])
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = atomic_save(_checkpoint(), tmp_path / "latest.pt")
    before = path.read_bytes()

    def broken_save(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save(_checkpoint(epoch_note=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


class Foreign:  # a pickled object of another program
    pass


@pytest.mark.parametrize(
    "content, reason",
    [
        (lambda good: good[: len(good) // 2], "truncated"),
        (lambda good: b"\x00" * 100, "zeros"),
        (lambda good: b"", "empty"),
        (lambda good: pickle.dumps({"format": "fame-checkpoint", "x": Foreign()}, protocol=2), "unsafe pickle"),
    ],
)
def test_damaged_files_raise_checkpoint_error(tmp_path, content, reason):
    good = atomic_save(_checkpoint(), tmp_path / "good.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content(good))
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)


@pytest.mark.parametrize("content, says", [
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a checkpoint: torch.save writes"),
    (b"\x80\x02" + bytes(range(2, 64)), "not a checkpoint: not a valid pickle"),
    (pickle.dumps({"format": "fame-checkpoint", "x": Foreign()}, protocol=2), "holds objects that weights_only=True refuses"),
])
def test_refusals_say_what_the_file_is_without_torchs_advice(tmp_path, content, says):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert says in message and "\n" not in message
    assert "weights_only=False" not in message and "likely succeed" not in message


def test_foreign_and_wrong_kind_checkpoints_are_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fame checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    atomic_save(_checkpoint(), tmp_path / "pre.pt")
    with pytest.raises(CheckpointError, match="expected 'finetune'"):
        load_checkpoint(tmp_path / "pre.pt", kind="finetune")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_backbone_state_dict_loads_into_a_fresh_backbone():
    checkpoint = _checkpoint()
    weights = backbone_state_dict(checkpoint)
    assert weights.keys() == backbone_state_dict(checkpoint["model"]).keys()
    assert not any(k.startswith(("encoder_q.", "encoder_k.", "fc.")) or k == "queue" for k in weights)
    backbone = build_backbone("small", num_classes=7)
    missing, unexpected = backbone.load_state_dict(weights, strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    with pytest.raises(CheckpointError):
        backbone_state_dict({"something": torch.zeros(1)})
