"""Rehearsals: the same scripted user turns, typed or spoken, against several roles.

A rehearsal joins each role's conversation with a real LiveKit participant (typed turns go
on ``lk.chat`` as the voice client sends them; spoken ones are espeak-ng speech published as
a microphone track), waits for each reply as the lab's log records it, and checks the
script's expectations. The frames it returns are the lab's own, for those conversations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import numpy as np
import pandas as pd
import yaml
from livekit import rtc
from tqdm.auto import tqdm

from ._loop_thread import LoopThread
from .errors import LabError
from .record import Log
from .speech import synthesize

if TYPE_CHECKING:
    from .lab import JoinInfo, Lab

_RATE = 24000
#: Audio moves in 50 ms frames, not WebRTC's 10 ms: every frame event of every stream in the
#: process wakes every stream's loop (livekit's FFI queue), so fewer, larger frames keep the
#: rehearsal's own participants from slowing the agents they measure.
_FRAME_MS = 50
_FRAME = _RATE * _FRAME_MS // 1000
#: Loudness is judged per 10 ms inside a frame, so an onset is placed to 10 ms.
_BLOCK = _RATE // 100
#: Agent audio louder than this (int16 RMS) counts as speech, not comfort noise.
_SPEECH_RMS = 300.0

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["turns"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "turns": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["say"],
                "properties": {
                    "say": {"type": "string", "minLength": 1},
                    "wait_s": {"type": "number", "minimum": 0},
                    "expect": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "tool": {"type": "string"},
                            "args": {"type": "object"},
                            "contains": {"type": "string"},
                            "latency_s": {"type": "number", "exclusiveMinimum": 0},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Turn:
    """One user turn of a script, and what should follow it.

    Attributes:
        say: What the user types or says.
        wait_s: Pause before saying it (after the previous reply).
        tool: The agent should call this tool in its reply...
        args: ...with (at least) these arguments.
        contains: The agent's reply should contain this text (case-insensitive).
        latency_s: The reply's first audio should reach the user within this time.
    """

    say: str
    wait_s: float = 0.0
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    contains: str | None = None
    latency_s: float | None = None


@dataclass(frozen=True)
class Script:
    """Scripted user turns: ``Script.load("scripts/smoke.yaml")`` or ``Script(turns=...)``."""

    turns: tuple[Turn, ...]
    name: str = "script"

    @classmethod
    def load(cls, path: str | Path) -> Script:
        """Read a YAML script; a bad one raises :class:`LabError` naming file and field."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise LabError(f"{path}: cannot read the script: {exc}") from None
        return cls.from_dict(raw, where=str(path))

    @classmethod
    def from_dict(cls, raw: Any, where: str = "script") -> Script:
        """Build a script from its YAML form, validated."""
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(_SCHEMA).iter_errors(raw)
        )
        if error is not None:
            field_name = ".".join(map(str, error.absolute_path)) or "(top level)"
            raise LabError(f"{where}: field {field_name!r}: {error.message}")
        turns = tuple(
            Turn(say=t["say"], wait_s=float(t.get("wait_s", 0.0)), **t.get("expect", {}))
            for t in raw["turns"]
        )
        return cls(turns=turns, name=raw.get("name", Path(where).stem))


@dataclass
class Rehearsal:
    """What a rehearsal produced: one row per role and turn in ``results``, and the log.

    ``results`` columns: ``role``, ``session``, ``mode``, ``turn`` (1-based), ``say``,
    ``reply``, ``tools`` (called in the reply), ``latency_s`` (end of the user's turn to the
    first agent audio at the participant), one ``expect_*`` column per kind of expectation
    (True, False, or None where the turn expects nothing of that kind) and ``passed``.
    """

    results: pd.DataFrame
    log: Log

    @property
    def turns(self) -> pd.DataFrame:
        """The rehearsal's turns, as in ``lab.log.turns``."""
        return self.log.turns

    @property
    def tool_calls(self) -> pd.DataFrame:
        """The rehearsal's tool calls, as in ``lab.log.tool_calls``."""
        return self.log.tool_calls

    @property
    def sessions(self) -> pd.DataFrame:
        """The rehearsal's conversations, as in ``lab.log.sessions``."""
        return self.log.sessions


