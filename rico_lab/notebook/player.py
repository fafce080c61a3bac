"""The player: hear a recorded conversation, see both sides' waveforms and its turns.

An anywidget rather than a plot beside ``IPython.display.Audio``: clicking a turn must seek
the audio, which only one page script holding both can do. The widget state mirrors
``widgets/src/player.ts``'s ``PlayerState`` key for key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from ..errors import LabError
from ..evaluation.audio import read_stereo
from ..evaluation.record import Log
from .bundle import bundle

BUNDLE = bundle("player.js")  # fails early, saying how to build it
#: One waveform peak per this much audio: fine enough to see a word, small for an hour.
BLOCK_S = 0.05


class Player(anywidget.AnyWidget):
    """One conversation's stereo recording (user left, agent right) with its turns on it.

    Build it with :meth:`of`. The audio plays in the page from the OGG's bytes, so seeking
    and playing never wait for the kernel.
    """

    _esm = BUNDLE

    # Python -> browser
    audio = traitlets.Bytes(b"").tag(sync=True)  # the OGG file, sent as a binary buffer
    duration_s = traitlets.Float(0.0).tag(sync=True)
    #: per channel (user, agent): the peak amplitude (0..1) of each BLOCK_S of audio
    waveform = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    #: speaker, text, start_s, end_s (from the recording's start), interrupted, tools
    turns = traitlets.List(traitlets.Dict()).tag(sync=True)

    # browser -> Python
    position_s = traitlets.Float(0.0).tag(sync=True)  # the playhead, while playing and on seek

    @classmethod
    def of(cls, log: Log, session: str) -> Player:
        """The player of ``session``'s recording, its turns placed on the recording's timeline.

        Raises :class:`~rico_lab.errors.LabError` naming the session when the log has no
        such conversation, or it has no recording, or the file is missing or empty. One
        still going on, or cut short by a dead kernel, plays as far as it is written.
        """
        events = log.records(session)
        if not events:
            raise LabError(f"no conversation {session!r} in the log")
        recording = log.recording(session)
        if recording is None:
            raise LabError(f"the conversation {session!r} has no recording")
        path = recording.path
        if not path.is_file() or path.stat().st_size == 0:
            raise LabError(f"the recording of {session!r}, {path}, is missing or empty")
        duration_s, waveform = peaks(path)
        return cls(
            audio=path.read_bytes(),
            duration_s=duration_s,
            waveform=waveform,
            turns=timeline(events, origin=recording.started),
        )

    def __repr__(self) -> str:
        return f"<rico_lab.Player {self.duration_s:.1f} s, {len(self.turns)} turns>"


def peaks(path: Path) -> tuple[float, list[list[float]]]:
    """The audio's length in seconds, and each channel's peak per ``BLOCK_S`` block."""
    samples, rate = read_stereo(path)
    block = round(rate * BLOCK_S)
    padded = -samples.shape[1] % block  # the last block, partial, padded with silence
    blocks = np.pad(np.abs(samples), ((0, 0), (0, padded))).reshape(2, -1, block)
    return samples.shape[1] / rate, np.round(blocks.max(axis=2), 3).tolist()


def timeline(events: list[dict[str, Any]], origin: float) -> list[dict[str, Any]]:
    """The turns in order of their start, in seconds from ``origin``, with their tool calls.

    A tool call goes to the latest turn that started at or before it: the turn it ran in,
    or the user turn it answered until the next turn begins. One before any turn goes to
    none.
    """
    turns = sorted((e for e in events if e["type"] == "turn"), key=lambda e: e["started"])
    placed = [
        {
            "speaker": e["speaker"],
            "text": e.get("text", ""),
            "start_s": e["started"] - origin,
            "end_s": e["ended"] - origin,
            "interrupted": bool(e.get("interrupted")),
            "tools": [],
        }
        for e in turns
    ]
    starts = np.array([e["started"] for e in turns])
    for call in (e for e in events if e["type"] == "tool_call"):
        index = int(np.searchsorted(starts, call["started"], side="right")) - 1
        if index >= 0:
            placed[index]["tools"].append(call["tool"])
    return placed
