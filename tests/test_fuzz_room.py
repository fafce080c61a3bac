"""The room door, fuzzed: data packets and text streams on rico_lab's topics, from the user's
client and from a participant who is not it, do not stop the conversation or reach the
record unless they are the client's and well formed.

One lab and one conversation for the module, with a second participant in its room: each
input is one packet or text stream, sent as a LiveKit participant sends it. After them all,
the user types a turn and the agent answers it, and the record reloads from disk as it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fuzz_support import SERVER_EXAMPLES, counted, values
from hypothesis import given, settings
from hypothesis import strategies as st
from rtc_participant import VoiceParticipant

import rico_lab
from rico_lab.evaluation.participant import Participant
from rico_lab.protocol import LATENCY_TOPIC, UI_TOPIC, JoinInfo, join_token

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

CHAT = "lk.chat"
#: what an intruder's well-formed report says, so that none of it may show in the record
MARK = "INTRUDER"


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A lab, its user's conversation (greeted), and an intruder in the same room."""
    runs = tmp_path_factory.mktemp("runs")
    with rico_lab.Lab(runs_dir=runs) as lab:
        user = VoiceParticipant(lab.join("demo"))
        user.join(30)
        user.wait_for("the greeting", user.greeted, 30)
        token = join_token(
            lab.api_key, lab._api_secret, room=user.info.room, identity=MARK, role="demo"
        )
        intruder = Participant(JoinInfo(lab.url, token, user.info.room, MARK, "demo"))
        intruder.connect(microphone=False)
        try:
            yield {"lab": lab, "user": user, "intruder": intruder, "runs": runs}
        finally:
            intruder.close()
            user.close()


def well_formed(topic: str) -> bytes:
    """A report as the voice client sends it on ``topic``, saying it is the intruder's."""
    if topic == LATENCY_TOPIC:
        return json.dumps({"latency_s": 0.123, "after": MARK, "ended": 1.0}).encode()
    report = {"method": "show_markdown", "title": MARK, "text": MARK}
    return json.dumps({**report, "answer": None, "error": None}).encode()


payloads = st.one_of(
    st.binary(max_size=200),
    values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["latency_s", "after", "method", "title", "text"]), values).map(
        lambda d: json.dumps(d).encode()
    ),
)
topics = st.sampled_from([LATENCY_TOPIC, UI_TOPIC, CHAT, "rico_lab.other", "lk.transcription"])


@settings(max_examples=SERVER_EXAMPLES)
@given(sender=st.sampled_from(["user", "intruder"]), topic=topics, payload=payloads)
@counted("room packets and text streams")
def test_packets_on_any_topic_leave_the_conversation_going(
    room: dict[str, Any], sender: str, topic: str, payload: bytes
):
    participant: Participant = room[sender]
    local = participant.room.local_participant
    if topic == CHAT:
        text = payload.decode(errors="replace")
        participant.run(local.send_text(text or "(empty)", topic=CHAT), 10)
    else:
        participant.run(local.publish_data(payload, topic=topic, reliable=True), 10)
    assert room["lab"].errors == []


def test_after_them_the_user_is_answered_and_the_record_is_intact(room: dict[str, Any]):
    lab, user, intruder = room["lab"], room["user"], room["intruder"]
    session = user.info.room
    # and what the voice client would send, but from the intruder: a few times over, as
    # the first packets of a participant that has published nothing yet may go nowhere
    local = intruder.room.local_participant
    for _ in range(5):
        for topic in (LATENCY_TOPIC, UI_TOPIC):
            intruder.run(local.publish_data(well_formed(topic), topic=topic, reliable=True), 10)
        intruder.run(local.send_text(f"{MARK} typing", topic=CHAT), 10)
        time.sleep(0.2)
    time.sleep(1.0)  # the last packets reach the agent
    user.wait_for("the agent to listen", lambda: user.agent_state() == "listening", 60)
    user.type("still there?")
    answered = lambda: any(  # noqa: E731
        "you wrote: still there?" in e.get("text", "")
        for e in lab.log.records(session)
        if e["type"] == "turn"
    )
    user.wait_for("the answer", answered, 60)
    events = lab.log.records(session)
    # nothing the intruder said, typed or reported is in the record
    assert not [e for e in events if MARK in json.dumps(e)], "the intruder reached the record"
    assert not [e for e in events if e["type"] == "error"]
    again = rico_lab.load_log(room["runs"]).records(session)
    assert again == events
