"""Test helpers around the one LiveKit participant (:mod:`rico_lab.evaluation.participant`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from livekit import api

from rico_lab.errors import LabError
from rico_lab.evaluation.participant import Participant, wait_until

T = TypeVar("T")


def run_aside(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion in a thread of its own.

    Not ``asyncio.run`` here: the test's main thread may have Playwright's loop running,
    and ``asyncio.run`` leaves the main thread with no event loop for later tests.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def in_room(url: str, api_key: str, api_secret: str, room: str) -> list[api.ParticipantInfo]:
    """Who the LiveKit server at ``url`` has in ``room``: nobody once the room is gone."""

    async def ask() -> list[api.ParticipantInfo]:
        async with api.LiveKitAPI(url, api_key, api_secret) as lk:
            rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
            if not rooms.rooms:
                return []
            found = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            return list(found.participants)

    return run_aside(ask())


class VoiceParticipant(Participant):
    """The one participant, knowing what the local model says, and failing as a test does."""

    def wait_for(self, what: str, predicate: Callable[[], object], timeout: float = 20.0) -> None:
        """Wait until ``predicate()``; on timeout, raise saying what was said and heard."""
        try:
            wait_until(predicate, timeout, what)
        except LabError:
            raise AssertionError(
                f"timed out waiting for {what}; agent said {self.agent_lines()!r}, "
                f"{self.speech_seconds():.1f} s of speech heard"
            ) from None

    def greeted(self) -> bool:
        """The local model's greeting was spoken in full."""
        return any(line.startswith("Local model here.") for line in self.agent_lines())

    def replied(self, turn: int) -> bool:
        """The local model acknowledged spoken user turn ``turn``."""
        return any(line.startswith(f"Turn {turn}: I heard") for line in self.agent_lines())
