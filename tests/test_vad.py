"""The local model's voice-activity detection: where a turn starts and ends."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rico_lab.local_model import speech
from rico_lab.local_model._vad import INPUT_RATE, SpeechDetector, SpeechMeter, speech_duration

pytestmark = pytest.mark.unit

SILENCE_MS = 500


def detect(samples: np.ndarray, chunk_ms: int = 20) -> list[tuple[str, float]]:
    """(kind, seconds) of each boundary, the audio pushed as a client sends it."""
    detector = SpeechDetector(threshold=0.5, silence_duration_ms=SILENCE_MS, start_sample=0)
    step = INPUT_RATE * chunk_ms // 1000
    events = []
    for start in range(0, len(samples), step):
        events += detector.push(samples[start : start + step])
    return [(e.kind, e.sample / INPUT_RATE) for e in events]


def voiced_end(line: np.ndarray) -> float:
    """Seconds to the end of the last 10 ms block of ``line`` louder than -40 dBFS."""
    blocks = line[: len(line) // 240 * 240].astype(np.float64).reshape(-1, 240)
    loud = np.flatnonzero(np.sqrt((blocks**2).mean(axis=1)) > 328)
    return (loud[-1] + 1) * 240 / INPUT_RATE


@pytest.mark.parametrize("chunk_ms", [20, 100])
def test_a_turn_ends_its_silence_after_the_voice_not_after_the_hiss_behind_it(
    chunk_ms: int,
) -> None:
    # what a browser's capture processing leaves after an utterance: 80 ms of hiss at
    # -48 dBFS, then its digital quiet
    line = speech.synthesize("Hello there, how are you today?")
    hiss = np.random.default_rng(3).normal(0, 130, INPUT_RATE * 80 // 1000)
    quiet = np.zeros(INPUT_RATE, np.int16)
    lead = np.zeros(INPUT_RATE // 5, np.int16)
    audio = np.concatenate([lead, line, hiss.astype(np.int16), quiet])
    events = detect(audio, chunk_ms)
    assert [kind for kind, _ in events] == ["start", "stop"]
    end = 0.2 + voiced_end(line)
    # the silence is counted from the voice's end, to within one 10 ms frame
    assert SILENCE_MS / 1000 <= events[1][1] - end <= SILENCE_MS / 1000 + 0.015
    assert 0.2 <= events[0][1] < 0.2 + 0.1


def test_pauses_between_words_stay_inside_the_turn() -> None:
    word = speech.synthesize("Hello")
    word = word[: round(voiced_end(word) * INPUT_RATE)]  # espeak-ng's trailing quiet is a pause too
    pause = np.zeros(INPUT_RATE * 300 // 1000, np.int16)
    quiet = np.zeros(INPUT_RATE, np.int16)
    events = detect(np.concatenate([word, pause, word, pause, word, quiet]))
    assert [kind for kind, _ in events] == ["start", "stop"]


_LINE = speech.synthesize("One, two. Three.")
_HISS = np.random.default_rng(5).normal(0, 130, INPUT_RATE // 10).astype(np.int16)
CLIP = np.concatenate([np.zeros(INPUT_RATE // 5, np.int16), _LINE, _HISS, _LINE[:3000], _HISS])


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    chunks=st.lists(st.integers(1, INPUT_RATE // 4), min_size=1, max_size=8),
    cut=st.integers(0, len(CLIP)),
)
def test_a_turn_measured_as_it_streams_in_measures_as_the_whole_clip(
    chunks: list[int], cut: int
) -> None:
    # the session measures a turn while it comes, in whatever chunks the client sends, and
    # the turn ends anywhere inside the last one
    meter = SpeechMeter()
    pushed = 0
    for size in itertools.cycle(chunks):
        if pushed >= cut:
            break
        meter.push(CLIP[pushed : pushed + size])
        pushed += size
    assert meter.duration(cut) == speech_duration(CLIP[:cut])
    with pytest.raises(ValueError, match="samples asked for"):
        meter.duration(pushed + 240)
