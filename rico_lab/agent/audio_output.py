"""How soon the agent's reply leaves: its audio sent a little ahead of real time.

livekit-agents publishes the agent's voice through an ``rtc.AudioSource`` with a 200 ms
queue, out of which a native task hands the track 10 ms every 10 ms, and 10 ms of silence
whenever the queue is empty. The track's Opus encoder makes one 20 ms packet of two of
those, so the first packet of every reply leaves 10 to 20 ms after its audio was there,
inside a stream that never pauses. :class:`LeadingAudioSource` is the same native source
without its queue (which takes 10 ms frames and sends each at once) and keeps the pace
itself, ``lead_ms`` ahead: the first ``lead_ms`` of a reply leave as soon as they arrive,
the rest in real time after them, then some silence, then nothing until the next reply.
The listener's jitter buffer absorbs the lead. What the queue's size allows, what counts as
played and what an interruption throws away stay as livekit's source has them, and the
rest of the output is livekit-agents' own (:class:`LeadingAudioOutput`, a subclass of its
private room output class: livekit-agents is pinned, and ``tests/test_audio_path.py`` runs
a conversation through it).

The pace is Python's, and every frame the native source takes is a call back into Python
from livekit's one audio thread: a hundred a second per agent speaking, each waiting for
the GIL. Behind a thread computing in pure Python at the default switch interval (5 ms), a
reply played up to half as fast as it should, and three agents' at a quarter; so while it
sends, the source holds the process's switch interval short
(:mod:`rico_lab._switch_interval`), as a lab does for notebook cells
(``benchmarks/output_under_load.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from livekit import rtc
from livekit.agents import utils
from livekit.agents.voice.room_io._output import _ParticipantAudioOutput

from .. import _switch_interval

#: the native source's queue in livekit-agents' output, which capture_frame keeps to
QUEUE_S = 0.2
#: the frames the native source takes when it has no queue
FRAME_S = 0.01
#: the silence sent after each run: enough for Opus to go over to DTX (200 ms of quiet)
TAIL_S = 0.4


def _ten_ms_frames(frame: rtc.AudioFrame) -> list[rtc.AudioFrame]:
    """``frame`` in 10 ms frames, the last padded with silence."""
    samples = frame.sample_rate // 100
    size = samples * frame.num_channels * 2  # bytes, 16-bit samples
    data = bytes(frame.data)
    data += bytes(-len(data) % size)
    return [
        rtc.AudioFrame(data[at : at + size], frame.sample_rate, frame.num_channels, samples)
        for at in range(0, len(data), size)
    ]


class LeadingAudioSource(rtc.AudioSource):
    """An audio source that sends each run of audio ``lead_ms`` ahead of real time.

    A run starts when audio arrives after the last has played out: the 10 ms frames that
    start less than ``lead_ms`` from then are sent at once, each following one as the
    run's clock comes ``lead_ms`` near its start. ``queued_duration`` is what has not
    played yet on that clock, as the queued source reports it, so livekit-agents' playback
    position stays right.

    After a run, ``TAIL_S`` of silence follows at the same pace. The queued source sends
    silence whenever it has nothing else; a track that stops instead leaves the listener's
    jitter buffer to make up sound after the reply's last packet (about 200 ms of it, as
    Chromium counts concealed audio), while silence lets the Opus encoder go over to its
    discontinuous transmission, which the listener plays as quiet.
    """

    def __init__(self, sample_rate: int, num_channels: int, *, lead_ms: int) -> None:
        super().__init__(sample_rate, num_channels, queue_size_ms=0)
        self._lead = lead_ms / 1000
        self._unsent: deque[rtc.AudioFrame] = deque()
        #: when the last frame of audio taken ends playing (monotonic); unsent ones precede it
        self._end = 0.0
        #: when the last frame sent, audio or silence, ends playing on the same clock
        self._sent_end = 0.0
        self._silence = rtc.AudioFrame.create(sample_rate, num_channels, sample_rate // 100)
        self._sent = asyncio.Event()  # a frame left, or the unsent ones were dropped
        self._dropped = asyncio.Event()  # wakes a sender waiting for a dropped frame's time
        self._sender: asyncio.Task[None] | None = None

    @property
    def queued_duration(self) -> float:
        """Seconds of audio taken that have not played yet, sent or not."""
        return max(self._end - time.monotonic(), 0.0)

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        """Take ``frame``; return once at most ``QUEUE_S`` of audio waits to play.

        A frame's tail short of 10 ms is padded with silence: the native source takes
        whole 10 ms frames, and livekit-agents' output only sends one at a reply's end.
        """
        if frame.samples_per_channel == 0 or self._ffi_handle.disposed:
            return
        # a new run starts now, unless the last one or its silence is still playing
        self._end = max(self._end, self._sent_end, time.monotonic())
        frames = _ten_ms_frames(frame)
        self._unsent.extend(frames)
        self._end += FRAME_S * len(frames)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        while self._unsent and self.queued_duration > QUEUE_S:
            self._sent.clear()
            await self._sent.wait()

    async def _send(self) -> None:
        """Send each frame once the audio before it is ``lead_ms`` from played.

        The switch interval stays short meanwhile: a frame late by a switch interval is
        one the listener's jitter buffer may have to make up.
        """
        _switch_interval.hold()
        try:
            await self._send_run()
        finally:
            _switch_interval.release()

    async def _send_run(self) -> None:
        while self._unsent or self._sent_end < self._end + TAIL_S:
            if self._unsent:
                starts, frame = self._end - FRAME_S * len(self._unsent), self._unsent[0]
            else:
                starts, frame = max(self._sent_end, self._end), self._silence
            wait = starts - self._lead - time.monotonic()
            if wait > 0:
                self._dropped.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dropped.wait(), wait)
                continue  # audio may have come, or gone, meanwhile
            if self._unsent:
                self._unsent.popleft()
            try:
                await super().capture_frame(frame)
            except BaseException:  # no capture_frame may wait on a sender that is gone
                self.clear_queue()
                self._end = min(self._end, self._sent_end)  # nor did this frame leave
                raise
            self._sent_end = starts + FRAME_S
            self._sent.set()

    def clear_queue(self) -> None:
        """Drop the audio not sent yet; what was sent plays out, then the silence."""
        self._end -= FRAME_S * len(self._unsent)
        self._unsent.clear()
        self._sent.set()
        self._dropped.set()

    async def wait_for_playout(self) -> None:
        """Return once all the audio taken has played, on this source's clock."""
        while self._unsent or self.queued_duration > 0:
            await asyncio.sleep(max(self.queued_duration, FRAME_S))

    async def aclose(self) -> None:
        """Stop sending, and release the native source."""
        if self._sender is not None:
            await utils.aio.cancel_and_wait(self._sender)
        await super().aclose()


class LeadingAudioOutput(_ParticipantAudioOutput):
    """livekit-agents' room audio output, publishing through a :class:`LeadingAudioSource`.

    Everything but the source is livekit-agents': the track, its 50 ms frames, pausing,
    interruptions and the playback events the transcript follows.
    """

    def __init__(self, room: rtc.Room, *, lead_ms: int, sample_rate: int = 24000) -> None:
        super().__init__(
            room,
            sample_rate=sample_rate,
            num_channels=1,
            track_publish_options=rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
        )
        self._audio_source = LeadingAudioSource(sample_rate, 1, lead_ms=lead_ms)
