import copy

import pytest
import torch
import torch.nn.functional as F

from helpers import backbone_state_dict, from_official_fame
from pipelines.train.models import build_backbone, i3d, small
from pipelines.train.moco import (
    MoCo,
    contrastive_accuracy,
    update_momentum,
)

B = 4  # clips per batch: two BN sub-batches of two
CLIP = (B, 3, 8, 32, 32)
K = 10  # queue size, not a multiple of the 2 * B keys enqueued per step


def make_moco(**kwargs) -> MoCo:
    torch.manual_seed(0)
    return MoCo(small(), **{"queue_size": K, "dim": 16, **kwargs})


def clips(seed: int) -> torch.Tensor:
    return torch.randn(CLIP, generator=torch.Generator().manual_seed(seed))


def test_structure():
    model = make_moco()
    assert isinstance(model.encoder_q.fc, torch.nn.Sequential)  # Linear, ReLU, Linear
    assert model.encoder_q.fc[0].weight.shape == (128, 128) and model.encoder_q.fc[2].weight.shape == (16, 128)
    assert isinstance(make_moco(mlp=False).encoder_q.fc, torch.nn.Linear)
    assert not any(p.requires_grad for p in model.encoder_k.parameters())
    for p_q, p_k in zip(model.encoder_q.parameters(), model.encoder_k.parameters()):
        assert torch.equal(p_q, p_k)
    assert model.queue.shape == (16, K)
    torch.testing.assert_close(model.queue.norm(dim=0), torch.ones(K))
    assert model.queue_ptr.tolist() == [0]
    # the backbone's own keys survive under encoder_q.
    assert {k for k in model.state_dict() if k.startswith("encoder_q.layer1.")} == {
        "encoder_q." + k for k in small().state_dict() if k.startswith("layer1.")
    }


def test_update_momentum_matches_slow_reference():
    torch.manual_seed(0)
    model, ema = small(), small()
    expected = [0.9 * p_k.clone() + 0.1 * p_q.clone() for p_q, p_k in zip(model.parameters(), ema.parameters())]
    buffers = [b.clone() for b in ema.buffers()]
    update_momentum(model, ema, 0.9)
    for p_k, want in zip(ema.parameters(), expected):
        torch.testing.assert_close(p_k, want)
    for b, before in zip(ema.buffers(), buffers):
        assert torch.equal(b, before)


def test_momentum_update_key_encoder():
    model = make_moco(momentum=0.5)
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(1.0)
    keys_before = [p.clone() for p in model.encoder_k.parameters()]
    model.momentum_update_key_encoder()
    for p_q, p_k, before in zip(model.encoder_q.parameters(), model.encoder_k.parameters(), keys_before):
        torch.testing.assert_close(p_k, 0.5 * before + 0.5 * p_q)


def test_dequeue_and_enqueue_matches_slow_reference():
    model = make_moco()
    queue, ptr = model.queue.clone(), 0
    for step in range(4):  # 4 keys a step into 10 slots: pointer 0, 4, 8, 2 (wraps), 6
        keys = F.normalize(torch.randn(4, 16), dim=1)
        model.dequeue_and_enqueue(keys)
        for j in range(4):
            queue[:, (ptr + j) % K] = keys[j]
        ptr = (ptr + 4) % K
        torch.testing.assert_close(model.queue, queue)
        assert model.queue_ptr.item() == ptr


def test_enqueue_more_keys_than_the_queue_holds():
    with pytest.raises(ValueError, match="do not fit"):
        make_moco().dequeue_and_enqueue(torch.randn(K + 1, 16))


def test_contrastive_logits_put_the_positive_first():
    model = make_moco(temperature=0.5)
    q, k = F.normalize(torch.randn(3, 16), dim=1), F.normalize(torch.randn(3, 16), dim=1)
    logits, labels = model.contrastive_logits(q, k)
    assert logits.shape == (3, 1 + K)
    assert labels.dtype == torch.long and labels.tolist() == [0, 0, 0]
    for i in range(3):
        assert logits[i, 0].item() == pytest.approx(torch.dot(q[i], k[i]).item() / 0.5, abs=1e-5)
        for j in range(K):
            assert logits[i, 1 + j].item() == pytest.approx(torch.dot(q[i], model.queue[:, j]).item() / 0.5, abs=1e-5)


def test_contrastive_logits_stay_float32_under_autocast():
    model = make_moco()
    q = F.normalize(torch.randn(2, 16), dim=1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model.contrastive_logits(q, q)
    assert logits.dtype == torch.float32


def test_contrastive_accuracy_matches_slow_reference():
    logits = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 8, (50,), generator=torch.Generator().manual_seed(2))
    acc1, acc5 = contrastive_accuracy(logits, labels)
    ranks = [int((logits[i] > logits[i, labels[i]]).sum()) for i in range(50)]  # 0 = the best
    assert acc1.item() == pytest.approx(100 * sum(r < 1 for r in ranks) / 50)
    assert acc5.item() == pytest.approx(100 * sum(r < 5 for r in ranks) / 50)


