"""Replay a recorded user against other roles: their own voice, their own words, in order.

A conversation's recording (``lab.log.sessions["audio"]``) holds the user on its left
channel, on the record's timeline. A replay cuts that channel into the user's turns by the
record's timestamps and says each one, the real recorded audio, into a new conversation
with each role, waiting for each reply as a rehearsal does; a turn the user typed is typed
again. The results are a rehearsal's, and the log holds the original too, so
``rico_lab.compare(replay)`` lines the original and the replays up by user turn.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LabError
from .audio import read_stereo
from .participant import BLOCK, RATE, SPEECH_RMS, block_rms
from .record import Recording
from .rehearsal import Rehearsal, Stage, rehearse
from .script import Script, Turn

#: Audio kept around a spoken turn's stretch of speech, so its first and last sounds survive.
_LEAD_S, _TAIL_S = 0.3, 0.3
#: Pauses inside one spoken turn are shorter; sounds shorter than this are no turn.
_PAUSE_S, _SHORTEST_S = 0.5, 0.2
#: How long after its speech ended a spoken turn enters the record, at most: the model's
#: end-of-turn silence and its commit.
_TURN_AFTER_SPEECH_S = 3.0


def replay(
    lab: Stage,
    session: str,
    roles: list[str],
    *,
    parallel: int = 3,
    reply_timeout_s: float = 30.0,
    progress: bool = True,
) -> Rehearsal:
    """Say the user turns of recorded conversation ``session`` to each of ``roles``.

    Returns a :class:`~rico_lab.evaluation.rehearsal.Rehearsal` (``mode`` "replay"; ``say``
    is what the record says the user said), whose log holds the original conversation
    beside the replays.

    Raises:
        LabError: no such conversation, no recording of it, or no user turn in it.
    """
    if not lab.log.records(session):
        raise LabError(f"replay: no conversation {session!r} in the log")
    recording = _finished_recording(lab, session, reply_timeout_s)
    events = lab.log.records(session)
    user = _user_channel(recording.path)
    said = _speech_spans(user, recording.started)
    turns = [
        _turn(e, user, recording.started, said)
        for e in events
        if e["type"] == "turn" and e.get("speaker") == "user"
    ]
    if not turns:
        raise LabError(f"replay: conversation {session!r} has no user turn to replay")
    script = Script(turns=tuple(turns), name=f"replay of {session}", where=session)
    replayed = rehearse(
        lab,
        roles,
        script,
        mode="replay",
        parallel=parallel,
        reply_timeout_s=reply_timeout_s,
        progress=progress,
    )
    sessions = {*replayed.results["session"], session}
    return Rehearsal(results=replayed.results, log=lab.log.of(sessions))


def _finished_recording(lab: Stage, session: str, timeout: float) -> Recording:
    """The recording once it is whole: as the conversation ends.

    A conversation whose user just left (a rehearsal that returned) is still closing: its
    recording is whole within moments.
    """
    deadline, read, ended = time.monotonic() + timeout, 0, False
    while True:
        new = lab.log.since(read)  # each event read once, however long the log
        read += len(new)
        for e in new:
            if e["session"] == session and e["type"] == "recording":
                recording = lab.log.recording(session)
                assert recording is not None and recording.whole
                return recording
            ended = ended or (e["session"] == session and e["type"] == "session_ended")
        if time.monotonic() > deadline:
            why = (
                "its lab or its role was told record_audio=False"
                if ended
                else "it is still going on: a recording is whole once it ends"
            )
            raise LabError(f"replay: conversation {session!r} has no recording ({why})")
        time.sleep(0.1)


def _turn(
    event: dict[str, Any], user: np.ndarray, started: float, said: list[tuple[float, float]]
) -> Turn:
    """A spoken turn as recorded, a typed one as text.

    A user turn enters the record once the model has taken it: just after its speech ended,
    or at once when typed. So a turn is spoken when a stretch of speech on the user's
    channel ended shortly before it; that stretch (taken once) is what is said again.
    """
    text = event.get("text") or ""
    at = float(event["t"])  # when it entered the record
    heard = [span for span in said if at - _TURN_AFTER_SPEECH_S <= span[1] <= at + 0.2]
    if not heard:
        return Turn(say=text or "(an empty turn)")
    first, last = heard[-1]
    said.remove(heard[-1])
    lo, hi = int((first - started - _LEAD_S) * RATE), int((last - started + _TAIL_S) * RATE)
    return Turn(say=text or "(speech)", audio=user[max(lo, 0) : max(hi, 0)])


def _speech_spans(user: np.ndarray, started: float) -> list[tuple[float, float]]:
    """Where the user's channel holds speech: (start, end) epoch seconds, in order.

    Loud 10 ms blocks (as loud as the participant takes speech to be), joined across pauses
    shorter than a turn's end of speech, so one spoken turn is one stretch.
    """
    step = BLOCK / RATE
    spans: list[tuple[float, float]] = []
    for i in np.flatnonzero(block_rms(user) > SPEECH_RMS):
        at = started + i * step
        if spans and at - spans[-1][1] <= _PAUSE_S:
            spans[-1] = (spans[-1][0], at + step)
        else:
            spans.append((at, at + step))
    return [(a, b) for a, b in spans if b - a >= _SHORTEST_S]


def _user_channel(path: Path) -> np.ndarray:
    """The recording's left channel (the user), as int16 at the participant's rate."""
    if not path.is_file():
        raise LabError(f"replay: the recording {path} is gone")
    samples, _ = read_stereo(path, RATE)
    return (np.clip(samples[0], -1.0, 1.0) * 32767).astype(np.int16)
