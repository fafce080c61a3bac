"""The player of a recorded conversation: its audio, both waveforms, and the turns on them.

A synthetic conversation: a stereo Opus OGG (the user's tone on the left, the agent's on
the right, silence between) and a runs file written through the record's own ``Log``.
``tests/test_player_browser.py`` shows the same one in JupyterLab.
"""

from __future__ import annotations

import re
from pathlib import Path

import anywidget
import av
import numpy as np
import pytest

import rico_lab
from rico_lab.errors import LabError
from rico_lab.evaluation.record import Log
from rico_lab.notebook.player import BLOCK_S, Player

pytestmark = pytest.mark.unit

PLAYER_TS = Path(__file__).resolve().parent.parent / "widgets" / "src" / "player.ts"
RATE = 48000
SESSION = "played"
#: when the recording's first sample was taken (epoch seconds)
ORIGIN = 1_700_000_000.0
LENGTH_S = 4.5
#: (channel, start_s, end_s, Hz): the user's turn on the left, the agent's on the right
TONES = [(0, 1.0, 2.0, 660.0), (1, 2.5, 4.0, 440.0)]


def write_ogg(path: Path) -> None:
    """Stereo Opus at 48 kHz: silence but for ``TONES``."""
    t = np.arange(int(LENGTH_S * RATE)) / RATE
    samples = np.zeros((2, t.size), np.float32)
    for channel, start, end, hz in TONES:
        on = (t >= start) & (t < end)
        samples[channel, on] = 0.5 * np.sin(2 * np.pi * hz * t[on])
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=RATE, layout="stereo")
        stream.bit_rate = 128_000
        for start in range(0, t.size, 960):  # Opus frames are 20 ms
            chunk = samples[:, start : start + 960]
            frame = av.AudioFrame.from_ndarray(
                chunk.T.reshape(1, -1).copy(), format="flt", layout="stereo"
            )
            frame.sample_rate, frame.pts = RATE, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def recorded(folder: Path, session: str = SESSION) -> str:
    """Write the conversation into ``folder``: its runs file, and its OGG beside it."""
    log = Log(folder)
    log.write(session, "session_started", role="demo", role_version="1", model="local",
              user="user-1", resumed=False)  # fmt: skip
    audio = log.new_audio_file(session)
    assert audio is not None
    write_ogg(audio)
    log.write(session, "recording", file=audio.name, started=ORIGIN)
    (_, user_start, user_end, _), (_, agent_start, agent_end, _) = TONES
    log.write(session, "turn", speaker="user", text="What is on the menu today?",
              interrupted=False, started=ORIGIN + user_start, ended=ORIGIN + user_end)  # fmt: skip
    # after the user's turn, before the agent answers: the user turn's
    log.write(session, "tool_call", tool="lookup_menu", arguments={}, result="pizza",
              error=None, started=ORIGIN + 2.2, duration_s=0.1)  # fmt: skip
    log.write(session, "turn", speaker="agent", text="Pizza, and a soup of the day.",
              interrupted=True, started=ORIGIN + agent_start, ended=ORIGIN + agent_end)  # fmt: skip
    # while the agent speaks: the agent turn's
    log.write(session, "tool_call", tool="show_table", arguments={}, result="shown",
              error=None, started=ORIGIN + 3.0, duration_s=0.2)  # fmt: skip
    log.write(session, "session_ended", reason="job ended")
    log.close()
    return session


@pytest.fixture
def player(tmp_path: Path) -> Player:
    session = recorded(tmp_path)
    return Player.of(rico_lab.load_log(tmp_path), session)


def test_the_audio_is_the_recording_and_as_long(player: Player, tmp_path: Path):
    (ogg,) = tmp_path.glob("*.ogg")
    assert player.audio == ogg.read_bytes()
    assert player.duration_s == pytest.approx(LENGTH_S, abs=0.05)


def test_each_channel_is_loud_where_its_tone_is_and_quiet_elsewhere(player: Player):
    assert len(player.waveform) == 2
    for channel, start, end, _ in TONES:
        peaks = np.array(player.waveform[channel])
        assert peaks.size == pytest.approx(LENGTH_S / BLOCK_S, abs=2)
        block = np.arange(peaks.size) * BLOCK_S
        tone = (block >= start + 0.1) & (block < end - 0.1)
        around = (block < start - 0.1) | (block >= end + 0.1)
        assert peaks[tone].min() > 0.3, (channel, peaks[tone])
        assert peaks[around].max() < 0.05, (channel, peaks[around])


def test_turns_are_on_the_recording_timeline_with_their_tools(player: Player):
    user, agent = player.turns
    assert user == {
        "speaker": "user",
        "text": "What is on the menu today?",
        "start_s": pytest.approx(1.0),
        "end_s": pytest.approx(2.0),
        "interrupted": False,
        "tools": ["lookup_menu"],
    }
    assert (agent["speaker"], agent["interrupted"], agent["tools"]) == (
        "agent",
        True,
        ["show_table"],
    )
    assert (agent["start_s"], agent["end_s"]) == (pytest.approx(2.5), pytest.approx(4.0))


def test_player_ts_declares_the_synced_traitlets():
    """A key on one side only is a value the page never gets, or never sends back."""
    body = re.search(r"export interface PlayerState \{\n(.*?)\n\}", PLAYER_TS.read_text(), re.S)
    assert body, f"no `export interface PlayerState {{...}}` in {PLAYER_TS}"
    keys = set(re.findall(r"^\s*(\w+)\??:", body.group(1), re.M))
    own = Player.class_traits(sync=True).keys() - anywidget.AnyWidget.class_traits(sync=True)
    assert keys == set(own), (keys, own)


def test_an_unknown_conversation_is_named(tmp_path: Path):
    recorded(tmp_path)
    with pytest.raises(LabError, match="'nobody'"):
        Player.of(rico_lab.load_log(tmp_path), "nobody")


def test_a_conversation_without_a_recording_is_named(tmp_path: Path):
    log = Log(tmp_path)
    log.write("unrecorded", "session_started", role="demo", model="local", user="u")
    log.write("unrecorded", "turn", speaker="user", text="hi", interrupted=False,
              started=ORIGIN, ended=ORIGIN + 1)  # fmt: skip
    log.close()
    with pytest.raises(LabError, match="'unrecorded' has no recording"):
        Player.of(rico_lab.load_log(tmp_path), "unrecorded")


def test_an_empty_recording_is_named(tmp_path: Path):
    session = recorded(tmp_path)
    (ogg,) = tmp_path.glob("*.ogg")
    ogg.write_bytes(b"")  # what a kernel killed mid-conversation leaves
    with pytest.raises(LabError, match=f"'{session}'.*missing or empty"):
        Player.of(rico_lab.load_log(tmp_path), session)
