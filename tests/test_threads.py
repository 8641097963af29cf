"""Each process sizes its torch threads to its share of the cores (issue 20: processes fought
over the 2 cores): --threads, else OMP_NUM_THREADS, else cores / fame commands running;
loader workers run one. benchmarks/bench_concurrent_runs.py measures two runs at once."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

from pipelines.threads import choose_threads, is_fame_command, running_fame_processes


@pytest.mark.parametrize("argv, heavy", [
    (["/v/bin/python", "/v/bin/fame", "pretrain", "--cache", "c"], True),
    (["python", "-m", "fame_cli", "evaluate", "--cache", "c"], True),
    (["fame", "preprocess", "data"], True),
    (["fame", "info", "--cache", "c"], False),
    (["fame", "--help"], False),
    (["python", "-c", "from multiprocessing.forkserver import main; main()"], False),  # a loader worker
    (["/usr/bin/python", "/usr/bin/torchrun", "--nproc-per-node", "2", "-m", "fame_cli", "pretrain"], False),
    (["vim", "fame_cli/pretrain.py"], False),
])
def test_which_command_lines_are_fame_commands(argv, heavy):
    assert is_fame_command(argv) is heavy


def test_running_fame_processes_counts_proc(tmp_path):
    for pid, argv in {"11": ["fame", "pretrain"], "12": ["python", "-m", "fame_cli", "evaluate"],
                      "13": ["bash"], "14": ["fame", "info"]}.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (tmp_path / "self").mkdir()
    assert running_fame_processes(tmp_path) == 2
    assert running_fame_processes(tmp_path / "absent") == 1


def test_choose_threads():
    assert choose_threads(3, environ={"OMP_NUM_THREADS": "2"}, cores=8, processes=1) == (3, "--threads")
    assert choose_threads(None, environ={"OMP_NUM_THREADS": "2"}, cores=8, processes=1) == (2, "OMP_NUM_THREADS=2")
    assert choose_threads(None, environ={}, cores=2, processes=1)[0] == 2
    threads, why = choose_threads(None, environ={}, cores=2, processes=2)
    assert threads == 1 and "shared by 2 fame commands" in why
    assert choose_threads(None, environ={"OMP_NUM_THREADS": ""}, cores=2, processes=5)[0] == 1
    assert choose_threads(None, environ={}, cores=16, processes=3)[0] == 5


class _Threads(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        return torch.get_num_threads()


def test_loader_workers_run_one_torch_thread():
    loader = torch.utils.data.DataLoader(_Threads(), batch_size=1, num_workers=1,
                                         multiprocessing_context="forkserver")
    assert [int(batch) for batch in loader] == [1, 1]


def test_configure_threads_applies_and_says_it():
    probe = ("import torch; from pipelines.threads import configure_threads; "
             "line = configure_threads(None); print(torch.get_num_threads()); print(line)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    count, line = run.stdout.splitlines()
    assert count == "1" and line.startswith("threads: 1 torch thread(s) in this process (OMP_NUM_THREADS=1)")


def test_without_omp_num_threads_a_process_takes_its_share_of_the_cores():
    probe = "from pipelines.threads import configure_threads; print(configure_threads(None))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert re.match(r"threads: \d+ torch thread\(s\) in this process \(\d+ core\(s\)", run.stdout), run.stdout
