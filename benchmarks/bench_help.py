"""How long ``fame --help`` and each ``fame COMMAND --help`` take, as a user waits for them.

Each is run ``--repeats`` times as a fresh process (the installed ``fame`` script, or
``python -m fame_cli`` with ``--module``); prints the minimum (the cost without other jobs'
interference) and the median. Target (issue 20): 0.5 s or less. Whether start-up imports
torch is the test suite's check (tests/test_cli.py); this only times it.

    python benchmarks/bench_help.py [--repeats 7] [--fame .venv/bin/fame]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = ["", "synth", "preprocess", "info", "pretrain", "evaluate", "visualize-masks", "demo"]


def time_help(prefix: list[str], command: str, repeats: int) -> list[float]:
    """Seconds of ``repeats`` fresh runs of ``PREFIX [COMMAND] --help``."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([*prefix, *([command] if command else []), "--help"], capture_output=True, check=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fame", default=shutil.which("fame"), help="the fame script to time")
    parser.add_argument("--module", action="store_true", help="time `python -m fame_cli` instead")
    args = parser.parse_args()
    prefix = [sys.executable, "-m", "fame_cli"] if args.module or not args.fame else [args.fame]
    print(f"{' '.join(prefix)}, {args.repeats} runs each")
    print("| command | min (s) | median (s) |\n| --- | ---: | ---: |")
    for command in COMMANDS:
        seconds = time_help(prefix, command, args.repeats)
        print(f"| `fame {command + ' ' if command else ''}--help` | {min(seconds):.2f} | {statistics.median(seconds):.2f} |")


if __name__ == "__main__":
    main()
