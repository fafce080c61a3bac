"""The agent's audio leaves ``lead_ms`` ahead of real time: the reply's start at once.

``LeadingAudioSource`` runs on a clock of the test's here (its module's ``time``), so what
it sends when is exact; the frames still go to livekit's native source, which takes only
whole 10 ms frames when it has no queue.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from livekit import rtc

from rico_lab._switch_interval import SWITCH_INTERVAL_S
from rico_lab.agent import audio_output
from rico_lab.agent.audio_output import QUEUE_S, TAIL_S, LeadingAudioSource, _ten_ms_frames

pytestmark = pytest.mark.unit

RATE = 24000
TEN_MS = RATE // 100


def counting(ms: int, start: int = 1) -> rtc.AudioFrame:
    """``ms`` of mono audio whose samples count up from ``start``: order shows in them."""
    samples = np.arange(start, start + RATE * ms // 1000, dtype=np.int16)
    return rtc.AudioFrame(samples.tobytes(), RATE, 1, len(samples))


class Sent:
    """The test's clock, and every frame the source hands to the native one, with when."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 100.0
        self.frames: list[tuple[float, np.ndarray]] = []
        self.refuse = False  # the native source raises instead of sending
        monkeypatch.setattr(audio_output, "time", SimpleNamespace(monotonic=lambda: self.now))
        native = rtc.AudioSource.capture_frame

        async def note(source: rtc.AudioSource, frame: rtc.AudioFrame) -> None:
            if self.refuse:
                raise RuntimeError("refused")
            self.frames.append((self.now, np.frombuffer(frame.data, dtype=np.int16).copy()))
            await native(source, frame)  # raises unless a whole 10 ms frame

        monkeypatch.setattr(rtc.AudioSource, "capture_frame", note)

    @property
    def audio(self) -> list[tuple[float, np.ndarray]]:
        """The frames of audio sent (the test's audio is never all zeros), with when."""
        return [(t, f) for t, f in self.frames if f.any()]

    @property
    def silence(self) -> int:
        """How many 10 ms frames of silence were sent."""
        return len(self.frames) - len(self.audio)

    async def settle(self) -> None:
        """Let the source's sender do all it may at this instant of the test's clock."""
        await asyncio.sleep(0.05)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    return Sent(monkeypatch)


def run(test: Callable[[LeadingAudioSource], Coroutine[Any, Any, None]]) -> None:
    """Run ``test`` with a source 25 ms ahead (no frame then starts exactly at the lead)."""

    async def main() -> None:
        source = LeadingAudioSource(RATE, 1, lead_ms=25)
        try:
            await test(source)
        finally:
            await source.aclose()

    asyncio.run(main())


def test_a_reply_starts_with_its_lead_at_once_then_goes_at_real_time(sent: Sent) -> None:

    async def reply(source: LeadingAudioSource) -> None:
        await source.capture_frame(counting(100))  # livekit-agents' first two 50 ms frames
        await sent.settle()
        # the frames starting less than 25 ms from now (0, 10, 20) left without a tick
        assert [t for t, _ in sent.frames] == [100.0] * 3
        assert source.queued_duration == pytest.approx(0.1)
        sent.now = 100.004  # the fourth starts at 30 ms: it leaves at 5, not before
        await sent.settle()
        assert len(sent.frames) == 3
        sent.now = 100.006
        await sent.settle()
        assert len(sent.frames) == 4
        sent.now = 100.12  # the rest has left, in order, and played out
        await source.wait_for_playout()
        assert np.array_equal(np.concatenate([f for _, f in sent.audio]), counting(100).data)
        assert source.queued_duration == 0
        await sent.settle()  # then silence at the same pace: the 20 ms played, 25 ahead
        assert len(sent.audio) == 10 and sent.silence == 5
        assert not any(f.any() for _, f in sent.frames[10:])
        sent.now += 10  # long after: the silence has stopped after TAIL_S
        await sent.settle()
        assert sent.silence == round(TAIL_S * 100)

    run(reply)


