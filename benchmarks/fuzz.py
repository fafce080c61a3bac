"""The long fuzz run: every door's properties with N random inputs each, counted per door.

``python benchmarks/fuzz.py [N]`` (2000 by default) runs the ``fuzz`` tests with
``RICO_FUZZ_EXAMPLES=N`` (random, not derandomized as in the suite) and the voice client's
fast-check properties with as many runs, then prints per door the inputs tried, how many
failed, and the failing tests. The suite runs the same properties on a few dozen inputs;
this is the run that gives hypothesis room to find what they do not.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Every door's tests/test_fuzz_<door>.py.
DOORS = ["roles", "scripts", "client_methods", "local_model", "room"]


def python_doors(examples: int) -> tuple[collections.Counter[tuple[str, str]], list[str]]:
    """Run the Python fuzz tests; returns (door, ok|fail) counts and the failed tests."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        env = {**os.environ, "RICO_FUZZ_EXAMPLES": str(examples), "RICO_FUZZ_REPORT": report.name}
        command = [sys.executable, "-m", "pytest", "-q", "-m", "fuzz", "-p", "no:cacheprovider"]
        run = subprocess.run(
            [*command, *(f"tests/test_fuzz_{door}.py" for door in DOORS)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        counts = collections.Counter(
            tuple(line.rsplit(" ", 1)) for line in report.read().splitlines() if line
        )
    failed = re.findall(r"^FAILED (\S+)", run.stdout, re.MULTILINE)
    if run.returncode not in (0, 1):
        sys.exit(f"pytest could not run the fuzz tests:\n{run.stdout[-3000:]}{run.stderr}")
    return counts, failed  # type: ignore[return-value]


def widget_door(examples: int) -> tuple[int, int, list[str]]:
    """Run the voice client's fast-check properties; returns (inputs, failed, failed tests)."""
    env = {**os.environ, "RICO_FUZZ_EXAMPLES": str(examples)}
    widgets = ROOT / "widgets"
    subprocess.run(["node", "build.mjs", "--tests"], cwd=widgets, env=env, check=True)
    compiled = "node_modules/.cache/tests/fuzz_ui_methods.test.mjs"
    run = subprocess.run(
        ["node", "--test", "--test-reporter=tap", compiled],
        cwd=widgets,
        env=env,
        capture_output=True,
        text=True,
    )
    properties = len(re.findall(r"^# Subtest: fuzz:", run.stdout, re.MULTILINE))
    failed = re.findall(r"^not ok \d+ - (fuzz:.*)$", run.stdout, re.MULTILINE)
    return properties * examples, len(failed), failed


def main() -> None:
    """Run every door with N inputs per property and print what was tried and what failed."""
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    start = time.perf_counter()
    counts, failed = python_doors(examples)
    python_s = time.perf_counter() - start
    doors = sorted({door for door, _ in counts})
    print(f"fuzz run: {examples} inputs per property ({python_s:.0f} s for the Python doors)")
    print(f"{'door':32} {'inputs':>8} {'failed':>8}")
    for door in doors:
        print(f"{door:32} {counts[door, 'ok'] + counts[door, 'fail']:8} {counts[door, 'fail']:8}")
    inputs, widget_failed, widget_tests = widget_door(examples)
    print(f"{'client methods (TypeScript)':32} {inputs:8} {widget_failed:8}")
    for test in [*failed, *widget_tests]:
        print(f"FAILED {test}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
