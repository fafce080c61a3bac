"""Voice-activity detection for the local realtime server: webrtcvad with an energy gate."""

from __future__ import annotations

import bisect
import collections
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import webrtcvad

INPUT_RATE = 24000
"""The realtime API's input rate; every count of samples here is at this rate."""

FRAME_MS = 10
"""webrtcvad's shortest frame: a turn ends ``silence_duration_ms`` after the last voiced
frame, to within 10 ms (30 ms frames ended it 15 ms later on average, and 510 ms for 500)."""
_FRAME_24K = INPUT_RATE * FRAME_MS // 1000  # 240 samples, a multiple of 3 so 24k -> 16k is exact
_START_WINDOW_FRAMES = 300 // FRAME_MS  # speech starts when most of the last 300 ms is voiced ...
_START_VOICED_FRAMES = 180 // FRAME_MS  # ... 180 ms of it: a click or a cough opens no turn


def vad_mode(threshold: float) -> int:
    """Map the realtime API's 0..1 VAD threshold to a webrtcvad aggressiveness (1..3).

    A higher threshold asks for more confidence before calling audio speech, as a higher
    webrtcvad mode does; 0 (the most trusting mode) lets steady noise through after speech.
    """
    return min(3, int(max(0.0, threshold) * 4) + 1)


def energy_floor(threshold: float) -> float:
    """The RMS (int16 scale) below which a frame is silence whatever webrtcvad says.

    webrtcvad adapts to its noise and can call faint hiss speech right after a loud
    utterance: a browser's capture processing (noise suppression, gain control) leaves
    80 ms of it at -50 to -46 dBFS after every utterance, which a -50 dBFS floor heard as
    speech, ending each turn that much late. The floor runs from -60 dBFS (threshold 0)
    to -20 dBFS (threshold 1), -40 dBFS at the API's default 0.5; speech at a microphone
    is -30 to -10 dBFS.
    """
    return 32768 * 10 ** ((-60 + 40 * min(max(threshold, 0.0), 1.0)) / 20)


@dataclass(frozen=True)
class VadEvent:
    """A speech boundary found in the stream.

    Attributes:
        kind: ``"start"`` when speech begins, ``"stop"`` when enough silence followed it.
        sample: Where, as a count of 24 kHz samples since the stream began. A start is the
            first voiced frame (before any prefix padding); a stop is the end of the frame
            that completed the required silence.
    """

    kind: Literal["start", "stop"]
    sample: int


