"""Memory over a long conversation: the lab's process while the local model talks non-stop.

``python benchmarks/soak.py [MINUTES]`` (30 by default) starts a lab and has a ``livekit.rtc``
participant type a turn as soon as the agent listens again, for MINUTES, in one
conversation; each reply is spoken out in real time, so the agent talks most of the time.
Every minute it prints the process's resident memory, the turns so far and the events in
the lab's record; at the end, the growth after the first minute (warm-up: imports, caches,
first buffers) per hour and per turn.
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
import time
from pathlib import Path

import rico_lab
from rico_lab.evaluation.participant import Participant, wait_until


def rss_mb() -> float:
    """Resident memory of this process in use, in MB (Linux, glibc).

    Garbage is collected and malloc hands its free pages back first: otherwise resident
    memory saws up and down by megabytes from one turn to the next.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    """Talk for MINUTES; print memory every minute and the growth at the end."""
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    print(f"{'minute':>6} {'RSS MB':>8} {'turns':>6} {'events':>7}")
    with rico_lab.Lab() as lab:
        participant = Participant(lab.join("demo"))
        participant.join(30)
        start = time.monotonic()
        samples: list[tuple[float, float, int]] = []
        turns, next_report = 0, start
        while (now := time.monotonic()) < start + minutes * 60:
            if now >= next_report:
                samples.append((now - start, rss_mb(), turns))
                print(
                    f"{(now - start) / 60:6.1f} {samples[-1][1]:8.1f} {turns:6d} {len(lab.log):7d}"
                )
                next_report += 60
            wait_until(lambda: participant.agent_state() == "listening", 60, "the agent to listen")
            participant.type(f"Turn {turns + 1} of a long talk, and on it goes.")
            turns += 1
            wait_until(lambda: participant.agent_state() == "speaking", 60, "the reply")
        participant.close()
        end = (time.monotonic() - start, rss_mb(), turns)
    warm = samples[1] if len(samples) > 1 else samples[0]
    hours = (end[0] - warm[0]) / 3600
    growth = end[1] - warm[1]
    per_turn = growth / max(end[2] - warm[2], 1) * 1024
    print(f"after warm-up: {growth:+.1f} MB over {hours * 60:.0f} min ", end="")
    print(f"({growth / hours if hours else 0:+.1f} MB/h, {per_turn:+.1f} KB per turn)")
    minutes_rss = [{"s": s, "rss_mb": mb, "turns": n} for s, mb, n in [*samples, end]]
    growth_per_h = growth / hours if hours else 0.0
    print(json.dumps({"rss": minutes_rss, "mb_per_h": growth_per_h, "kb_per_turn": per_turn}))


if __name__ == "__main__":
    main()