def rehearse(
    lab: Lab,
    roles: list[str],
    script: Script | str | Path,
    *,
    mode: str = "text",
    parallel: int = 3,
    reply_timeout_s: float = 30.0,
    progress: bool = True,
) -> Rehearsal:
    """Play the same scripted user turns to each role, and check what comes back.

    ``script`` is a :class:`Script` or the path of its YAML file (``turns:`` of
    ``say:``, optional ``wait_s:`` and ``expect:`` with ``tool``/``args``,
    ``contains``, ``latency_s``). ``mode="text"`` types each turn as the voice client
    does; ``mode="audio"`` says it with espeak-ng through a microphone track. Up to
    ``parallel`` roles run at once, with a progress bar. Returns a :class:`Rehearsal`:
    ``results`` (one row per role and turn, with an ``expect_*`` column per
    expectation and ``passed``) and the log of those conversations.
    """
    if mode not in ("text", "audio"):
        raise ValueError(f"mode is 'text' or 'audio', not {mode!r}")
    if not isinstance(script, Script):
        script = Script.load(script)
    for role in roles:
        lab.role(role)  # an unknown or broken role fails here, before anything starts
    bar = tqdm(
        total=len(roles) * len(script.turns), desc=f"rehearse {script.name}", disable=not progress
    )
    connecting = threading.Lock()  # one participant joins at a time (see _Participant.join)

    def one(role: str) -> list[dict[str, Any]]:
        participant = _Participant(lab.join(role, identity=f"rehearsal-{role}"))
        try:
            with connecting:
                participant.join(reply_timeout_s)
            return _run(lab, participant, role, script, mode, reply_timeout_s, bar)
        finally:
            participant.close()

    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
            rows = [row for rows in pool.map(one, roles) for row in rows]
    finally:
        bar.close()
    sessions = {row["session"] for row in rows}
    log = Log(events=[e for e in lab.log._snapshot() if e["session"] in sessions])
    return Rehearsal(results=_results_frame(rows), log=log)


def _run(
    lab: Lab,
    participant: _Participant,
    role: str,
    script: Script,
    mode: str,
    timeout: float,
    bar: tqdm,
) -> list[dict[str, Any]]:
    session = participant.info.room
    record = _Record(lab.log, session)
    _wait(lambda: record.update().replies, timeout, f"{role}: the greeting")
    rows = []
    for number, turn in enumerate(script.turns, start=1):
        time.sleep(turn.wait_s)
        _wait(
            lambda: participant.agent_state() == "listening",
            timeout,
            f"{role}: the agent to listen",
        )
        before, calls_before = len(record.replies), len(record.calls)
        ended = participant.type(turn.say) if mode == "text" else participant.speak(turn.say)
        _wait(
            lambda before=before: len(record.update().replies) > before,
            timeout,
            f"{role}: a reply to turn {number}",
        )
        reply = " ".join(record.replies[before:])
        calls = record.calls[calls_before:]
        onset = participant.audio_onset_after(ended)
        latency = onset - ended if onset is not None else None
        checks = {
            "expect_tool": None
            if turn.tool is None
            else any(
                c["tool"] == turn.tool and _contains(c.get("arguments") or {}, turn.args)
                for c in calls
            ),
            "expect_contains": None
            if turn.contains is None
            else turn.contains.lower() in reply.lower(),
            "expect_latency": None
            if turn.latency_s is None
            else latency is not None and latency <= turn.latency_s,
        }
        rows.append(
            {
                "role": role,
                "session": session,
                "mode": mode,
                "turn": number,
                "say": turn.say,
                "reply": reply,
                "tools": [c["tool"] for c in calls],
                "latency_s": latency,
                **checks,
            }
        )
        bar.update()
    return rows


def _results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["role", "session", "mode", "turn", "say", "reply", "tools", "latency_s"]
    checks = ["expect_tool", "expect_contains", "expect_latency"]
    frame = pd.DataFrame(rows, columns=columns + checks)
    frame["passed"] = frame[checks].apply(lambda row: all(v is not False for v in row), axis=1)
    frame["latency_s"] = frame["latency_s"].astype("float64")
    frame["role"] = pd.Categorical(frame["role"])
    return frame


class _Record:
    """One conversation's agent lines and tool calls in the lab's log, read as they come.

    The rehearsal polls every 50 ms per role; reading only the events added since the last
    poll keeps that cheap however long the lab's log has grown.
    """

    def __init__(self, log: Log, session: str) -> None:
        self._log, self._session, self._read = log, session, 0
        self.replies: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def update(self) -> _Record:
        """Take in the events logged since the last update; returns itself."""
        events = self._log._since(self._read)
        self._read += len(events)
        for e in events:
            if e["session"] != self._session:
                continue
            if e["type"] == "turn" and e.get("speaker") == "agent":
                self.replies.append(e.get("text", ""))
            elif e["type"] == "tool_call":
                self.calls.append(e)
        return self


