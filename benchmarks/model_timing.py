"""When the local model heard and answered, timed from the benchmark's own process.

``time_local_model()`` wraps two methods of the local realtime server's sessions, so every
user message arriving (``"message"``), every end of speech its VAD finds (``"stopped"``)
and the first audio delta of every response (``"audio"``) is appended to ``MODEL_EVENTS``
as ``(time.monotonic(), kind)``. Nothing in the package changes for it.
"""

from __future__ import annotations

import time
from typing import Any

from rico_lab.local_model import _session as _realtime_session

MODEL_EVENTS: list[tuple[float, str]] = []


def time_local_model() -> None:
    """Start recording the local model's events into :data:`MODEL_EVENTS` (once)."""
    session_class = _realtime_session.Session
    if getattr(session_class, "_timed", False):
        return
    item_create, emit = session_class._on_item_create, session_class._emit
    answered: set[str] = set()

    async def on_item_create(self: Any, event: dict[str, Any]) -> None:
        if (event.get("item") or {}).get("role") == "user":
            MODEL_EVENTS.append((time.monotonic(), "message"))
        await item_create(self, event)

    async def timed_emit(self: Any, type_: str, **fields: Any) -> None:
        if type_ == "input_audio_buffer.speech_stopped":
            MODEL_EVENTS.append((time.monotonic(), "stopped"))
        elif type_ == "response.output_audio.delta" and fields["response_id"] not in answered:
            answered.add(fields["response_id"])
            MODEL_EVENTS.append((time.monotonic(), "audio"))
        await emit(self, type_, **fields)

    session_class._on_item_create = on_item_create  # type: ignore[method-assign]
    session_class._emit = timed_emit  # type: ignore[method-assign]
    session_class._timed = True  # type: ignore[attr-defined]


def times(kind: str) -> list[float]:
    """The recorded times of one kind of event, in order."""
    return [t for t, k in MODEL_EVENTS if k == kind]
