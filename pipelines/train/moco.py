"""MoCo (He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
CVPR 2020) as the FAME code trains it: a query encoder, a momentum key encoder, a queue of
negative keys and the symmetric loss (each of the two clips is the query once).

>>> model = MoCo(build_backbone("r2plus1d_18"), queue_size=2048)
>>> loss, stats = model(fused_clips, other_clips)  # B, 3, T, H, W each

Shuffling BN. MoCo computes a query and its positive key with batch statistics of two
different subsets of the batch, or the model cheats through BN ("the intra-batch
communication among samples leaks information", Sec. 3.3). With a process group the key
batch is shuffled across processes, as in the paper's code. On one process a shuffle
alone changes nothing (BN statistics do not depend on sample order), so one process
simulates ``bn_splits`` GPUs: both encoders see the batch in ``bn_splits`` sub-batches
with separate BN statistics, queries in order, keys after a random shuffle; this is
exactly ``bn_splits``-GPU MoCo without SyncBN (the trick of MoCo's CIFAR-10 demo).
"""

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.train.distributed import (
    batch_shuffle,
    batch_shuffle_distributed,
    batch_unshuffle,
    batch_unshuffle_distributed,
    concat_all_gather,
    world_size,
)


def projection_head(feature_dim: int, dim: int, *, mlp: bool = True) -> nn.Module:
    """MoCo v2's 2-layer MLP ``feature_dim -> feature_dim -> dim``, or one linear layer."""
    if not mlp:
        return nn.Linear(feature_dim, dim)
    return nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, dim))


@torch.no_grad()
def update_momentum(model: nn.Module, ema: nn.Module, m: float) -> None:
    """``ema = m * ema + (1 - m) * model``, parameter by parameter (buffers untouched)."""
    for param, param_ema in zip(model.parameters(), ema.parameters(), strict=True):
        param_ema.mul_(m).add_(param.detach(), alpha=1.0 - m)


@torch.no_grad()
def contrastive_accuracy(logits: Tensor, labels: Tensor, topk: tuple[int, ...] = (1, 5)) -> tuple[Tensor, ...]:
    """For each k, the percentage of rows whose label is among their k largest logits."""
    top = logits.topk(min(max(topk), logits.shape[1]), dim=1).indices  # N, max k
    hits = top == labels[:, None]  # N, max k
    return tuple(hits[:, :k].any(dim=1).float().mean() * 100 for k in topk)


class MoCo(nn.Module):
    """Query encoder ``encoder_q`` (the backbone, its ``fc`` replaced by the projection
    head), key encoder ``encoder_k`` (a momentum copy) and a queue of ``queue_size`` keys.

    The backbone's own key names stay intact under ``encoder_q.``, so a pretrained
    backbone is ``pipelines.train.checkpoint_formats.moco_backbone(model.state_dict())[0]``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        dim: int = 128,  # output size of the projection head
        queue_size: int = 2048,  # K, number of negative keys (paper: 65536 on K400, 2048 on UCF101)
        momentum: float = 0.999,  # m of the key encoder's momentum update
        temperature: float = 0.1,  # tau of the softmax
        mlp: bool = True,  # 2-layer MLP head (MoCo v2; FAME for R(2+1)D and I3D) or linear
        bn_splits: int = 2,  # on one process, sub-batches with their own BN statistics
    ):
        super().__init__()
        self.queue_size = queue_size
        self.momentum = momentum
        self.temperature = temperature
        self.bn_splits = bn_splits

        backbone.fc = projection_head(backbone.feature_dim, dim, mlp=mlp)  # takes ownership of backbone
        self.encoder_q = backbone
        self.encoder_k = copy.deepcopy(backbone).requires_grad_(False)

        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))  # dim, K
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update_key_encoder(self) -> None:
        update_momentum(self.encoder_q, self.encoder_k, self.momentum)

    @torch.no_grad()
    def dequeue_and_enqueue(self, keys: Tensor) -> None:
        """Replace the oldest keys by ``keys`` (N, dim) of every process, in rank order.
        Wraps around the end of the queue, so K need not be a multiple of the batch."""
        keys = concat_all_gather(keys)  # world_size * N, dim
        n = keys.shape[0]
        if n > self.queue_size:
            raise ValueError(f"{n} keys per step do not fit a queue of {self.queue_size}")
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % self.queue_size  # n
        self.queue[:, idx] = keys.T.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + n) % self.queue_size)

    def _in_bn_splits(self, encoder: nn.Module, x: Tensor) -> Tensor:
        """``encoder`` on ``bn_splits`` sub-batches of ``x`` (one process only)."""
        if world_size() > 1 or self.bn_splits == 1:
            return encoder(x)
        if x.shape[0] % self.bn_splits:
            raise ValueError(f"batch of {x.shape[0]} does not split into {self.bn_splits} BN sub-batches")
        return torch.cat([encoder(chunk) for chunk in x.chunk(self.bn_splits)])

    def encode_query(self, x: Tensor) -> Tensor:
        return F.normalize(self._in_bn_splits(self.encoder_q, x), dim=1)  # N, dim

    @torch.no_grad()
    def encode_key(self, x: Tensor) -> Tensor:
        """Keys of ``x`` (N, dim), computed on a shuffled batch (shuffling BN)."""
        if world_size() > 1:
            x, idx_unshuffle = batch_shuffle_distributed(x)
            k = F.normalize(self.encoder_k(x), dim=1)  # N, dim, in shuffled order
            return batch_unshuffle_distributed(k, idx_unshuffle)
        x, idx_unshuffle = batch_shuffle(x)
        k = F.normalize(self._in_bn_splits(self.encoder_k, x), dim=1)  # N, dim, in shuffled order
        return batch_unshuffle(k, idx_unshuffle)

    def contrastive_logits(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """InfoNCE logits of queries ``q`` against their positive keys ``k`` (column 0)
        and the queue's negatives; computed in float32 even under autocast."""
        with torch.autocast(q.device.type, enabled=False):
            q, k = q.float(), k.float()
            l_pos = (q * k).sum(dim=1, keepdim=True)  # N, 1
            l_neg = q @ self.queue.clone()  # N, K (a copy: the queue changes before backward)
            logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature  # N, 1+K
        labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # N
        return logits, labels

    def forward(self, view_1: Tensor, view_2: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The symmetric loss of the FAME code: ``view_1`` (the FAME-fused clip) as query
        against ``view_2``'s key, and ``view_2`` against ``view_1``'s; one momentum update
        per step; both views' keys are enqueued. Unlike the FAME code, both directions
        use the queue as it was before this step, so a query never meets its own clip's
        key among the negatives. Stats are detached; accuracies are percentages over both
        directions."""
        self.momentum_update_key_encoder()
        q1, q2 = self.encode_query(view_1), self.encode_query(view_2)  # N, dim each
        k1, k2 = self.encode_key(view_1), self.encode_key(view_2)  # N, dim each
        logits_12, labels = self.contrastive_logits(q1, k2)  # N, 1+K
        logits_21, _ = self.contrastive_logits(q2, k1)  # N, 1+K
        loss = (F.cross_entropy(logits_12, labels) + F.cross_entropy(logits_21, labels)) / 2
        self.dequeue_and_enqueue(torch.cat([k1, k2]))
        acc1, acc5 = contrastive_accuracy(torch.cat([logits_12, logits_21]), torch.cat([labels, labels]))
        return loss, {"loss": loss.detach(), "acc1": acc1, "acc5": acc5}
