"""Recaps: a conversation summarised by its role's ``recap`` prompt, written by the model.

The toolkit this grows from sent every finished talk through the model once more for a
recap; here the lab does it on request (``lab.recap(session)``), for a conversation that has
ended or is still going, from the record rather than from the agent's memory, so a recap can
be redone after the role's prompt is edited. The model is the one the lab is configured
with, asked for text only: OpenAI with a key, otherwise the local realtime server, whose
answer is derived from the transcript and so is the same every time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from livekit.agents.llm import ChatContext, RealtimeModel

from ..local_model.script import RECAP_REQUEST

#: Long tool arguments and results are cut to this many characters in the transcript.
_TOOL_CHARS = 200


def transcript(events: Iterable[dict[str, Any]]) -> str:
    """The conversation as the model reads it: one ``user:``, ``agent:`` or ``tool:`` line each.

    Tool calls are in because what was shown or ordered is often what a recap is for.
    """
    lines = []
    for event in events:
        if event["type"] == "turn" and event.get("text"):
            speaker = "agent" if event.get("speaker") == "agent" else "user"
            lines.append(f"{speaker}: {' '.join(event['text'].split())}")
        elif event["type"] == "tool_call":
            arguments = _cut(json.dumps(event.get("arguments") or {}, ensure_ascii=False))
            outcome = (
                f"error: {event['error']}"
                if event.get("error") is not None
                else _cut(str(event.get("result")))
            )
            lines.append(f"tool: {event['tool']} {arguments} -> {outcome}")
    return "\n".join(lines)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TOOL_CHARS else text[: _TOOL_CHARS - 3] + "..."


async def write_recap(model: RealtimeModel, prompt: str, conversation: str) -> str:
    """Ask ``model`` (text output) for a recap of ``conversation`` as ``prompt`` says.

    One realtime session, opened and closed here: the prompt is its instructions and the
    transcript one user message, so the model summarises rather than carries on talking.

    Raises:
        RuntimeError: the model failed the response or said nothing.
    """
    session = model.session()
    errors: list[str] = []
    session.on("error", lambda event: errors.append(str(event.error)))
    try:
        await session.update_instructions(prompt)
        chat = ChatContext.empty()
        chat.add_message(role="user", content=f"{RECAP_REQUEST}\n\n{conversation}")
        await session.update_chat_ctx(chat)
        generation = await session.generate_reply()
        parts = []
        async for message in generation.message_stream:
            async for delta in message.text_stream:
                parts.append(str(delta))
    finally:
        await session.aclose()
        await model.aclose()
    text = "".join(parts).strip()
    if not text:
        raise RuntimeError("; ".join(errors) or "the model answered with no text")
    return text
