"""What the kit adds to each turn of a typed rehearsal against the local model.

Prints, over N typed turns (``python benchmarks/rehearsal_overhead.py [N]``, 20 by default),
the median and p95 of, side by side:

- ``listener``: Enter (the text leaves the rehearsal's participant) to the first loud agent
  audio reaching that participant: what a user would wait;
- ``model``: the local realtime server's own share, from the user's message arriving on its
  websocket to its first audio delta going out;
- ``kit``: the difference, the time spent in rico_lab, livekit-agents, the LiveKit server and
  WebRTC on the way in and out;
- the framework's own figures for each reply from the record (``ttft_s``, ``e2e_latency_s``;
  livekit-agents reports the latter only after user speech);
- the wall time per turn of the whole rehearsal (the reply is spoken out in real time).

The model's share is taken by timing the local server's session events from here; nothing in
the package is changed for it.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from model_timing import time_local_model, times

import rico_lab
from rico_lab.evaluation.rehearsal import Script


def row(label: str, values: np.ndarray) -> None:
    """Print one figure's median and 95th percentile, in milliseconds (n/a: never reported)."""
    if not len(values):
        print(f"{label:<42} {'n/a':>8} {'n/a':>8}")
        return
    p50, p95 = np.percentile(values * 1000, [50, 95])
    print(f"{label:<42} {p50:8.0f} {p95:8.0f}")


def main() -> None:
    """Rehearse N typed turns with the demo role, then print the figures side by side."""
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    time_local_model()
    script = Script.from_dict({"turns": [{"say": f"Turn number {i}."} for i in range(turns)]})
    with rico_lab.Lab() as lab:
        start = time.monotonic()
        rehearsal = lab.rehearse(["demo"], script, progress=False)
        wall = time.monotonic() - start
    # the greeting's audio comes first and answers no user message
    model = np.array(times("audio")[1:]) - np.array(times("message"))
    listener = rehearsal.results["latency_s"].to_numpy()
    agent = rehearsal.turns.query("speaker == 'agent'").iloc[1:]
    print(f"{turns} typed turns, one role, local model ({time.strftime('%Y-%m-%d')})")
    print(f"{'per turn (ms)':<42} {'p50':>8} {'p95':>8}")
    row("listener: Enter -> first agent audio", listener)
    row("model: message in -> first audio delta out", model)
    row("kit: listener - model", listener - model)
    for column in ("ttft_s", "e2e_latency_s"):
        row(f"framework's {column} (record)", agent[column].dropna().to_numpy())
    print(f"{'wall time per turn, reply spoken out':<42} {wall / turns * 1000:8.0f}")


if __name__ == "__main__":
    main()
