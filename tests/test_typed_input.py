"""Text typed the moment a user joins is answered, even by an agent already in the room.

After a LiveKit server restart the agent can be in the room first, and the user's client
sends what was typed as soon as it is back: the text may reach the agent before the
user's join does (issue 18's restart race).
"""

import uuid

import pytest
from livekit import api
from rtc_participant import VoiceParticipant, run_aside

import rico_lab
from rico_lab.protocol import JoinInfo, join_token, role_metadata

pytestmark = pytest.mark.integration

#: without the wait for the join, the first round's text was lost already
ROUNDS = 2


def agent_waiting(lab: rico_lab.Lab, role: str) -> str:
    """A new room with the lab's agent dispatched into it, before any user joins."""
    room = f"typed-{uuid.uuid4().hex[:8]}"

    async def dispatch() -> None:
        async with api.LiveKitAPI(lab.url, lab.api_key, lab._api_secret) as lk:
            request = api.CreateAgentDispatchRequest(
                agent_name=lab.agent_name, room=room, metadata=role_metadata(role)
            )
            await lk.agent_dispatch.create_dispatch(request)

    run_aside(dispatch())
    return room


def join_and_type(lab: rico_lab.Lab, room: str, text: str) -> None:
    """Join ``room`` and send ``text`` at once, then wait for the agent's answer to it."""
    token = join_token(lab.api_key, lab._api_secret, room=room, identity="user", role="demo")
    p = VoiceParticipant(JoinInfo(lab.url, token, room, "user", "demo"))
    answered = lambda: any(  # noqa: E731
        f"you wrote: {text}" in e.get("text", "")
        for e in lab.log.records(room)
        if e["type"] == "turn"
    )
    try:
        p.wait_for("the agent's session", lambda: lab.log.records(room), 30)

        async def join_typing() -> None:
            await p._connect(microphone=False)
            await p.room.local_participant.send_text(text, topic="lk.chat")

        p.run(join_typing(), 30)
        p.wait_for(f"the answer to {text!r}", answered, 30)
    finally:
        p.close()


def test_text_sent_as_the_user_joins_an_agent_already_there_is_answered(tmp_path):
    with rico_lab.Lab(runs_dir=tmp_path) as lab:
        for n in range(ROUNDS):
            join_and_type(lab, agent_waiting(lab, "demo"), f"round {n}")
