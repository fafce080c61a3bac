"""Each conversation's audio is kept beside its record: both sides, one timeline, one file."""

import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from rtc_participant import VoiceParticipant

import rico_lab
from rico_lab.errors import LabError
from rico_lab.evaluation.audio import read_stereo
from rico_lab.local_model.speech import synthesize

pytestmark = pytest.mark.integration

BLOCK_S = 0.1


SPOKEN = ["Hello there, can you hear me?", "What else is on the menu today?"]
TYPED = ["and this one is typed", "typed again, the last one"]


def talk(lab: rico_lab.Lab, turns: int = 2) -> str:
    """A greeting, then spoken and typed turns in turn; the room, once the user left."""
    p = VoiceParticipant(lab.join("demo"))
    try:
        p.join(30)
        record = lab.log.follow(p.info.room)
        p.wait_for("the greeting", lambda: record.update().replies, 30)
        for n in range(turns):
            p.wait_for("the agent to listen", lambda: p.agent_state() == "listening", 30)
            before = len(record.update().replies)
            if n % 2 == 0:
                speech = synthesize(SPOKEN[n // 2], sample_rate=24000)
                p.say(speech.astype(np.int16), silence_after=1.5)
            else:
                p.type(TYPED[n // 2])
            p.wait_for("the reply", lambda n=before: len(record.update().replies) > n, 30)
        p.wait_for("the reply to end", lambda: p.agent_state() == "listening", 30)
    finally:
        p.close()
    deadline = time.monotonic() + 15
    while pd.isna(lab.log.sessions.set_index("session").loc[p.info.room, "ended"]):
        assert time.monotonic() < deadline, "the conversation did not end"
        time.sleep(0.2)
    return p.info.room


def loudness(path: Path) -> np.ndarray:
    """RMS per 100 ms block of each channel: (channels, blocks)."""
    samples, rate = read_stereo(path)
    block = int(rate * BLOCK_S)
    whole = samples[:, : samples.shape[1] // block * block].reshape(2, -1, block)
    return np.sqrt((whole.astype(np.float64) ** 2).mean(axis=2))


def test_the_audio_of_a_conversation_lands_beside_its_record(tmp_path):
    with rico_lab.Lab(runs_dir=tmp_path) as lab:
        room = talk(lab)
        deadline = time.monotonic() + 15
        while not (recording := lab.log.recording(room)) or not recording.whole:
            assert time.monotonic() < deadline, "no recording event once the conversation ended"
            time.sleep(0.2)
        session = lab.log.sessions.set_index("session").loc[room]
        turns = lab.log.turns.query("session == @room")
    audio = Path(session["audio"])
    assert audio == Path(session["file"]).with_suffix(".ogg") and audio.is_file()
    with av.open(str(audio)) as container:
        assert container.streams.audio[0].channels == 2  # the user left, the agent right
    rms = loudness(audio)
    recorded_s = rms.shape[1] * BLOCK_S
    assert abs(recorded_s - session["duration_s"]) < 0.5, (recorded_s, session["duration_s"])
    # the agent's channel is loud where the record says the agent spoke, and quiet elsewhere
    origin = session["started"]
    loud = rms[1] > 0.02
    speaking = np.zeros_like(loud)
    assert list(turns["speaker"]) == ["agent", "user", "agent", "user", "agent"]
    for turn in turns.query("speaker == 'agent'").itertuples():
        start = (turn.started - origin).total_seconds() / BLOCK_S
        end = (turn.ended - origin).total_seconds() / BLOCK_S
        assert loud[int(start) + 3 : int(end) - 3].mean() > 0.5, turn.text
        speaking[max(int(start) - 3, 0) : int(end) + 4] = True
    assert loud[~speaking].mean() < 0.1
    # the user's spoken turn is on the left channel, and only there
    assert (rms[0] > 0.02).sum() * BLOCK_S > 1.0
    assert rico_lab.load_log(tmp_path).sessions.loc[0, "audio"] == str(audio)


def test_a_lab_or_a_role_can_keep_conversations_off_the_recording(tmp_path):
    with rico_lab.Lab(runs_dir=tmp_path / "lab", record_audio=False) as lab:
        room = talk(lab, turns=0)  # a greeting is enough to have audio to keep
        assert lab.log.sessions.set_index("session").loc[room, "audio"] == ""
        with pytest.raises(LabError, match="has no recording"):
            lab.replay(room, ["demo"], reply_timeout_s=2)
    with rico_lab.Lab(runs_dir=tmp_path / "role") as lab:
        lab.role("demo").update(record_audio=False)  # as a %%role cell would
        room = talk(lab, turns=0)
        assert lab.log.sessions.set_index("session").loc[room, "audio"] == ""
    assert not list(tmp_path.glob("*/*.ogg")) and len(list(tmp_path.glob("*/*.jsonl"))) == 2
