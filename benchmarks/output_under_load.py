"""Does the agent's voice keep real time while Python is busy elsewhere in the process?

``python benchmarks/output_under_load.py [SECONDS]`` (3 by default) speaks SECONDS of audio
through the agent's two audio sources, as livekit-agents' output hands them over
(50 ms frames), and times how long it takes to play out: livekit-agents' queued source
(``rtc.AudioSource`` with its 200 ms queue: a role's ``output_lead_ms: 0``) and rico_lab's
``LeadingAudioSource`` (``output_lead_ms``: 10 ms frames sent by Python, 20 ms ahead),
which holds the switch interval short while it sends, and the same without that hold.
One agent and three (a rehearsal of three roles), beside 0, 1, 2 or 4 threads computing in
pure Python, at Python's default switch interval (5 ms) and at the 0.2 ms a lab gives
notebook cells. Each row runs in a process of its own.

Every frame a source takes costs a callback from livekit's one audio thread into Python,
which waits for the GIL: the queued source takes one per 50 ms and paces itself natively;
the leading one needs one per 10 ms, and its pace is Python's. Printed: the seconds the
audio took to play out, per agent (real time is SECONDS), for each source side by side.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
from livekit import rtc

from rico_lab._switch_interval import SWITCH_INTERVAL_S
from rico_lab.agent import audio_output
from rico_lab.agent.audio_output import LeadingAudioSource

RATE = 24000
FRAME_MS = 50  # livekit-agents' output frames
SOURCES = {
    "livekit's queued": "queued",
    "leading (20 ms)": "leading",
    "leading, not held": "unheld",
}


def _compute(stop: threading.Event) -> None:
    """Pure-Python work, as a busy cell or tool does: it holds the GIL between bytecodes."""
    n = 0
    while not stop.is_set():
        n += 1


async def _speak(source: rtc.AudioSource, seconds: float) -> float:
    samples = RATE * FRAME_MS // 1000
    frame = rtc.AudioFrame((np.full(samples, 1000, np.int16)).tobytes(), RATE, 1, samples)
    started = time.monotonic()
    for _ in range(round(seconds * 1000 / FRAME_MS)):
        await source.capture_frame(frame)
    await source.wait_for_playout()
    return time.monotonic() - started


async def _one(kind: str, agents: int, threads: int, seconds: float) -> list[float]:
    if kind == "unheld":  # the source as it was before it held the interval
        audio_output._switch_interval = SimpleNamespace(hold=lambda: None, release=lambda: None)
    stop = threading.Event()
    workers = [threading.Thread(target=_compute, args=(stop,), daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    sources = [
        rtc.AudioSource(RATE, 1, queue_size_ms=200)
        if kind == "queued"
        else LeadingAudioSource(RATE, 1, lead_ms=20)
        for _ in range(agents)
    ]
    try:
        return list(await asyncio.gather(*(_speak(source, seconds) for source in sources)))
    finally:
        stop.set()
        for source in sources:
            await source.aclose()


def _row(kind: str, agents: int, threads: int, interval: float, seconds: float) -> list[float]:
    """One measurement in a fresh process: its own FFI, threads and switch interval."""
    argv = ["--one", kind, str(agents), str(threads), str(interval), str(seconds)]
    out = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(seconds: float) -> None:
    """Every row, the three sources side by side, then the figures as JSON."""
    figures = []
    print(f"{seconds:.0f} s of audio per agent; seconds to play it out (real time: {seconds:.1f})")
    print(f"{'switch':>8} {'agents':>6} {'threads':>7}  " + "  ".join(f"{k:>20}" for k in SOURCES))
    for interval in (0.005, SWITCH_INTERVAL_S):
        for agents in (1, 3):
            for threads in (0, 1, 2, 4):
                took = {k: _row(v, agents, threads, interval, seconds) for k, v in SOURCES.items()}
                cells = "  ".join(f"{max(t):>20.2f}" for t in took.values())
                print(f"{interval * 1000:>6.1f}ms {agents:>6} {threads:>7}  {cells}")
                figures.append(
                    {"switch_ms": interval * 1000, "agents": agents, "threads": threads, **took}
                )
    print(json.dumps(figures))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        kind, agents, threads, interval, seconds = sys.argv[2:7]
        sys.setswitchinterval(float(interval))
        took = asyncio.run(_one(kind, int(agents), int(threads), float(seconds)))
        print(json.dumps(took), flush=True)
        os._exit(0)  # livekit's FFI may abort in interpreter teardown, figures printed or not
    else:
        main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0)
