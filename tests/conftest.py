"""Shared test set-up: every test module declares its category; no developer env leaks in."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rico_lab.livekit_server import LiveKitServer

CATEGORIES = {"unit", "integration", "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse tests without a category marker (livekit/agents does the same)."""
    for item in items:
        if not CATEGORIES & {m.name for m in item.iter_markers()}:
            raise pytest.UsageError(f"{item.nodeid}: mark it with one of {sorted(CATEGORIES)}")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's LIVEKIT_*/OPENAI_* variables must never reach a test."""
    for key in list(os.environ):
        if key.startswith(("LIVEKIT_", "OPENAI_", "RICO_LAB_")):
            monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def livekit() -> Iterator[LiveKitServer]:
    """A livekit-server of the test module's own, whose keys the test knows."""
    from rico_lab.livekit_server import LiveKitServer  # imported here: conftest stays light

    server = LiveKitServer()
    server.start()
    yield server
    server.stop()


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
