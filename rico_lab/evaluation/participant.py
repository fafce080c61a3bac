"""A LiveKit participant that types, speaks and listens like a user, on a loop of its own.

Rehearsals, the tests and the benchmarks all talk to agents through this one participant:
what a voice client does, minus the browser. It runs on a thread and loop of its own, so
the caller's thread can wait, poll the record, or behave like a busy notebook cell.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from livekit import rtc

from .._loop_thread import LoopThread
from ..errors import LabError
from ..local_model.speech import synthesize
from ..protocol import AGENT_STATE_ATTRIBUTE, CHAT_TOPIC, JoinInfo

T = TypeVar("T")

#: The sample rate the participant sends and hears, as the realtime model speaks it.
RATE = 24000
#: Audio moves in 50 ms frames, not WebRTC's 10 ms: every frame event of every stream in the
#: process wakes every stream's loop (livekit's FFI queue), so fewer, larger frames keep the
#: participants from slowing the agents they measure.
FRAME_MS = 50
_FRAME = RATE * FRAME_MS // 1000
#: Loudness is judged per 10 ms inside a frame, so an onset is placed to 10 ms.
BLOCK = RATE // 100
#: Agent audio louder than this (int16 RMS) counts as speech, not comfort noise.
SPEECH_RMS = 300.0


def block_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of each whole 10 ms block of int16 ``samples``: where speech is, to 10 ms."""
    whole = samples[: samples.size - samples.size % BLOCK].astype(np.float64)
    return np.sqrt((whole.reshape(-1, BLOCK) ** 2).mean(axis=1))