def test_encoders_use_separate_bn_statistics_per_sub_batch():
    model = make_moco().train()
    x = clips(1)
    with torch.no_grad():
        q = model.encode_query(x)
        torch.manual_seed(7)
        k = model.encode_key(x)
        reference = copy.deepcopy(model)
        q_ref = F.normalize(torch.cat([reference.encoder_q(x[:2]), reference.encoder_q(x[2:])]), dim=1)
        torch.manual_seed(7)
        perm = torch.randperm(B)
        shuffled = x[perm]
        k_shuffled = F.normalize(torch.cat([reference.encoder_k(shuffled[:2]), reference.encoder_k(shuffled[2:])]), dim=1)
        k_ref = torch.empty_like(k_shuffled)
        k_ref[perm] = k_shuffled
        whole_batch = F.normalize(reference.encoder_q(x), dim=1)
    torch.testing.assert_close(q, q_ref)
    torch.testing.assert_close(k, k_ref)
    assert not torch.allclose(q, whole_batch, atol=1e-3)  # the split is real
    with pytest.raises(ValueError, match="BN sub-batches"):
        model.encode_query(x[:3])


def test_encode_key_in_eval_mode_is_the_key_encoder():
    model = make_moco().eval()
    x = clips(2)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_key(x), F.normalize(model.encoder_k(x), dim=1))


def test_symmetric_loss_is_the_mean_of_both_directions():
    model = make_moco(momentum=0.9).eval()  # eval: BN statistics and key shuffle play no role
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(0.01 * torch.randn_like(p))  # so the momentum update matters
    reference = copy.deepcopy(model)
    v1, v2 = clips(3), clips(4)
    loss, stats = model(v1, v2)

    with torch.no_grad():
        for p_q, p_k in zip(reference.encoder_q.parameters(), reference.encoder_k.parameters()):
            p_k.copy_(0.9 * p_k + 0.1 * p_q)
        q1, q2 = (F.normalize(reference.encoder_q(v), dim=1) for v in (v1, v2))
        k1, k2 = (F.normalize(reference.encoder_k(v), dim=1) for v in (v1, v2))
        T, queue = reference.temperature, reference.queue

        def directional_loss(q, k):
            total = 0.0
            for i in range(B):
                logits = torch.cat([(q[i] @ k[i]).view(1), q[i] @ queue]) / T
                total += -torch.log_softmax(logits, dim=0)[0]
            return total / B

        expected = (directional_loss(q1, k2) + directional_loss(q2, k1)) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert stats["loss"].item() == pytest.approx(loss.item())
    assert 0 <= stats["acc1"].item() <= stats["acc5"].item() <= 100
    # both views' keys were enqueued after the logits were taken
    torch.testing.assert_close(model.queue[:, : 2 * B], torch.cat([k1, k2]).T)
    torch.testing.assert_close(model.queue[:, 2 * B :], queue[:, 2 * B :])
    assert model.queue_ptr.item() == 2 * B


def test_training_step():
    model = make_moco().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    q_before = [p.clone() for p in model.encoder_q.parameters()]
    k_before = [p.clone() for p in model.encoder_k.parameters()]
    for step in range(2):
        loss, stats = model(clips(10 + step), clips(20 + step))
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in model.encoder_k.parameters())
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder_q.parameters())
        optimizer.step()
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    assert all(not torch.equal(p, b) for p, b in zip(model.encoder_q.parameters(), q_before))
    assert any(not torch.equal(p, b) for p, b in zip(model.encoder_k.parameters(), k_before))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.queue_ptr.item() == (2 * 2 * B) % K


def test_backbone_state_dict_loads_into_a_fresh_backbone():
    model = make_moco()
    fresh = build_backbone("small", num_classes=101)
    result = fresh.load_state_dict(backbone_state_dict(model.state_dict()), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
    torch.testing.assert_close(fresh.layer4[0].weight, model.encoder_q.layer4[0].weight)


def test_official_fame_i3d_checkpoint_keys_load():
    """Official FAME I3D pretraining checkpoints: DDP's ``module.``, encoders whose head is
    ``id_head`` (0 pool, 1 flatten, 2 Linear 1024x1024, 3 ReLU, 4 Linear 128x1024, 5 L2
    norm), a ``queue`` (128, K) and ``queue_ptr`` (1,). The backbone keys themselves are
    checked against their I3D in test_models.py."""
    model = MoCo(i3d(), queue_size=8)
    official = {}
    for key, value in model.state_dict().items():
        key = key.replace(".fc.0.", ".id_head.2.").replace(".fc.2.", ".id_head.4.")
        official["module." + key] = torch.zeros_like(value)
    assert official["module.encoder_q.id_head.2.weight"].shape == (1024, 1024)
    assert official["module.encoder_q.id_head.4.weight"].shape == (128, 1024)
    assert official["module.encoder_k.mixed_5c.branch_3.1.conv3d.weight"].shape == (128, 832, 1, 1, 1)
    model.load_state_dict(from_official_fame(official), strict=True)
    assert model.encoder_q.fc[0].weight.abs().sum() == 0
