"""How long a lab takes to start, and a new conversation to greet its user.

Prints, over R rounds in one process (``python benchmarks/startup.py [R]``, 3 by default),
as a notebook would do them:

- ``import rico_lab`` (the first round only: Python caches modules);
- ``Lab()``: embedded livekit-server ready, local model listening, agent worker registered;
- ``join -> first greeting audio``: a ``livekit.rtc`` participant connects with
  ``lab.join()`` and hears the first loud frame of the agent's greeting (the voice client's
  connect click does the same over WebRTC in the browser);
- ``lab.close()``;
- a full garbage collection, which stops every thread (the agent's too): once after the
  import, and with a lab open (``Lab()`` takes what is alive then out of collections).

Targets from issue 7: ``Lab()`` ready within 3 s, connect to first greeting audio within 2 s;
a figure over its target is printed with how much it missed by.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time

TARGETS = {"Lab()": 3.0, "join -> first greeting audio": 2.0}


def full_collection() -> float:
    """Seconds a full garbage collection takes now."""
    start = time.perf_counter()
    gc.collect()
    return time.perf_counter() - start


def main() -> None:
    """Start, greet and close R times; print each step's median and worst."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    start = time.perf_counter()
    import rico_lab
    from rico_lab.evaluation.participant import Participant

    figures: dict[str, list[float]] = {"import rico_lab": [time.perf_counter() - start]}
    figures["full gc after the import"] = [full_collection()]
    for _ in range(rounds):
        start = time.perf_counter()
        lab = rico_lab.Lab()
        figures.setdefault("Lab()", []).append(time.perf_counter() - start)
        figures.setdefault("full gc with a lab open", []).append(full_collection())
        try:
            participant = Participant(lab.join("demo"))
            start = time.monotonic()
            participant.join(30)
            onset = participant.audio_onset_after(start, timeout=30)
            heard = onset - start if onset is not None else float("nan")
            figures.setdefault("join -> first greeting audio", []).append(heard)
            participant.close()
        finally:
            start = time.perf_counter()
            lab.close()
            figures.setdefault("lab.close()", []).append(time.perf_counter() - start)
    print(f"{rounds} rounds, local model, embedded livekit-server ({time.strftime('%Y-%m-%d')})")
    print(f"{'seconds':<32} {'median':>8} {'worst':>8} {'target':>8}")
    for label, values in figures.items():
        median, worst = statistics.median(values), max(values)
        target = TARGETS.get(label)
        verdict = ""
        if target is not None:
            verdict = f"{target:8.1f}" + (
                f"  missed by {median - target:.2f} s" if median > target else "  met"
            )
        print(f"{label:<32} {median:8.2f} {worst:8.2f} {verdict}")
    print(json.dumps({"seconds": figures, "targets_s": TARGETS}))


if __name__ == "__main__":
    main()
