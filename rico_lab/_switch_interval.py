"""Python's thread switch interval, short while something of the lab needs the GIL often.

A thread that computes in pure Python keeps the GIL until another has waited a switch
interval for it (5 ms by default). The agent's threads need it hundreds of times a second:
livekit calls into Python for each frame of audio a source takes, and an agent sending its
reply ahead of real time does so every 10 ms. Behind one busy thread at 5 ms, 3 s of such
a reply took 3.8 to 5.9 s to play (``benchmarks/output_under_load.py``); at 0.2 ms it keeps
time, and the busy thread gets about a quarter less done while the agent talks. Idle
threads wait without the GIL, so the short interval costs nothing when nobody computes.

More than one part may want it at once (a notebook cell beside a lab, each agent
speaking): each holds it while it needs it, and the interval goes back to what it was when
the last one lets go.
"""

from __future__ import annotations

import sys
import threading

#: the interval while held (Python's default is 0.005 s)
SWITCH_INTERVAL_S = 0.0002

_lock = threading.Lock()
_holders = 0
#: the interval before the first hold, if that hold shortened it
_saved: float | None = None


def hold() -> None:
    """Shorten the switch interval to ``SWITCH_INTERVAL_S`` until a matching :func:`release`.

    An interval already as short is left as it is (Python keeps it in whole microseconds,
    and setting what it reads back can round it down).
    """
    global _holders, _saved
    with _lock:
        interval = sys.getswitchinterval()
        if _holders == 0 and interval > SWITCH_INTERVAL_S:
            _saved = interval
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        _holders += 1


def release() -> None:
    """Let go of one :func:`hold`; the last one puts back the interval from before."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            raise RuntimeError("switch interval released more often than held")
        _holders -= 1
        if _holders == 0 and _saved is not None:
            sys.setswitchinterval(_saved)
            _saved = None