class _FrameClassifier:
    """Says whether each ``FRAME_MS`` frame of a 24 kHz stream is voiced."""

    def __init__(self, threshold: float) -> None:
        self._vad = webrtcvad.Vad(vad_mode(threshold))
        self._floor = energy_floor(threshold)
        self._pending = np.zeros(0, dtype=np.int16)  # the start of the next frame

    def feed(self, samples: np.ndarray) -> list[bool]:
        """The verdicts of the whole frames the stream's next samples complete, in order."""
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) // _FRAME_24K
        frames = self._pending[: whole * _FRAME_24K].reshape(whole, _FRAME_24K)
        self._pending = self._pending[whole * _FRAME_24K :]
        return [self.is_voiced(frame) for frame in frames]

    def is_voiced(self, frame: np.ndarray) -> bool:
        x = frame.astype(np.float32)
        if math.sqrt(float(np.mean(x * x))) < self._floor:
            return False
        # 24 kHz -> 16 kHz by linear interpolation: of every 3 samples keep the first, and
        # the midpoint of the other two; webrtcvad only looks below 4 kHz anyway
        down = np.empty(len(x) * 2 // 3, dtype=np.float32)
        down[0::2] = x[0::3]
        down[1::2] = (x[1::3] + x[2::3]) / 2
        pcm = np.clip(np.round(down), -32768, 32767).astype("<i2").tobytes()
        return self._vad.is_speech(pcm, 16000)


class SpeechDetector:
    """Streams 24 kHz PCM16 and reports where speech starts and stops, with hysteresis.

    Entering speech needs 180 ms voiced within 300 ms; leaving it needs
    ``silence_duration_ms`` without a voiced frame. The two different thresholds keep the
    short pauses between words inside one turn, as OpenAI's server VAD does.
    """

    def __init__(self, *, threshold: float, silence_duration_ms: int, start_sample: int) -> None:
        """Create a detector for a stream whose next sample is number ``start_sample``.

        Args:
            threshold: The realtime API's VAD threshold, 0..1.
            silence_duration_ms: How much silence ends a turn.
            start_sample: The stream position of the first sample pushed, so that events
                share the session's timeline.
        """
        self._classifier = _FrameClassifier(threshold)
        self._silence_frames = max(1, math.ceil(silence_duration_ms / FRAME_MS))
        self._next_frame = start_sample  # stream position of the next frame to classify
        self._window: collections.deque[tuple[int, bool]] = collections.deque(
            maxlen=_START_WINDOW_FRAMES
        )
        self._speaking = False
        self._silent_run = 0

    @property
    def speaking(self) -> bool:
        """Whether the stream is inside a turn (speech started and has not stopped)."""
        return self._speaking

    def push(self, samples: np.ndarray) -> list[VadEvent]:
        """Feed the next samples and get the boundaries they complete, in order."""
        events: list[VadEvent] = []
        for voiced in self._classifier.feed(samples):
            if event := self._step(self._next_frame, voiced):
                events.append(event)
            self._next_frame += _FRAME_24K
        return events

    def _step(self, frame_start: int, voiced: bool) -> VadEvent | None:
        if not self._speaking:
            self._window.append((frame_start, voiced))
            if sum(v for _, v in self._window) >= _START_VOICED_FRAMES:
                onset = next(start for start, v in self._window if v)
                self._speaking = True
                self._silent_run = 0
                self._window.clear()
                return VadEvent("start", onset)
            return None
        self._silent_run = 0 if voiced else self._silent_run + 1
        if self._silent_run >= self._silence_frames:
            self._speaking = False
            return VadEvent("stop", frame_start + _FRAME_24K)
        return None


class SpeechMeter:
    """Measures a clip's voiced span while it streams in, as :func:`speech_duration` would.

    Why streamed: run over a finished turn, the classifier's pass over every frame (about
    7 ms for a 4 s turn) sat between the end of speech and the commit, in every reply's
    latency. Frames are classified as they arrive, from the clip's first sample, by a
    classifier of the clip's own (webrtcvad adapts to what it heard), so the figure is the
    same whichever chunks the audio came in.
    """

    def __init__(self, threshold: float = 0.5) -> None:
        self._classifier = _FrameClassifier(threshold)
        self._frames = 0  # frames classified so far
        self._voiced: list[int] = []  # the voiced ones' indexes, in order

    def push(self, samples: np.ndarray) -> None:
        """Feed the clip's next samples (mono int16 at 24 kHz)."""
        for voiced in self._classifier.feed(samples):
            if voiced:
                self._voiced.append(self._frames)
            self._frames += 1

    def duration(self, length: int) -> float:
        """Seconds of the voiced span within the clip's first ``length`` samples.

        Frames pushed beyond ``length`` are left out, so a turn that ended inside a chunk
        measures the same as the turn alone; every sample before ``length`` must have been
        pushed. 0.0 when nothing is voiced.
        """
        frames = length // _FRAME_24K
        if frames > self._frames:
            raise ValueError(f"{length} samples asked for, {self._frames * _FRAME_24K} measured")
        voiced = self._voiced[: bisect.bisect_left(self._voiced, frames)]
        if not voiced:
            return 0.0
        return (voiced[-1] + 1 - voiced[0]) * _FRAME_24K / INPUT_RATE


def speech_duration(samples: np.ndarray, threshold: float = 0.5) -> float:
    """Measure the voiced span of a clip: first voiced frame to the end of the last one.

    This is what the local model reports it "heard", whether VAD or the client committed
    the turn, so leading and trailing silence never count.

    Args:
        samples: Mono int16 samples at 24 kHz.
        threshold: The realtime API's VAD threshold, 0..1.

    Returns:
        Seconds, 0.0 when nothing is voiced.
    """
    meter = SpeechMeter(threshold)
    meter.push(samples)
    return meter.duration(len(samples))
