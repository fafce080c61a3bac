"""Keeping the agent's threads on time in the interpreter they share with the notebook.

The agent, its model connection and the local model are threads of the kernel, and two
things of the interpreter's stop them: the GIL, held by a computing cell, and a full
garbage collection, which stops every thread. livekit-agents queues only 200 ms of the
agent's audio, so either, longer than that, is a gap in what the user hears.

The switch interval: a short one while a notebook cell runs beside an open lab. A cell that
computes in pure Python holds the GIL, and Python hands it to a waiting thread only once per
switch interval (5 ms by default); the agent needs it hundreds of times a second, so behind
such a cell its speech stalls for seconds (``benchmarks/browser_kernel.py``). At 0.2 ms a
reply plays as with an idle kernel, and the cell gets about a quarter less done. Only while
a cell runs: an idle kernel waits for messages without holding the GIL.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any, Self

#: The interval while a cell runs (Python's default is 0.005 s)
SWITCH_INTERVAL_S = 0.0002

_watching = False


def shorten_during_cells(needed: Callable[[], bool]) -> None:
    """In IPython, from the next cell on, run cells at ``SWITCH_INTERVAL_S`` while ``needed()``.

    Registers once per kernel; outside IPython (a script, the standalone worker) it does
    nothing, as nothing there competes with the agent unless its author makes it.
    """
    global _watching
    ipython = _ipython()
    if ipython is None or _watching:
        return
    saved: list[float] = []

    def before(*_: Any) -> None:
        if needed():
            saved.append(sys.getswitchinterval())
            sys.setswitchinterval(SWITCH_INTERVAL_S)

    def after(*_: Any) -> None:
        if saved:
            sys.setswitchinterval(saved.pop())

    ipython.events.register("pre_run_cell", before)
    ipython.events.register("post_run_cell", after)
    _watching = True


def _ipython() -> Any:
    """The running IPython shell, if any (never imports IPython itself)."""
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


def freeze_heap() -> None:
    """Leave what is alive now out of every later garbage collection (``gc.freeze``).

    A kernel that imported livekit-agents, pandas and the openai client holds some 400 000
    objects, and a full collection walks them all: 200-370 ms on the development machine,
    every thread stopped, now and then mid-reply (``benchmarks/startup.py`` prints it).
    Called as a lab starts, before it makes anything: what is frozen is the imports and the
    notebook's objects, which mostly live as long as the kernel; they are still freed when
    nothing refers to them, only cycles among them wait for ``gc.unfreeze()``. The lab's
    own objects stay collectable, so a closed lab is freed. What is garbage already is
    collected first, so none of it is kept.
    """
    gc.collect()
    gc.freeze()


class FreezesHeapFirst:
    """A base for what starts the agent (a lab, a service): :func:`freeze_heap` as one is made.

    In ``__new__``, before the instance exists: from ``__init__`` the instance would be
    frozen with the rest, and with it every part it goes on to hold, kept for good after
    ``close()``.
    """

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Self:
        freeze_heap()
        return super().__new__(cls)
