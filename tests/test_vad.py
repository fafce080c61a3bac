"""The local model's voice-activity detection: where a turn starts and ends."""

from __future__ import annotations

import numpy as np
import pytest

from rico_lab.local_model import speech
from rico_lab.local_model._vad import INPUT_RATE, SpeechDetector

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
