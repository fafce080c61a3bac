"""The audio path's frame sizes and lead reach the session, and a role overrides the lab's."""

import base64
import shutil
from pathlib import Path

import pytest
from livekit import rtc
from rtc_participant import VoiceParticipant

import rico_lab
from rico_lab.agent.audio_output import LeadingAudioSource
from rico_lab.evaluation.participant import wait_until
from rico_lab.local_model import _session
from rico_lab.local_model.speech import synthesize

pytestmark = pytest.mark.integration

ROLES = Path(__file__).resolve().parent.parent / "roles"
BYTES_PER_MS = 24 * 2  # the model's input: 24 kHz, 16-bit mono


def talk_once(lab: rico_lab.Lab, role: str) -> None:
    """Join, and say a few words once the agent is there: audio all the way to the model."""
    p = VoiceParticipant(lab.join(role))
    try:
        p.join(30)
        p.say(synthesize("Hello there.", sample_rate=24000), silence_after=0.2)
    finally:
        p.close()
    # over once the agent has let go of the user's track: no append of it comes after that
    wait_until(lambda: lab.log.sessions["ended"].notna().all(), 30, "the conversation's end")


def test_the_frame_sizes_reach_the_session_and_a_role_overrides_them(tmp_path, monkeypatch):
    appended: list[int] = []  # bytes of audio per input_audio_buffer.append the model got
    frames_asked: list[int] = []  # the frame size livekit-agents asked of the user's track
    leads: list[int] = []  # the lead of each agent audio source ahead of real time

    on_append = _session.Session._on_append

    async def count_append(self, event):
        appended.append(len(base64.b64decode(event["audio"])))
        await on_append(self, event)

    from_track = rtc.AudioStream.from_track

    def note_frames(*args, **kwargs):
        frames_asked.append(kwargs["frame_size_ms"])
        return from_track(*args, **kwargs)

    leading = LeadingAudioSource.__init__

    def note_lead(self, *args, lead_ms, **kwargs):
        leads.append(lead_ms)
        leading(self, *args, lead_ms=lead_ms, **kwargs)

    monkeypatch.setattr(_session.Session, "_on_append", count_append)
    monkeypatch.setattr(LeadingAudioSource, "__init__", note_lead)
    monkeypatch.setattr(rtc.AudioStream, "from_track", note_frames)
    roles = tmp_path / "roles"
    shutil.copytree(ROLES, roles)
    livekits = (roles / "demo.yaml").read_text().replace("name: demo", "name: livekits")
    (roles / "livekits.yaml").write_text(
        livekits + "audio_path: {input_frame_ms: 50, send_chunk_ms: 100, output_lead_ms: 0}\n"
    )
    with rico_lab.Lab(roles_dir=roles, runs_dir=tmp_path / "runs") as lab:
        # the lab's own: 10 ms frames in, 20 ms chunks to the model, replies 20 ms ahead
        talk_once(lab, "demo")
        assert set(frames_asked) == {10}
        assert appended and set(appended) == {20 * BYTES_PER_MS}
        assert leads == [20]
        frames_asked.clear()
        appended.clear()
        leads.clear()
        talk_once(lab, "livekits")  # livekit-agents' and the plugin's own, by the role
        assert set(frames_asked) == {50}
        assert appended and set(appended) == {100 * BYTES_PER_MS}
        assert leads == []
        started = [e["audio_path"] for e in lab.log.records() if e["type"] == "session_started"]
        assert started == [
            {"input_frame_ms": 10, "send_chunk_ms": 20, "output_lead_ms": 20},
            {"input_frame_ms": 50, "send_chunk_ms": 100, "output_lead_ms": 0},
        ]
