"""Typed turns from the user, taken even when the text outruns the user's join.

livekit-agents' room input reads the ``lk.chat`` text streams itself, and drops one from a
participant its room does not list yet ("participant not found, ignoring text input").
That happens after a LiveKit server restart: the user's client rejoins and may send what
was typed at once, and the text, on the data channel, can reach the agent before the
join does, on signalling. The turn was then lost, and the user waited for a reply that
never came. So the conversation reads the chat topic here instead: a stream from someone
not listed yet waits for their join (up to :data:`JOIN_WAIT_S`), then goes to
livekit-agents' own handler of typed text, as it would have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.types import TOPIC_CHAT
from livekit.agents.voice.room_io import TextInputEvent, TextInputOptions

logger = logging.getLogger(__name__)

#: How long typed text waits for its sender to be seen in the room.
JOIN_WAIT_S = 5.0


class TypedInput:
    """Reads the user's typed turns in ``room`` and hands them to ``session``.

    ``linked`` says whom the session listens to (None until it links someone): text from
    anyone else is ignored, as livekit-agents ignores it.
    """

    def __init__(
        self, room: rtc.Room, session: AgentSession[Any], linked: Callable[[], str | None]
    ) -> None:
        self._room, self._session, self._linked = room, session, linked
        self._handle = TextInputOptions().text_input_cb  # livekit-agents' own
        self._tasks: set[asyncio.Task[None]] = set()
        room.register_text_stream_handler(TOPIC_CHAT, self._on_stream)

    def close(self) -> None:
        """Stop reading: the conversation is over."""
        try:
            self._room.unregister_text_stream_handler(TOPIC_CHAT)
        except ValueError:
            pass  # the room's input took it down already
        for task in self._tasks:
            task.cancel()

    def _on_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        expected = self._linked()
        if expected is not None and identity != expected:
            return
        task = asyncio.create_task(self._deliver(reader, identity))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, reader: rtc.TextStreamReader, identity: str) -> None:
        participant = await self._joined(identity)
        if participant is None:
            logger.warning("room %s: text from %s, who never joined", self._room.name, identity)
            return
        text = await reader.read_all()
        try:
            event = TextInputEvent(text=text, info=reader.info, participant=participant)
            result = self._handle(self._session, event)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            logger.exception("room %s: typed text not taken", self._room.name)

    async def _joined(self, identity: str) -> rtc.RemoteParticipant | None:
        """The participant ``identity`` once the room lists them; None after JOIN_WAIT_S."""
        deadline = asyncio.get_running_loop().time() + JOIN_WAIT_S
        while (participant := self._room.remote_participants.get(identity)) is None:
            if asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.02)
        return participant