def _contains(arguments: dict[str, Any], expected: dict[str, Any]) -> bool:
    return all(arguments.get(key) == value for key, value in expected.items())


def _block_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of each whole 10 ms block of int16 ``samples``: where speech is, to 10 ms."""
    whole = samples[: samples.size - samples.size % _BLOCK].astype(np.float64)
    return np.sqrt((whole.reshape(-1, _BLOCK) ** 2).mean(axis=1))


def _wait(ready: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise LabError(f"rehearsal: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class _Participant:
    """A LiveKit participant that types and speaks like a user, on a loop of its own."""

    def __init__(self, info: JoinInfo) -> None:
        self.info = info
        self._thread = LoopThread(f"rehearsal-{info.room}")
        self._loud: list[float] = []
        self._agent: rtc.RemoteParticipant | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.room = self._thread.run(self._new_room(), 10)

    async def _new_room(self) -> rtc.Room:
        return rtc.Room(loop=self._thread.loop)

    def join(self, timeout: float) -> None:
        """Connect, and wait until the agent is in the room too.

        The caller serializes joins: rtc rooms (this one, the agent's) connecting at the same
        moment in one process can stall livekit's FFI.
        """
        self._thread.run(self._connect(), timeout)
        _wait(lambda: self.agent_state() != "", timeout, f"{self.info.role}: the agent to join")

    async def _connect(self) -> None:
        @self.room.on("track_subscribed")
        def _on_track(track: rtc.Track, _pub: object, participant: rtc.RemoteParticipant) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                self._agent = participant
                task = asyncio.ensure_future(self._listen(track))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        await self.room.connect(self.info.url, self.info.token)
        self._source = rtc.AudioSource(_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)

    async def _listen(self, track: rtc.Track) -> None:
        # Every loud block's arrival, not only onsets: the reply to a turn is the first loud
        # block after the turn ended, whatever came (or stopped coming) before it.
        stream = rtc.AudioStream(track, sample_rate=_RATE, num_channels=1, frame_size_ms=_FRAME_MS)
        async for event in stream:
            arrived = time.monotonic()
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            loud = np.flatnonzero(_block_rms(samples) > _SPEECH_RMS)
            if loud.size:
                self._loud.append(arrived - (samples.size - loud[0] * _BLOCK) / _RATE)

    def agent_state(self) -> str:
        """The agent's ``lk.agent.state`` (``listening``, ``thinking``, ``speaking``...)."""
        agents = [
            p for p in self.room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ]  # fmt: skip
        return agents[0].attributes.get("lk.agent.state", "") if agents else ""

    def type(self, text: str) -> float:
        """Send ``text`` as the voice client's text box does; returns when it was sent."""
        self._thread.run(self.room.local_participant.send_text(text, topic="lk.chat"), 10)
        return time.monotonic()

    def speak(self, text: str) -> float:
        """Say ``text`` (espeak-ng) in real time; see :meth:`say`."""
        return self.say(synthesize(text, sample_rate=_RATE).astype(np.int16))

    def say(self, speech: np.ndarray) -> float:
        """Play ``speech`` (int16 at 24 kHz) in real time; returns when it has all gone out.

        A second of silence follows, for the model's turn detection.
        """
        timeout = 30 + len(speech) / _RATE
        self._thread.run(self._play(speech), timeout)
        ended = time.monotonic()  # _play waited for the source's queue to drain
        self._thread.run(self._play(np.zeros(_RATE, np.int16)), timeout)
        return ended

    async def _play(self, pcm: np.ndarray) -> None:
        pcm = np.pad(pcm, (0, -len(pcm) % _FRAME))
        for start in range(0, len(pcm), _FRAME):
            chunk = pcm[start : start + _FRAME]
            await self._source.capture_frame(rtc.AudioFrame(chunk.tobytes(), _RATE, 1, _FRAME))
        await self._source.wait_for_playout()  # capture_frame returns while a second is queued

    def audio_onset_after(self, since: float, timeout: float = 5.0) -> float | None:
        """When agent speech first reached this participant after ``since``.

        The log records a reply once the agent has played it out; its audio reaches this
        participant a jitter buffer later, longer on a busy machine, so this waits a little.
        """
        deadline = time.monotonic() + timeout
        while True:
            onset = next((t for t in self._loud if t > since), None)
            if onset is not None or time.monotonic() > deadline:
                return onset
            time.sleep(0.02)

    def close(self) -> None:
        """Leave the room and stop the loop."""
        if self._thread.alive:
            try:
                self._thread.run(self.room.disconnect(), 10)
            finally:
                self._thread.stop()
