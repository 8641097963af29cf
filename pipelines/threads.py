"""How many threads a fame process gives torch, so that processes sharing the cores do not
fight over them.

torch starts one intra-op thread per core in every process. Two ``fame pretrain`` runs on 2
cores then run 4 busy threads that keep preempting each other (issue 20: each got 0.24-0.30
of a lone run's clips/s; four jobs at once ran 30x slower). So each process takes its share:

1. ``--threads N`` (the settings' ``threads``), if given;
2. else ``OMP_NUM_THREADS``, if set (the variable every OpenMP program honours);
3. else the cores this process may run on (its CPU affinity) divided by the number of fame
   commands running on the machine at start (``pretrain``, ``evaluate``, ``preprocess``,
   ``demo``, ``visualize-masks``; their loader and pool workers are not counted), at least 1.

The count is taken once, at start: a run started alone keeps all the cores even if another
starts later; give ``--threads`` (or ``OMP_NUM_THREADS``) to fix it. DataLoader workers run
one torch thread each (torch sets that in every worker), and so do ``fame preprocess``'s
worker processes. ``configure_threads`` applies the choice and returns one line saying it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the commands that do heavy work; ``fame info`` and ``--help`` are not counted
HEAVY_COMMANDS = ("pretrain", "evaluate", "preprocess", "demo", "visualize-masks")
#: what the command line of a fame process holds: the console script or ``python -m fame_cli``
ENTRY_POINTS = ("fame", "fame_cli")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def is_fame_command(argv: list[str]) -> bool:
    """Whether a command line (``/proc/PID/cmdline`` split) runs a heavy fame command. A
    torchrun launcher is not one (it only waits for its ranks, which are)."""
    if any(Path(word).name == "torchrun" or word == "torch.distributed.run" for word in argv):
        return False
    for i, word in enumerate(argv):
        name = Path(word).name
        if name in ENTRY_POINTS and (name == "fame" or i > 0 and argv[i - 1] == "-m"):
            return any(command in argv[i + 1 : i + 4] for command in HEAVY_COMMANDS)
    return False


def running_fame_processes(proc: str | os.PathLike = "/proc") -> int:
    """How many heavy fame commands run on this machine now, this one included (at least 1).
    Reads ``/proc/*/cmdline`` (Linux); elsewhere 1."""
    count = 0
    try:
        entries = [entry for entry in Path(proc).iterdir() if entry.name.isdigit()]
    except OSError:
        return 1
    for entry in entries:
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended, or is not ours to read
            continue
        count += is_fame_command([word for word in argv if word])
    return max(1, count)


def choose_threads(requested: int | None, *, environ=os.environ, cores: int | None = None,
                   processes: int | None = None) -> tuple[int, str]:
    """(threads, why) by the rules of this module's docstring."""
    if requested is not None:
        return max(1, int(requested)), "--threads"
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), f"OMP_NUM_THREADS={omp}"
    cores = available_cores() if cores is None else cores
    processes = running_fame_processes() if processes is None else processes
    threads = max(1, cores // processes)
    if processes == 1:
        return threads, f"{cores} core(s), no other fame command running; --threads N to change"
    return threads, (f"{cores} core(s) shared by {processes} fame commands running: a share each; "
                     "--threads N to change")


def configure_threads(requested: int | None) -> str:
    """Size torch's thread pool for this process; returns the line that says so."""
    import torch

    threads, why = choose_threads(requested)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(min(threads, torch.get_num_interop_threads()))
    except RuntimeError:  # only possible before the first parallel work; keep what it is
        pass
    return f"threads: {threads} torch thread(s) in this process ({why}); 1 in each loader worker"
