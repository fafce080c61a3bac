"""What the agent shows its client through its participant attributes.

The voice client reads them (keys in ``rico_lab/protocol.json``): which role and version
answer, which model, why the agent is silent (a model error), which tool failed. They
travel with the room, over WebRTC, so the client shows them while a cell runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc

from ..protocol import (
    ERROR_ATTRIBUTE,
    MODEL_ATTRIBUTE,
    ROLE_ATTRIBUTE,
    ROLE_VERSION_ATTRIBUTE,
    TOOL_ERROR_ATTRIBUTE,
)

#: How much of an error message the client is shown.
_SHOWN_ERROR_CHARS = 500
_SHOWN_TOOL_ERROR_CHARS = 400


class AgentAttributes:
    """The agent participant's ``rico_lab.*`` attributes in one room.

    Each change is one ``set_attributes`` call, started with ``keep`` on the job's loop
    (the conversation keeps its tasks until they end).
    """

    def __init__(self, room: rtc.Room, keep: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self._room, self._keep = room, keep
        self._tool_errors = 0
        self._showing_tool_error = False
        self._error_at: float | None = None  # when the model error on show happened

    async def advertise(self, role: str, version: str, model: str) -> None:
        """Say which role, at which version, and which model answer now."""
        await self._set(
            {ROLE_ATTRIBUTE: role, ROLE_VERSION_ATTRIBUTE: version, MODEL_ATTRIBUTE: model}
        )

    def model_failed(self, message: str, at: float) -> None:
        """Show the model's error, so the user sees why the agent is silent."""
        self._error_at = at
        self._keep(self._set({ERROR_ATTRIBUTE: message[:_SHOWN_ERROR_CHARS]}))

    def reply_began(self, at: float) -> None:
        """A reply begun after the error on show came through: the client stops showing it."""
        if self._error_at is not None and at > self._error_at:
            self._error_at = None
            self._keep(self._set({ERROR_ATTRIBUTE: ""}))

    def tool_ended(self, tool: str, error: str | None) -> None:
        """Show a failed call until the next call succeeds."""
        if error:
            self._tool_errors += 1
            failure = {
                "tool": tool,
                "message": error[:_SHOWN_TOOL_ERROR_CHARS],
                "n": self._tool_errors,
            }
            shown = json.dumps(failure)
        elif self._showing_tool_error:
            shown = ""
        else:
            return
        self._showing_tool_error = bool(error)
        self._keep(self._set({TOOL_ERROR_ATTRIBUTE: shown}))

    async def _set(self, attributes: dict[str, str]) -> None:
        await self._room.local_participant.set_attributes(attributes)
