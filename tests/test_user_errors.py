"""Errors a user can cause end in one line and a non-zero exit status, wherever they are raised;
a bug keeps its traceback (issue 20: a missing ground-truth file ended in a traceback)."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fame_cli.errors import one_line, user_message
from fame_cli.main import FameTyper
from helpers import tiny_cache
from pipelines.data.cache import CacheError
from pipelines.masks.ground_truth import GroundTruthError, check_ground_truth

SWAP = ["--protocol", "swap-retrieval", "--arch", "small", "--clip-len", "8", "--stride", "2", "--crop", "32",
        "--clips-per-video", "2", "--workers", "0", "--device", "cpu", "--ground-truth"]


@pytest.fixture(scope="module")
def cache(synth_dataset, tmp_path_factory) -> Path:
    return tiny_cache(synth_dataset, tmp_path_factory.mktemp("errors"), "tiny.zarr")


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fame_cli", "evaluate", *args], capture_output=True, text=True,
                          timeout=300)


def first_test_truth(synth_dataset, truth: Path) -> Path:
    """The ground-truth file in ``truth`` of the first test video of fold 1."""
    first = (synth_dataset / "ucfTrainTestlist" / "testlist01.txt").read_text().split()[0]
    return truth / Path(first).with_suffix(".npz")


def assert_one_line(run: subprocess.CompletedProcess, *says: str) -> None:
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(s in errors[0] for s in says), run.stderr


def test_a_missing_ground_truth_file_is_one_line(cache, synth_dataset, tmp_path):
    truth = tmp_path / "truth"
    shutil.copytree(synth_dataset / "ground_truth", truth)
    victim = first_test_truth(synth_dataset, truth)
    victim.unlink()
    run = evaluate("--cache", str(cache), "--run-dir", str(tmp_path / "run"), *SWAP, "--ground-truth-dir", str(truth))
    assert_one_line(run, str(victim), "missing", "--ground-truth-dir")


def test_a_malformed_ground_truth_file_is_one_line(cache, synth_dataset, tmp_path):
    truth = tmp_path / "truth"
    shutil.copytree(synth_dataset / "ground_truth", truth)
    victim = first_test_truth(synth_dataset, truth)
    victim.write_bytes(b"not a zip at all")
    run = evaluate("--cache", str(cache), "--run-dir", str(tmp_path / "run"), *SWAP, "--ground-truth-dir", str(truth))
    assert_one_line(run, str(victim), "not a readable .npz")


def test_check_ground_truth(synth_dataset, tmp_path):
    truth = synth_dataset / "ground_truth"
    paths = sorted(str(p.relative_to(truth).with_suffix(".avi")) for p in truth.rglob("*.npz"))
    check_ground_truth(truth, paths)  # all there: no error
    with pytest.raises(GroundTruthError, match=r"missing.*\(and 1 other video\(s\)\)"):
        check_ground_truth(truth, [*paths, "A/absent1.avi", "A/absent2.avi"])
    (tmp_path / "A").mkdir()
    import numpy as np

    np.savez(tmp_path / "A" / "v.npz", masks=np.zeros((2, 3, 4)))
    with pytest.raises(GroundTruthError, match="has no array named 'mask'"):
        check_ground_truth(tmp_path, ["A/v.avi"])


def _app(error: Exception) -> FameTyper:
    app = FameTyper(pretty_exceptions_enable=False)

    @app.command()
    def boom() -> None:
        raise error

    @app.command()
    def other() -> None:  # two commands, so that the command's name is needed
        pass

    return app


def _exit_status(app: FameTyper) -> int:
    with pytest.raises(SystemExit) as ended:
        app(["boom"], prog_name="fame")
    return ended.value.code


def test_an_uncaught_user_error_is_one_line_and_a_bug_keeps_its_traceback(capsys):
    assert _exit_status(_app(CacheError("c.zarr: damaged chunk; rebuild it"))) == 2
    assert "error: c.zarr: damaged chunk; rebuild it" in capsys.readouterr().err
    full = OSError(errno.ENOSPC, "No space left on device", "run/checkpoints/latest.pt")
    assert _exit_status(_app(full)) == 2
    assert "run/checkpoints/latest.pt: No space left on device" in capsys.readouterr().err
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/out")
    assert _exit_status(_app(missing)) == 2
    assert "/proc/out: No such file or directory; check the path" in capsys.readouterr().err
    with pytest.raises(OSError):  # an OS error that names no path is not known to be the user's
        _app(OSError(errno.ENOSPC, "No space left on device"))(["boom"], prog_name="fame")
    with pytest.raises(RuntimeError, match="a bug"):  # not swallowed: the traceback shows
        _app(RuntimeError("a bug"))(["boom"], prog_name="fame")
    assert user_message(KeyError("x")) is None


def test_an_error_from_a_loader_worker_is_reduced_to_its_own_line():
    message = ("Caught GroundTruthError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise GroundTruthError(...)\n'
               "pipelines.ground_truth.GroundTruthError: t/A/v.npz: not a readable .npz of masks; regenerate it")
    assert one_line(message) == "t/A/v.npz: not a readable .npz of masks; regenerate it"
    assert user_message(GroundTruthError(message)) == "t/A/v.npz: not a readable .npz of masks; regenerate it"
