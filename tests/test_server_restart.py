"""After a LiveKit server restart, an agent the lab sent back does not wait for ever."""

import os
import signal

import pytest
from rtc_participant import VoiceParticipant

import rico_lab
from rico_lab.agent import conversation
from rico_lab.evaluation.participant import wait_until

pytestmark = pytest.mark.integration


def test_a_user_who_does_not_come_back_ends_the_resumed_conversation(tmp_path, monkeypatch):
    monkeypatch.setattr(conversation, "RESUME_GRACE_S", 3.0)
    with rico_lab.Lab(runs_dir=tmp_path) as lab:
        p = VoiceParticipant(lab.join("demo"))
        p.join(30)
        p.wait_for("the greeting", p.greeted, 30)
        room = p.info.room
        os.kill(lab.livekit_server.pid, signal.SIGKILL)
        p.close()  # the user closed the notebook meanwhile: nobody rejoins

        def kinds() -> list[str]:
            return [e["type"] for e in lab.log.records(room)]

        # the lab sends a fresh agent to the room; it waits out the grace, then ends
        wait_until(lambda: kinds().count("session_started") == 2, 60, "the resumed agent")
        wait_until(lambda: kinds().count("session_ended") == 2, 30, "the resumed end")
        ends = [e["reason"] for e in lab.log.records(room) if e["type"] == "session_ended"]
        assert ends == [
            "the LiveKit server died",
            "the user did not come back after the LiveKit server restarted",
        ]
        wait_until(lambda: not lab._conversations, 30, "the agent to leave")
