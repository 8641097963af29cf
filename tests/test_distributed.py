import contextlib
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from pipelines.train import devices, distributed
from pipelines.train.moco import MoCo
from pipelines.train.models import small

TORCHRUN_ENV = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


# --- one process, no process group ----------------------------------------------------


def test_single_process_answers(no_torchrun):
    assert distributed.rank() == 0
    assert distributed.world_size() == 1
    assert distributed.local_rank() == 0
    assert distributed.is_main_process()
    assert not distributed.launched_by_torchrun()
    assert not distributed.init_process_group_from_env(torch.device("cpu"))
    distributed.barrier()
    distributed.cleanup()


def test_torchrun_detected_from_environment(monkeypatch):
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    assert distributed.launched_by_torchrun()
    assert distributed.local_rank() == 1
    assert distributed.rank() == 0  # no process group yet


def test_single_process_collectives_are_identities():
    x = torch.randn(3, 2)
    assert distributed.concat_all_gather(x) is x
    assert distributed.all_reduce_mean(2.5) == 2.5
    assert distributed.all_reduce_mean(x) is x


@pytest.mark.parametrize("shuffle", [distributed.batch_shuffle, distributed.batch_shuffle_distributed])
def test_batch_shuffle_round_trip(shuffle):
    unshuffle = {
        distributed.batch_shuffle: distributed.batch_unshuffle,
        distributed.batch_shuffle_distributed: distributed.batch_unshuffle_distributed,
    }[shuffle]
    x = torch.arange(16.0).view(8, 2)
    shuffled, idx_unshuffle = shuffle(x, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(shuffled, x)
    assert sorted(shuffled[:, 0].tolist()) == x[:, 0].tolist()
    assert torch.equal(unshuffle(shuffled, idx_unshuffle), x)


# --- devices ----------------------------------------------------------------------------


def test_resolve_device_on_cpu(no_torchrun):
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        devices.resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_resolve_device_explains_missing_cuda():
    with pytest.raises(ValueError, match="asked for CUDA"):
        devices.resolve_device("cuda")


def test_cpu_device_settings():
    cpu = torch.device("cpu")
    assert isinstance(devices.autocast_context(cpu), contextlib.nullcontext)
    assert not devices.pin_memory(cpu)
    assert not devices.channels_last_3d_ok(cpu)


# --- two real processes (gloo on CPU) ----------------------------------------------------

WORLD = 2
B = 2  # clips per process
QUEUE = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gather_equal(x: torch.Tensor) -> bool:
    """Whether every process holds the same ``x``."""
    return all(torch.equal(part, x) for part in distributed.concat_all_gather(x[None]))


def make_moco() -> MoCo:
    torch.manual_seed(0)  # the same weights and queue on every process
    return MoCo(small(), dim=8, queue_size=QUEUE)


def check_collectives(rank: int) -> None:
    assert distributed.rank() == rank and distributed.world_size() == WORLD
    assert distributed.is_main_process() == (rank == 0)

    x = torch.full((2, 3), float(rank)) + torch.arange(3.0)
    expected = torch.cat([torch.full((2, 3), float(r)) + torch.arange(3.0) for r in range(WORLD)])
    assert torch.equal(distributed.concat_all_gather(x), expected)
    assert distributed.all_reduce_mean(float(rank)) == pytest.approx(0.5)
    assert distributed.all_reduce_mean(torch.tensor(float(rank))).item() == pytest.approx(0.5)

    local = (rank * 4 + torch.arange(4.0)).view(4, 1)  # the global batch is 0..7
    generator = torch.Generator().manual_seed(rank)  # different draws: rank 0's must win
    shuffled, idx_unshuffle = distributed.batch_shuffle_distributed(local, generator=generator)
    assert gather_equal(idx_unshuffle)
    everyone = distributed.concat_all_gather(shuffled).flatten()
    assert sorted(everyone.tolist()) == list(range(8)) and everyone.tolist() != list(range(8))
    assert torch.equal(distributed.batch_unshuffle_distributed(shuffled, idx_unshuffle), local)


def check_enqueue(rank: int) -> None:
    model = make_moco()
    keys = F.normalize(torch.randn(B, 8, generator=torch.Generator().manual_seed(rank)), dim=1)
    model.dequeue_and_enqueue(keys)
    all_keys = torch.cat([F.normalize(torch.randn(B, 8, generator=torch.Generator().manual_seed(r)), dim=1) for r in range(WORLD)])
    torch.testing.assert_close(model.queue[:, : WORLD * B], all_keys.T)
    assert model.queue_ptr.item() == WORLD * B


def check_moco_steps(rank: int) -> None:
    model = make_moco()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    clips = [torch.randn(B, 3, 8, 32, 32, generator=torch.Generator().manual_seed(10 * rank + i)) for i in range(4)]

    # eval mode: keys do not depend on the shuffle, so the queue can be checked exactly
    model.eval()
    loss, _ = ddp(clips[0], clips[1])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():  # the key encoder is as it was in the step (updated at its start)
        k1, k2 = (F.normalize(model.encoder_k(v), dim=1) for v in clips[:2])
    keys_of_all = distributed.concat_all_gather(torch.cat([k1, k2]))  # rank 0's, then rank 1's
    torch.testing.assert_close(model.queue[:, : 2 * WORLD * B], keys_of_all.T)
    assert model.queue_ptr.item() == 2 * WORLD * B

    # train mode: BN statistics per process on a globally shuffled key batch
    model.train()
    loss, stats = ddp(clips[2], clips[3])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in stats.values())
    assert model.queue_ptr.item() == (4 * WORLD * B) % QUEUE
    assert gather_equal(model.queue)
    assert all(gather_equal(p.detach()) for p in model.encoder_q.parameters())
    assert all(gather_equal(p) for p in model.encoder_k.parameters())


def worker(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        check_collectives(rank)
        check_enqueue(rank)
        check_moco_steps(rank)
    except BaseException:
        dist.destroy_process_group()  # no barrier: the other process may never arrive
        raise
    distributed.cleanup()


def test_two_processes():
    mp.spawn(worker, args=(free_port(),), nprocs=WORLD, join=True)
