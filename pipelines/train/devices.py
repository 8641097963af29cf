"""The one place that decides the device and the mixed-precision context.

>>> device = resolve_device("auto")
>>> with autocast_context(device):
...     loss = model(clips)
"""

import contextlib

import torch

from pipelines.train.distributed import launched_by_torchrun, local_rank

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. Under
    torchrun a CUDA device is this process's ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} asked for CUDA, but torch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); use --device cpu"
            )
        if launched_by_torchrun():
            return torch.device("cuda", local_rank())
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on Ampere and newer GPUs, else float16 (which needs a GradScaler)."""
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def autocast_context(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bf16, or fp16 on GPUs without bf16); a no-op on CPU."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=autocast_dtype(device))


def pin_memory(device: torch.device) -> bool:
    """Whether DataLoaders should pin host memory (only worth it for CUDA copies)."""
    return device.type == "cuda"


def channels_last_3d_ok(device: torch.device) -> bool:
    """Whether to store clips and conv weights as ``torch.channels_last_3d``: cuDNN's
    NDHWC 3D convolutions pay off on CUDA; on CPU we keep the default layout."""
    return device.type == "cuda" and torch.backends.cudnn.is_available()
