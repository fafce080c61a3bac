"""What the agent and its clients agree on: agent name, attribute and topic keys, join tokens.

The keys are written once, in ``protocol.json`` beside this file, which the voice client's
TypeScript imports too (``widgets/src/protocol.ts``): the agent, the notebook widget, the web
page, a rehearsal's participant and ``rico-lab token`` all read the same spelling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from livekit import api

_KEYS = json.loads(Path(__file__).with_name("protocol.json").read_text())

#: Name the worker registers under; tokens from :func:`join_token` dispatch it explicitly.
AGENT_NAME: str = _KEYS["agent_name"]
#: Participant attribute (or key of the room's JSON metadata) that names a room's role.
ROLE_ATTRIBUTE: str = _KEYS["attributes"]["role"]
#: The agent's attributes, which the voice client shows.
ROLE_VERSION_ATTRIBUTE: str = _KEYS["attributes"]["role_version"]
MODEL_ATTRIBUTE: str = _KEYS["attributes"]["model"]
ERROR_ATTRIBUTE: str = _KEYS["attributes"]["error"]
TOOL_ERROR_ATTRIBUTE: str = _KEYS["attributes"]["tool_error"]
#: livekit-agents' own attribute: ``listening``, ``thinking``, ``speaking``...
AGENT_STATE_ATTRIBUTE: str = _KEYS["attributes"]["agent_state"]
#: Text-stream topic of typed user turns (livekit-agents' RoomIO reads it).
CHAT_TOPIC: str = _KEYS["topics"]["chat"]
#: Data-channel topic on which the voice client reports each reply's latency at the listener.
LATENCY_TOPIC: str = _KEYS["topics"]["latency"]
#: Data-channel topic on which a client reports each panel it showed (the record's ``ui``).
UI_TOPIC: str = _KEYS["topics"]["ui"]

TOKEN_TTL = timedelta(minutes=10)


def role_metadata(role: str) -> str:
    """Dispatch (or room) metadata that names ``role``, as :func:`role_in` reads it."""
    return json.dumps({"role": role})


def role_in(metadata: str) -> str:
    """The ``role`` a JSON metadata object names; "" for none (or for other metadata)."""
    try:
        found = json.loads(metadata or "{}")
    except ValueError:
        return ""
    return str(found.get("role") or "") if isinstance(found, dict) else ""


def join_token(
    api_key: str,
    api_secret: str,
    *,
    room: str,
    identity: str,
    role: str,
    ttl: timedelta = TOKEN_TTL,
    agent_name: str = AGENT_NAME,
) -> str:
    """A token that joins ``room`` only, and brings the agent ``agent_name`` with ``role``.

    The dispatch rides in the token, so the agent comes when the user does and a room
    nobody joins costs nothing. With ``agent_name=""`` (a worker that takes every new room
    comes by itself) there is no dispatch, and the user's attribute ``rico_lab.role`` names
    the role instead.
    """
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_ttl(ttl)
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if not agent_name:
        return token.with_attributes({ROLE_ATTRIBUTE: role}).to_jwt()
    dispatch = api.RoomAgentDispatch(agent_name=agent_name, metadata=role_metadata(role))
    return token.with_room_config(api.RoomConfiguration(agents=[dispatch])).to_jwt()


@dataclass(frozen=True)
class JoinInfo:
    """How a client joins one new conversation: LiveKit URL, a room-scoped token, the room."""

    url: str
    token: str = field(repr=False)
    room: str
    identity: str
    role: str
