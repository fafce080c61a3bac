"""How long the conversation record takes to build its frames from many logged events.

Prints, for 1 M events by default (``python benchmarks/record_frames.py [N]``): the time to
write them, to build each frame from memory, and to reload them from disk and build the
turns frame again. A mix like a real run: mostly turns, some tool calls and usage.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rico_lab.evaluation.record import Log, load_log

T = TypeVar("T")


def fill(log: Log, n: int) -> None:
    """Write ``n`` events over n/1000 conversations, mixed as in a real run."""
    sessions = [f"demo-{i:04d}" for i in range(max(n // 1000, 1))]
    for i in range(n):
        session = sessions[i % len(sessions)]
        kind = i % 10
        if kind < 7:
            log.write(
                session, "turn", speaker="user" if kind % 2 else "agent",
                text="a few words said in this turn", role="demo", role_version="abc12345",
                interrupted=False, started=1.0e9 + i, ended=1.0e9 + i + 0.5,
                metrics={"e2e_latency": 0.4},
            )  # fmt: skip
        elif kind < 9:
            log.write(
                session, "tool_call", tool="show_info", arguments={"markdown": "x"},
                result="shown", error=None, started=1.0e9 + i, duration_s=0.01, rpc_s=0.005,
                role="demo", role_version="abc12345",
            )  # fmt: skip
        else:
            log.write(session, "usage", model="local", input_tokens=i, output_tokens=i)


def timed(label: str, action: Callable[[], T]) -> T:
    """Run ``action``, print how long it took, return what it gave."""
    start = time.perf_counter()
    result = action()
    print(f"{label:<34} {time.perf_counter() - start:8.2f} s")
    return result


def main() -> None:
    """Write, build, reload, build again; print each time."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(f"{n:,} events")
    with tempfile.TemporaryDirectory() as folder:
        log = Log(Path(folder))
        timed("write (JSON lines, flushed each)", lambda: fill(log, n))
        log.close()
        for name in ("sessions", "turns", "tool_calls", "events"):
            frame = timed(f"lab.log.{name}", lambda name=name: getattr(log, name))
            print(f"{'':<34} {len(frame):>10,} rows")
        again = timed("load_log(folder)", lambda: load_log(folder))
        timed("  .turns from the reloaded log", lambda: again.turns)


if __name__ == "__main__":
    main()
