"""Every accepted checkpoint layout, built here from the documented key layouts
(docs/models.md, docs/evaluation.md), and the refusals."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch

from pipelines.train.checkpoint_formats import CheckpointFormatError, detect_arch, interpret, load_backbone, read_checkpoint
from pipelines.train.moco import MoCo
from pipelines.train.models import build_backbone, i3d, r2plus1d_18, r3d_18, small


def cheap(state: dict) -> dict:
    """The same keys and shapes as ``state`` with distinct constant values, without
    allocating the tensors (large backbones stay fast)."""
    return {k: torch.full((), float(i % 7 + 1), dtype=v.dtype).expand(v.shape) for i, (k, v) in enumerate(state.items())}


def backbone_keys(model) -> list[str]:
    return [k for k in model.state_dict() if not k.startswith("fc.")]


def official_pretrain(arch: str) -> dict:
    """Mark12Ding/FAME train.py: DDP MoCo; R(2+1)D's head is encoder_*.fc.{0,2}, I3D's
    encoder_*.id_head.{2,4}."""
    state = {}
    for key, value in cheap(MoCo(build_backbone(arch), queue_size=8).state_dict()).items():
        if arch == "i3d":
            key = key.replace(".fc.0.", ".id_head.2.").replace(".fc.2.", ".id_head.4.")
        state["module." + key] = value
    return {"epoch": 200, "arch": "I3D" if arch == "i3d" else arch, "state_dict": state, "optimizer": {"state": {}}}


def ours(kind: str, model_state: dict, **settings) -> dict:
    return {"format": "fame-checkpoint", "version": 1, "kind": kind, "settings": settings, "model": model_state}


def test_ours_pretrain_file(tmp_path):
    moco = MoCo(small(), queue_size=8)
    path = tmp_path / "pretrain.pt"
    torch.save(ours("pretrain", moco.state_dict(), arch="small", clip_len=8, stride=2, crop=32), path)
    weights = read_checkpoint(path)
    assert weights.format == "fame-pretrain" and weights.arch == "small"
    assert weights.settings["clip_len"] == 8
    assert weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    model = small(num_classes=5)
    report = load_backbone(model, weights, arch="small")
    assert report.loaded == sorted(backbone_keys(model)) and report.missing == []
    assert any(k.startswith("encoder_k.") for k in report.ignored) and "queue" in report.ignored
    assert any(k.startswith("encoder_q.fc.") for k in report.ignored)
    torch.testing.assert_close(model.layer3[0].weight, moco.encoder_q.layer3[0].weight)
    summary = report.summary()
    assert summary["format"] == "fame-pretrain" and summary["loaded"] == len(report.loaded)


def test_ours_evaluate_file_with_head(tmp_path):
    trained = small(num_classes=5)
    path = tmp_path / "evaluate.pt"
    torch.save(ours("evaluate", trained.state_dict(), arch="small", protocol="finetune"), path)
    weights = read_checkpoint(path)
    assert weights.format == "fame-evaluate" and sorted(weights.head) == ["fc.bias", "fc.weight"]
    model = small(num_classes=5)
    report = load_backbone(model, weights, head=True)
    assert report.head_loaded and not report.missing
    torch.testing.assert_close(model.fc.weight, trained.fc.weight)
    backbone_only = load_backbone(small(num_classes=7), weights)  # another dataset: head ignored
    assert set(backbone_only.ignored) == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize("arch", ["r2plus1d_18", "i3d"])
def test_official_pretrain_layouts(arch):
    checkpoint = official_pretrain(arch)
    weights = interpret(checkpoint, path="official.pth.tar")
    assert weights.format == "official-pretrain" and weights.arch == arch
    model = build_backbone(arch, num_classes=101)
    report = load_backbone(model, weights)
    assert report.loaded == sorted(backbone_keys(model)) and report.missing == []
    head = "id_head" if arch == "i3d" else "fc"
    assert f"module.encoder_q.{head}.2.weight" in report.ignored
    assert "module.queue" in report.ignored and "module.encoder_k.layer1.0.weight" not in report.loaded
    source = checkpoint["state_dict"]["module.encoder_q." + report.loaded[0]]
    torch.testing.assert_close(model.state_dict()[report.loaded[0]], source.to(model.state_dict()[report.loaded[0]].dtype))


def test_official_finetuned_i3d_release():
    """The released fine-tuned I3D (UCF101, 88.9%): module.<backbone key> and module.fc.*."""
    state = {"module." + k: v for k, v in cheap(i3d(num_classes=101).state_dict()).items()}
    weights = interpret({"epoch": 150, "arch": "I3D", "state_dict": state, "best_acc1": torch.tensor(88.9)})
    assert weights.format == "official-finetune" and weights.arch == "i3d"
    assert weights.head["fc.weight"].shape == (101, 1024)
    model = i3d(num_classes=101)
    report = load_backbone(model, weights, head=True)
    assert report.head_loaded and not report.missing and not report.ignored


@pytest.mark.parametrize("builder,arch", [(r2plus1d_18, "r2plus1d_18"), (r3d_18, "r3d_18")])
def test_torchvision_state_dict(builder, arch):
    """torchvision's published weights are a bare state dict with their keys (400 classes)."""
    weights = interpret(cheap(builder().state_dict()))
    assert weights.format == "state-dict" and weights.arch == arch
    model = builder(num_classes=51)
    report = load_backbone(model, weights)
    assert len(report.loaded) == len(backbone_keys(model)) and not report.missing
    assert set(report.ignored) == {"fc.weight", "fc.bias"}  # Kinetics classes, not ours


