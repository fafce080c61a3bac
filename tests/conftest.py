"""Shared test set-up: each test has a category, a unit test starts nothing, no env leaks in."""

from __future__ import annotations

import faulthandler
import os
import socket
import subprocess
import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rico_lab.livekit_server import LiveKitServer

CATEGORIES = {"unit", "integration", "browser"}
LOOP_MONITOR_ENV = "LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse tests without a category marker (livekit/agents does the same)."""
    for item in items:
        if not CATEGORIES & {m.name for m in item.iter_markers()}:
            raise pytest.UsageError(f"{item.nodeid}: mark it with one of {sorted(CATEGORIES)}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's LIVEKIT_*/OPENAI_* variables must never reach a test.

    Kept: the loop-monitor switch a worker sets for the whole process (see
    ``rico_lab.agent.worker.spare_the_loop_monitor``), which a module's lab set before this ran.
    """
    for key in list(os.environ):
        if key.startswith(("LIVEKIT_", "OPENAI_", "RICO_LAB_")) and key != LOOP_MONITOR_ENV:
            monkeypatch.delenv(key)


UNIT_REFUSAL = "a unit test may not start a server/process; mark it integration"
# subprocess.run and subprocess.call start a command and wait for it: a tool, not a server
_RUN_TO_COMPLETION = {subprocess.run.__code__, subprocess.call.__code__}


class _RunOnlyPopen(subprocess.Popen[Any]):
    """``Popen`` that refuses to start a process its caller does not wait for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if sys._getframe(1).f_code not in _RUN_TO_COMPLETION:
            command = args[0] if args else kwargs.get("args")
            raise RuntimeError(f"{UNIT_REFUSAL} (it started {command!r})")
        super().__init__(*args, **kwargs)


def _refuse_to_listen(sock: socket.socket, *args: object) -> None:
    raise RuntimeError(f"{UNIT_REFUSAL} (it listened on {sock.getsockname()})")


@pytest.fixture(autouse=True)
def unit_tests_start_nothing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hold ``unit`` tests to their marker: no socket listens, no process runs on its own.

    A command the test waits for (``subprocess.run``: espeak-ng, ``python -c``,
    ``lint-imports``) is a tool, not a server, and allowed; any other ``Popen`` (asyncio's
    subprocesses too) and ``listen`` (every server: aiohttp, asyncio, socketserver) raise.
    """
    if request.node.get_closest_marker("unit") is None:
        return
    monkeypatch.setattr(socket.socket, "listen", _refuse_to_listen)
    monkeypatch.setattr(subprocess, "Popen", _RunOnlyPopen)


@pytest.fixture(scope="module")
def livekit() -> Iterator[LiveKitServer]:
    """A livekit-server of the test module's own, whose keys the test knows."""
    from rico_lab.livekit_server import LiveKitServer  # imported here: conftest stays light

    server = LiveKitServer()
    server.start()
    yield server
    server.stop()


WATCHDOG_SECONDS = 480
_watchdog_stream: list[object] = []


def pytest_configure(config: pytest.Config) -> None:
    """Keep a handle on the real stderr (capture is suspended here) for the watchdog."""
    _watchdog_stream.append(open(os.dup(2), "w"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """End a wedged run with every thread's stack instead of a silent stall.

    pytest-timeout (signal method) needs the main thread to take the GIL; when every
    thread waits for a GIL nobody hands over (seen twice in CI: CPython gh-106883, see
    ``rico_lab.agent.worker.spare_the_loop_monitor``) it cannot fire, and the run would stall
    until CI's limit.
    faulthandler's watchdog is a C thread that needs no GIL: it dumps all Python stacks
    and exits, so the run fails at once, its main thread's stack naming the test.
    """
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True, file=_watchdog_stream[0])  # type: ignore[arg-type]
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Keep the result for :func:`pytest_unconfigure`."""
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter finalization once the report is written.

    The tests run livekit rtc rooms in this process; livekit's native threads may still
    call into Python while the interpreter finalizes, and that aborts the process ("panic in
    a function that cannot unwind") after every test passed. Nothing is left to clean up
    here: every lab and room was closed by its test.
    """
    if _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[0])
