"""Write ``docs/cli.md`` from the commands' own ``--help``: ``python -m fame_cli.reference > docs/cli.md``."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from .main import app

INTRO = """# Command-line reference

Generated from each command's `--help` by `python -m fame_cli.reference > docs/cli.md`
(a test checks that every command appears here). `python -m fame_cli ...` is the same CLI,
e.g. under `torchrun -m fame_cli pretrain ...`.

## Splitting preprocessing across machines

`fame preprocess` can run as several processes or machines writing into one cache on a
shared filesystem: give each `--shard I/N` (I = 0..N-1) with otherwise identical options,
or launch it under `torchrun`, whose RANK/WORLD_SIZE are used as the shard. Every video is
its own group in the store and is marked complete only after its arrays are written, so
writers never write the same file and a killed writer's videos are redone by the next
run. Run the same command once more without `--shard` at the end to pick up anything a
dead shard left behind. `docs/cache-format.md` says what readers and `fame info` see
meanwhile, and gives a SLURM array example.

## Errors

An error you can fix (a missing or damaged file, a setting that cannot work, a full disk)
ends in one line, `error: FILE: what is wrong; what to do`, and exit status 2 (1 when some
videos of `fame preprocess` failed, or a pretraining diverged), whichever command or loader
worker met it (`fame_cli/errors.py`). A traceback means a bug: please report it.
"""


def command_names() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def help_text(name: str) -> str:
    result = CliRunner().invoke(app, [name, "--help"], env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1",
                                                             "TERM": "dumb"}, terminal_width=100)
    return result.output.rstrip()


def reference() -> str:
    parts = [INTRO]
    for name in command_names():
        parts.append(f"## fame {name}\n\n```\n{help_text(name)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
