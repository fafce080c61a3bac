"""Shared test set-up: every test module declares its category; no developer env leaks in."""

from __future__ import annotations

import os

import pytest

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
