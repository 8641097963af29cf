"""Distributed helpers. One process is the default case: without a process group every
function answers as rank 0 of a world of 1 and collectives are identities. torchrun is
detected from the environment variables it sets (RANK, WORLD_SIZE, LOCAL_RANK).

``shard`` and ``gather_in_order`` split a test pass over the processes without padding and
put the results back in item order, each item exactly once; ``broadcast_state`` gives every
process the main process's weights and buffers.

``batch_shuffle`` / ``batch_unshuffle`` permute a batch on one process;
``batch_shuffle_distributed`` / ``batch_unshuffle_distributed`` are their twins that
shuffle across all processes, MoCo's "shuffling BN" (He et al. 2020, Sec. 3.3).
"""

import gc
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def is_distributed() -> bool:
    """Whether a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def local_rank() -> int:
    """This process's index on its machine (its GPU); 0 unless launched by torchrun."""
    return int(os.environ["LOCAL_RANK"]) if launched_by_torchrun() else 0


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), known before any process
    group exists: the CLI uses it to print on rank 0 only from the start."""
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def torchrun_shard() -> tuple[int, int] | None:
    """(rank, world size) as torchrun set them, None when not launched by torchrun: work
    that needs no process group (``fame preprocess``) takes them as its shard."""
    return (launch_rank(), int(os.environ["WORLD_SIZE"])) if launched_by_torchrun() else None


def is_main_process() -> bool:
    """Only the main process logs, shows progress and writes checkpoints."""
    return rank() == 0


def init_process_group_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU). Returns
    whether it initialised one: False when not launched by torchrun or already joined."""
    if not launched_by_torchrun() or is_distributed():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return True


def cleanup() -> None:
    """Leave the process group, after every process got here: gloo aborts a process whose
    peer tears the connection down while it is still finishing its last collective."""
    if is_distributed():
        gc.collect()  # free unreachable DDP wrappers first: their reducers hold work on the group
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes, else itself.
    Keep the plain model too: it is what checkpoints hold."""
    if world_size() == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _comm_device() -> torch.device:
    """Where collectives need their tensors (nccl: CUDA only)."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@torch.no_grad()
def concat_all_gather(x: Tensor) -> Tensor:
    """Every process's ``x`` concatenated along dim 0 in rank order (no gradient). All
    processes must pass the same shape."""
    if world_size() == 1:
        return x
    gathered = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(gathered, x.contiguous())
    return torch.cat(gathered, dim=0)  # world_size * B, ...


def all_reduce_mean(value: float | Tensor) -> float | Tensor:
    """Mean of ``value`` over processes; a float stays a float, a tensor a tensor."""
    if world_size() == 1:
        return value
    if isinstance(value, Tensor):
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / world_size()
    total = torch.tensor(float(value), dtype=torch.float64, device=_comm_device())
    dist.all_reduce(total)
    return total.item() / world_size()


def shard(count: int) -> list[int]:
    """This process's items of ``range(count)``: every world_size-th, without padding."""
    return list(range(rank(), count, world_size()))


def _all_gather_rows(x: Tensor, counts: list[int]) -> Tensor:
    """Every process's rows of ``x`` (process r has ``counts[r]`` rows) in rank order."""
    device = _comm_device()
    largest = max(counts)
    padded = x.new_zeros((largest, *x.shape[1:])).to(device)
    padded[: len(x)] = x.to(device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts)]).cpu()


def gather_in_order(values: Tensor, indices: Tensor, total: int) -> Tensor:
    """Rows computed on every process (``values[i]`` is item ``indices[i]``) assembled in
    item order on every process. Raises unless each of the ``total`` items is present
    exactly once: no duplicates from padding, nothing dropped."""
    if world_size() > 1:
        count = torch.tensor([len(indices)], device=_comm_device())
        counts = [torch.zeros_like(count) for _ in range(world_size())]
        dist.all_gather(counts, count)
        counts = [int(c) for c in counts]
        values, indices = _all_gather_rows(values, counts), _all_gather_rows(indices, counts)
    if sorted(indices.tolist()) != list(range(total)):
        raise RuntimeError(f"gathered {len(indices)} results for {total} items: some duplicated or missing")
    ordered = values.new_empty((total, *values.shape[1:]))
    ordered[indices] = values
    return ordered


@torch.no_grad()
def broadcast_state(model: nn.Module) -> None:
    """Every process takes the main process's weights and buffers. DDP keeps parameters
    equal but each process's BN running statistics follow its own last batches; the
    sharded test pass must use the model the checkpoint holds."""
    if world_size() == 1:
        return
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, src=0)


@torch.no_grad()
def batch_shuffle(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A random permutation of the batch and the indices that undo it."""
    idx_shuffle = torch.randperm(x.shape[0], generator=generator, device=x.device)
    return x[idx_shuffle], torch.argsort(idx_shuffle)


@torch.no_grad()
def batch_unshuffle(x: Tensor, idx_unshuffle: Tensor) -> Tensor:
    return x[idx_unshuffle]


@torch.no_grad()
def batch_shuffle_distributed(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Shuffle the global batch (all processes' ``x``, equal sizes) and give each process
    its share: rank 0 draws the permutation and broadcasts it. Returns this process's
    ``B, ...`` and the global ``idx_unshuffle`` for ``batch_unshuffle_distributed``."""
    x_all = concat_all_gather(x)  # world_size * B, ...
    idx_shuffle = torch.randperm(x_all.shape[0], generator=generator, device=x.device)
    if world_size() > 1:
        dist.broadcast(idx_shuffle, src=0)
    idx_this = idx_shuffle.view(world_size(), -1)[rank()]  # B
    return x_all[idx_this], torch.argsort(idx_shuffle)


@torch.no_grad()
def batch_unshuffle_distributed(x: Tensor, idx_unshuffle: Tensor) -> Tensor:
    """Undo ``batch_shuffle_distributed``: each process gets back its own samples' rows."""
    x_all = concat_all_gather(x)  # world_size * B, ...
    idx_this = idx_unshuffle.view(world_size(), -1)[rank()]  # B
    return x_all[idx_this]