def test_audio_after_a_pause_starts_a_new_run_and_audio_before_its_end_continues_it(
    sent: Sent,
) -> None:

    async def two_replies(source: LeadingAudioSource) -> None:
        await source.capture_frame(counting(30))
        sent.now += 0.02  # 10 ms of it still to play: the next audio follows it
        await source.capture_frame(counting(50, start=721))
        assert source.queued_duration == pytest.approx(0.06)
        await sent.settle()
        assert len(sent.frames) == 5 and not sent.silence  # those starting within 25 ms
        sent.now += 1.0  # both played; a second reply starts its own run, lead and all
        await sent.settle()
        before = len(sent.audio)
        await source.capture_frame(counting(50))
        await sent.settle()
        assert len(sent.audio) - before == 3
        # audio that comes while the silence after a run goes out follows what was sent
        sent.now += 0.1  # 80 ms of silence have left, up to 25 ms ahead
        await sent.settle()
        silent = sent.silence
        await source.capture_frame(counting(10))
        assert source.queued_duration == pytest.approx(0.04)
        sent.now += 0.006
        await sent.settle()
        assert sent.silence == silent and sent.audio[-1][0] == sent.frames[-1][0]

    run(two_replies)


async def past_the_queue(source: LeadingAudioSource, sent: Sent) -> asyncio.Future[None]:
    """Take 180 ms, each returning at once, then 30 more: that capture, waiting for room."""
    for _ in range(6):
        await asyncio.wait_for(source.capture_frame(counting(30)), 1)
    capture = asyncio.ensure_future(source.capture_frame(counting(30)))
    await sent.settle()
    return capture


def test_capture_returns_once_no_more_than_livekits_queue_waits(sent: Sent) -> None:

    async def long_reply(source: LeadingAudioSource) -> None:
        capture = await past_the_queue(source, sent)
        assert not capture.done()
        sent.now += 0.005
        await sent.settle()
        assert not capture.done()
        sent.now += 0.01
        await sent.settle()
        assert capture.done() and source.queued_duration <= QUEUE_S

    run(long_reply)


def test_an_interruption_drops_what_has_not_left_and_frees_a_waiting_capture(sent: Sent) -> None:

    async def interrupted(source: LeadingAudioSource) -> None:
        capture = await past_the_queue(source, sent)
        source.clear_queue()
        await asyncio.wait_for(capture, 1)
        assert len(sent.frames) == 3
        assert source.queued_duration == pytest.approx(0.03)  # what left plays out
        sent.now += 1.0
        await sent.settle()
        assert len(sent.audio) == 3  # nothing dropped goes out later: silence follows
        assert sent.silence == round(TAIL_S * 100)
        await asyncio.wait_for(source.wait_for_playout(), 1)

    run(interrupted)


def test_while_a_run_and_its_silence_go_out_the_switch_interval_is_short(sent: Sent) -> None:
    before = sys.getswitchinterval()

    async def reply(source: LeadingAudioSource) -> None:
        await source.capture_frame(counting(50))
        await sent.settle()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        sent.now += 0.05 + TAIL_S - 0.06  # played; the silence after it still going out
        await sent.settle()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        sent.now += 0.06
        await sent.settle()
        assert sys.getswitchinterval() == pytest.approx(before)  # and the next run holds it again
        await source.capture_frame(counting(50))
        await sent.settle()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)

    run(reply)
    assert sys.getswitchinterval() == pytest.approx(before)  # closed mid-run: let go


def test_a_frame_the_native_source_refuses_leaves_no_capture_waiting(sent: Sent) -> None:
    interval = sys.getswitchinterval()

    async def refused(source: LeadingAudioSource) -> None:
        capture = await past_the_queue(source, sent)
        sent.refuse = True
        sent.now += 0.01  # the next frame's time: the native source raises
        await asyncio.wait_for(capture, 1)  # the rest is dropped, the capture returns
        assert source.queued_duration == pytest.approx(0.02)  # what left, 30 ms from 10
        assert sys.getswitchinterval() == pytest.approx(interval)  # the sender that raised let go
        sent.refuse = False
        sent.now += 1.0
        before = len(sent.audio)
        await source.capture_frame(counting(30))  # a new run goes out as before
        await sent.settle()
        assert len(sent.audio) - before == 3

    run(refused)


@given(
    rate=st.sampled_from([8000, 16000, 24000, 48000]),
    channels=st.sampled_from([1, 2]),
    samples=st.integers(min_value=1, max_value=3000),
)
def test_any_frame_goes_out_whole_in_10_ms_frames_its_tail_padded_with_silence(
    rate: int, channels: int, samples: int
) -> None:
    data = np.arange(1, samples * channels + 1, dtype=np.int16)
    frames = _ten_ms_frames(rtc.AudioFrame(data.tobytes(), rate, channels, samples))
    assert {(f.samples_per_channel, f.sample_rate, f.num_channels) for f in frames} == {
        (rate // 100, rate, channels)
    }
    out = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert np.array_equal(out[: len(data)], data)
    assert len(out) - len(data) < rate // 100 * channels and not out[len(data) :].any()