def wait_until(ready: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``ready`` every 50 ms; :class:`LabError` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class _Hearing:
    """Every frame of agent audio heard, kept in growing numpy arrays.

    No Python object per frame: a participant hears 20 frames a second for as long as a
    conversation lasts, in the same process as the agent whose memory a soak test measures.
    Written by the participant's loop, read by the caller's thread: each frame is written
    before the count that makes it visible, and a grown array holds all the old ones.
    """

    def __init__(self) -> None:
        self.frames = 0
        self._blocks = 0
        self._frame_at = np.empty(256)
        self._frame_end = np.empty(256, np.int64)  # one past the frame's last block
        self._block_at = np.empty(256 * 5)  # when each block's sound arrived
        self._block_rms = np.empty(256 * 5)

    def add(self, at: float, rms: np.ndarray) -> None:
        """Keep one frame that arrived ``at``, with its blocks' loudness."""
        frames, start, end = self.frames, self._blocks, self._blocks + rms.size
        if frames == self._frame_at.size:
            self._frame_at = np.resize(self._frame_at, 2 * frames)
            self._frame_end = np.resize(self._frame_end, 2 * frames)
        if end > self._block_at.size:
            self._block_at = np.resize(self._block_at, 2 * end)
            self._block_rms = np.resize(self._block_rms, 2 * end)
        self._frame_at[frames], self._frame_end[frames] = at, end
        self._block_at[start:end] = at - np.arange(rms.size, 0, -1) * BLOCK / RATE
        self._block_rms[start:end] = rms
        self._blocks = end
        self.frames = frames + 1

    def frame_list(self) -> list[Heard]:
        """The frames so far, each as a :class:`Heard`."""
        frames = self.frames
        ends = self._frame_end[:frames]
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        return [
            Heard(float(at), self._block_rms[a:b].copy())
            for at, a, b in zip(self._frame_at[:frames], starts, ends, strict=True)
        ]

    def loud_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """(arrival time of each speech block, arrival time of its frame), in order."""
        frames, blocks = self.frames, self._blocks
        loud = np.flatnonzero(self._block_rms[:blocks] > SPEECH_RMS)
        frame_of = np.searchsorted(self._frame_end[:frames], loud, side="right")
        return self._block_at[loud], self._frame_at[frame_of]


@dataclass(frozen=True)
class Heard:
    """One frame of audio from the agent, as it arrived.

    Attributes:
        at: When it arrived (``time.monotonic()``).
        rms: Loudness of each 10 ms block of it (int16 scale).
    """

    at: float
    rms: np.ndarray

    @property
    def speech_s(self) -> float:
        """Seconds of it that are speech (louder than comfort noise)."""
        return int((self.rms > SPEECH_RMS).sum()) * BLOCK / RATE


class Participant:
    """One participant in one room: joins with a :class:`~rico_lab.protocol.JoinInfo`.

    ``frame_ms`` is how finely it hears: 50 ms frames by default (see ``FRAME_MS``), 10 ms
    where a test measures gaps between frames.

    It publishes a microphone track, hears the agent's audio (:attr:`heard`), reads the
    agent's transcripts (:meth:`agent_lines`) and attributes, types on ``lk.chat`` as the
    voice client's text box does, and can serve or call RPC methods.
    """

    def __init__(self, info: JoinInfo, *, frame_ms: int = FRAME_MS) -> None:
        self.info = info
        self._frame_ms = frame_ms
        self._thread = LoopThread(f"participant-{info.identity}")
        self._hearing = _Hearing()
        #: (identity, text) of every finished transcript stream, in order
        self.transcripts: list[tuple[str, str]] = []
        #: the attributes of the other participant (the agent), as they are now
        self.agent_attributes: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._source: rtc.AudioSource | None = None
        self.room = self.run(self._new_room(), 10)

    async def _new_room(self) -> rtc.Room:
        return rtc.Room(loop=self._thread.loop)  # on its own loop: the caller may have none

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        """Run ``coro`` on the participant's loop and wait for its result."""
        return self._thread.run(coro, timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the participant's loop; the future has its result."""
        return self._thread.submit(coro)

    def connect(self, *, microphone: bool = True, timeout: float = 20.0) -> None:
        """Join the room (with a microphone track, unless ``microphone=False``)."""
        self.run(self._connect(microphone), timeout)

    def join(self, timeout: float) -> None:
        """Connect, and wait until the agent is in the room too.

        Callers that start several at once serialize joins: rtc rooms (this one, the
        agent's) connecting at the same moment in one process can stall livekit's FFI.
        """
        self.connect(timeout=timeout)
        wait_until(lambda: self.agent_state() != "", timeout, f"{self.info.role}: the agent")

    async def _connect(self, microphone: bool) -> None:
        @self.room.on("track_subscribed")
        def _on_track(track: rtc.Track, _pub: object, participant: rtc.RemoteParticipant) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                self.agent_attributes.update(participant.attributes)
                self._spawn(self._listen(track))

        @self.room.on("participant_attributes_changed")
        def _on_attributes(_changed: dict[str, str], participant: rtc.Participant) -> None:
            if participant.identity != self.info.identity:
                # an attribute set to "" is deleted: take the whole set, not only the changes
                self.agent_attributes.clear()
                self.agent_attributes.update(participant.attributes)

        def _on_text(reader: rtc.TextStreamReader, identity: str) -> None:
            async def read() -> None:
                self.transcripts.append((identity, await reader.read_all()))

            self._spawn(read())

        self.room.register_text_stream_handler("lk.transcription", _on_text)
        await self.room.connect(self.info.url, self.info.token)
        if microphone:
            self._source = rtc.AudioSource(RATE, 1)
            track = rtc.LocalAudioTrack.create_audio_track("mic", self._source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await self.room.local_participant.publish_track(track, options)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(
            track, sample_rate=RATE, num_channels=1, frame_size_ms=self._frame_ms
        )
        async for event in stream:
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            self._hearing.add(time.monotonic(), block_rms(samples))

    # what a user does

    def agent_state(self) -> str:
        """The agent's ``lk.agent.state`` (``listening``, ``thinking``, ``speaking``...)."""
        agents = [
            p for p in self.room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ]  # fmt: skip
        return agents[0].attributes.get(AGENT_STATE_ATTRIBUTE, "") if agents else ""

    def type(self, text: str) -> float:
        """Send ``text`` as the voice client's text box does; returns when it was sent."""
        self.run(self.room.local_participant.send_text(text, topic=CHAT_TOPIC), 10)
        return time.monotonic()

    def speak(self, text: str) -> float:
        """Say ``text`` (espeak-ng) in real time; see :meth:`say`."""
        return self.say(synthesize(text, sample_rate=RATE).astype(np.int16))

    def say(self, speech: np.ndarray, silence_after: float = 1.0) -> float:
        """Play ``speech`` (int16 at 24 kHz) in real time; returns when it has all gone out.

        ``silence_after`` seconds of silence follow, for the model's turn detection.
        """
        timeout = 30 + len(speech) / RATE + silence_after
        self.run(self._play(speech.astype(np.int16)), timeout)
        ended = time.monotonic()  # _play waited for the source's queue to drain
        self.run(self._play(np.zeros(int(silence_after * RATE), np.int16)), timeout)
        return ended

    async def _play(self, pcm: np.ndarray) -> None:
        if self._source is None:
            raise LabError(f"{self.info.identity} joined without a microphone")
        pcm = np.pad(pcm, (0, -len(pcm) % _FRAME))
        for start in range(0, len(pcm), _FRAME):
            chunk = pcm[start : start + _FRAME]
            await self._source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, _FRAME))
        await self._source.wait_for_playout()  # capture_frame returns while a second is queued

    # what it heard

    @property
    def heard(self) -> list[Heard]:
        """Every frame of agent audio heard so far, in order."""
        return self._hearing.frame_list()

    def audio_onset_after(self, since: float, timeout: float = 5.0) -> float | None:
        """When agent speech first reached this participant after ``since``.

        The record has a reply once the agent has played it out; its audio reaches this
        participant a jitter buffer later, longer on a busy machine, so this waits a little.
        """
        deadline = time.monotonic() + timeout
        while True:
            onset = self._first_loud_after(since)
            if onset is not None or time.monotonic() > deadline:
                return onset
            time.sleep(0.02)

    def _first_loud_after(self, since: float) -> float | None:
        # every loud block, not only onsets: the reply to a turn is the first loud block
        # after the turn ended, whatever came (or stopped coming) before it
        at, _frame_at = self._hearing.loud_blocks()
        later = at[at > since]
        return float(later[0]) if later.size else None

    def speech_seconds(self, since: float = 0.0) -> float:
        """Seconds of agent speech (not comfort noise) that arrived after ``since``."""
        _at, frame_at = self._hearing.loud_blocks()
        return int((frame_at >= since).sum()) * BLOCK / RATE

    def agent_lines(self) -> list[str]:
        """The agent's transcribed lines, in order."""
        return [text for who, text in self.transcripts if who != self.info.identity and text]

    # RPC, either way

    def handle_rpc(self, method: str, reply: str) -> list[dict[str, Any]]:
        """Answer RPC ``method`` with ``reply``, as a client's UI would; returns the payloads."""
        calls: list[dict[str, Any]] = []

        async def handler(data: rtc.RpcInvocationData) -> str:
            calls.append(json.loads(data.payload))
            return reply

        self.room.local_participant.register_rpc_method(method, handler)
        return calls

    async def rpc(self, to: str, method: str, arguments: Any, timeout: float = 10.0) -> str:
        """Call ``method`` on participant ``to`` as the agent's tools do; its answer."""
        payload = json.dumps({"arguments": arguments})
        return await self.room.local_participant.perform_rpc(
            destination_identity=to, method=method, payload=payload, response_timeout=timeout
        )

    def close(self) -> None:
        """Leave the room and stop the loop; safe to call twice."""
        if self._thread.alive:
            try:
                self.run(self._close(), 10)
            finally:
                self._thread.stop()

    async def _close(self) -> None:
        await self.room.disconnect()
        if self._source is not None:
            await self._source.aclose()
        for task in list(self._tasks):
            task.cancel()
