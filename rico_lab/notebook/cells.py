"""Notebook cells that leave the agent on time: a short switch interval while a cell runs.

The agent, its model connection and the local model are threads of the kernel; a cell
computing in pure Python holds the GIL, and livekit-agents queues only 200 ms of the
agent's audio, so a longer stall is a gap in what the user hears (the other stall, a full
garbage collection, is :func:`rico_lab.agent.host.freeze_heap`'s).

The switch interval: a short one while a notebook cell runs beside an open lab. A cell that
computes in pure Python holds the GIL, and Python hands it to a waiting thread only once per
switch interval (5 ms by default); the agent needs it hundreds of times a second, so behind
such a cell its speech stalls for seconds (``benchmarks/browser_kernel.py``). At 0.2 ms a
reply plays as with an idle kernel, and the cell gets about a quarter less done. Only while
a cell runs: an idle kernel waits for messages without holding the GIL. The interval is
held through :mod:`rico_lab._switch_interval`, which an agent speaking holds too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .. import _switch_interval

_watching = False


def shorten_during_cells(needed: Callable[[], bool]) -> None:
    """In IPython, from the next cell on, run cells at a short switch interval while ``needed()``.

    Registers once per kernel; outside IPython (a script, the standalone worker) it does
    nothing, as nothing there competes with the agent unless its author makes it.
    """
    global _watching
    ipython = _ipython()
    if ipython is None or _watching:
        return
    held: list[bool] = []

    def before(*_: Any) -> None:
        if needed():
            _switch_interval.hold()
            held.append(True)

    def after(*_: Any) -> None:
        if held:
            held.pop()
            _switch_interval.release()

    ipython.events.register("pre_run_cell", before)
    ipython.events.register("post_run_cell", after)
    _watching = True


def _ipython() -> Any:
    """The running IPython shell, if any (never imports IPython itself)."""
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None
