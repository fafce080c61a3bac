"""A real LiveKit participant for tests: joins with a JoinInfo, listens, speaks, reads transcripts.

It is what a user's client does, minus the browser: it runs on its own thread and loop so
the test's main thread can behave like a busy notebook cell meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from livekit import api, rtc

from rico_lab._loop_thread import LoopThread
from rico_lab.lab import JoinInfo

T = TypeVar("T")

RATE = 24000
FRAME = RATE // 100  # 10 ms
#: RMS (int16 scale) above which received audio counts as speech, not comfort noise.
SPEECH_RMS = 300.0


def run_aside(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion in a thread of its own.

    Not ``asyncio.run`` here: the test's main thread may have Playwright's loop running,
    and ``asyncio.run`` leaves the main thread with no event loop for later tests.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def in_room(url: str, api_key: str, api_secret: str, room: str) -> list[api.ParticipantInfo]:
    """Who the LiveKit server at ``url`` has in ``room``: nobody once the room is gone."""

    async def ask() -> list[api.ParticipantInfo]:
        async with api.LiveKitAPI(url, api_key, api_secret) as lk:
            rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
            if not rooms.rooms:
                return []
            found = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            return list(found.participants)

    return run_aside(ask())


@dataclass
class Heard:
    """One frame of agent audio as it arrived."""

    at: float
    rms: float
    seconds: float


@dataclass
class VoiceParticipant:
    info: JoinInfo
    heard: list[Heard] = field(default_factory=list)
    transcripts: list[tuple[str, str]] = field(default_factory=list)
    agent_attributes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._thread = LoopThread("test-participant")

        async def new_room() -> rtc.Room:
            # made on its own loop: the test's thread may have no event loop at all
            return rtc.Room(loop=self._thread.loop)

        self.room = self._thread.run(new_room(), timeout=10)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- runs on the participant's own loop -------------------------------------------------
    async def _connect(self) -> None:
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
        self.source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _listen(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
            samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64)
            rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
            self.heard.append(Heard(time.monotonic(), rms, samples.size / RATE))

    async def _speak(self, samples: np.ndarray, silence_after: float) -> None:
        pcm = np.concatenate(
            [samples.astype(np.int16), np.zeros(int(silence_after * RATE), np.int16)]
        )
        pcm = np.pad(pcm, (0, -len(pcm) % FRAME))
        for start in range(0, len(pcm), FRAME):
            chunk = pcm[start : start + FRAME]
            await self.source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME))

    def handle_rpc(self, method: str, reply: str) -> list[dict[str, object]]:
        """Answer RPC ``method`` with ``reply``, as a client's UI would; returns the payloads."""
        calls: list[dict[str, object]] = []

        async def handler(data: rtc.RpcInvocationData) -> str:
            calls.append(json.loads(data.payload))
            return reply

        self.room.local_participant.register_rpc_method(method, handler)
        return calls

    async def _type(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic="lk.chat")

    async def _close(self) -> None:
        await self.room.disconnect()
        await self.source.aclose()
        for task in list(self._tasks):
            task.cancel()

    # -- called from the test's thread ---------------------------------------------------
    def connect(self) -> None:
        self._thread.run(self._connect(), timeout=20)

    def speak(self, samples: np.ndarray, silence_after: float = 1.5) -> float:
        """Send ``samples`` as microphone audio in real time; returns when it was all sent."""
        self._thread.run(self._speak(samples, silence_after), timeout=60)
        return time.monotonic()

    def type(self, text: str) -> None:
        """Send ``text`` as a typed message, as the voice client's text box does."""
        self._thread.run(self._type(text), timeout=10)

    def speech_seconds(self, since: float = 0.0) -> float:
        """Seconds of non-silent agent audio received after ``since``."""
        return sum(h.seconds for h in self.heard if h.at >= since and h.rms > SPEECH_RMS)

    def agent_lines(self) -> list[str]:
        """Transcribed agent lines, in order."""
        return [text for who, text in self.transcripts if who != self.info.identity and text]

    def greeted(self) -> bool:
        """The local model's greeting was spoken in full."""
        return any(line.startswith("Local model here.") for line in self.agent_lines())

    def replied(self, turn: int) -> bool:
        """The local model acknowledged spoken user turn ``turn``."""
        return any(line.startswith(f"Turn {turn}: I heard") for line in self.agent_lines())

    def wait_for(self, what: str, predicate: object, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}; agent said {self.agent_lines()!r}, "
            f"{self.speech_seconds():.1f} s of speech heard"
        )

    def close(self) -> None:
        if self._thread.alive:
            self._thread.run(self._close(), timeout=10)
        self._thread.stop()