def test_ddp_prefixed_bare_state_dict_round_trip(tmp_path):
    model = small(num_classes=3)
    path = tmp_path / "plain.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    fresh = small(num_classes=3)
    load_backbone(fresh, read_checkpoint(path), head=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)


def test_detect_arch():
    for arch in ("r2plus1d_18", "r3d_18", "i3d", "small"):
        assert detect_arch(backbone_keys(build_backbone(arch))) == arch
    assert detect_arch(["encoder.weight"]) is None


def test_refuses_checkpoint_of_another_backbone():
    weights = interpret(small().state_dict(), path="small.pth")
    with pytest.raises(CheckpointFormatError, match=r"looks like small\): nothing of the r3d_18 backbone matched"):
        load_backbone(r3d_18(), weights, arch="r3d_18")


def test_refuses_mismatched_shapes():
    state = small().state_dict()
    state["layer2.0.weight"] = torch.zeros(48, 16, 3, 3, 3)  # another width
    with pytest.raises(CheckpointFormatError, match=r"1 shape mismatch.*layer2.0.weight: file \(48, 16, 3, 3, 3\), model \(32, 16, 3, 3, 3\)"):
        load_backbone(small(), interpret(state, path="wide.pth"))


def test_refuses_missing_head_and_head_of_other_size():
    weights = interpret(ours("pretrain", MoCo(small(), queue_size=8).state_dict(), arch="small"))
    with pytest.raises(CheckpointFormatError, match="no classifier"):
        load_backbone(small(num_classes=5), weights, head=True)
    weights = interpret(small(num_classes=4).state_dict())
    with pytest.raises(CheckpointFormatError, match="fc.weight: file \\(4, 128\\), model \\(5, 128\\)"):
        load_backbone(small(num_classes=5), weights, head=True)


class NotAWeight:
    pass


def test_refuses_unreadable_files(tmp_path):
    with pytest.raises(CheckpointFormatError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointFormatError, match="not a checkpoint: torch.save writes a zip archive"):
        read_checkpoint(junk)
    code = tmp_path / "object.pt"
    with open(code, "wb") as handle:
        pickle.dump({"state_dict": NotAWeight()}, handle, protocol=2)
    with pytest.raises(CheckpointFormatError, match="weights_only=True"):
        read_checkpoint(code)
    other = tmp_path / "other.pt"
    torch.save({"weights": [1, 2, 3]}, other)
    with pytest.raises(CheckpointFormatError, match="not a checkpoint layout we know"):
        read_checkpoint(other)
