"""Speech synthesis with espeak-ng and the WAV helpers around it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from rico_lab.local_model import speech
from rico_lab.local_model._vad import speech_duration

pytestmark = pytest.mark.unit


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_synthesize_returns_audible_int16_speech() -> None:
    short = speech.synthesize("Hello.")
    long = speech.synthesize("Hello. This sentence is a good deal longer than the first one.")
    assert short.dtype == np.int16 and short.ndim == 1
    assert rms(long) > 500
    assert 0.3 < speech_duration(short) < len(short) / 24000 + 0.01
    assert len(long) > 3 * len(short)


def test_sample_rate_changes_the_sample_count_not_the_duration() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    at_24k = speech.synthesize(text, sample_rate=24000)
    at_16k = speech.synthesize(text, sample_rate=16000)
    assert abs(len(at_16k) / 16000 - len(at_24k) / 24000) < 0.01


def test_repeated_lines_are_cached_and_callers_get_their_own_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = speech.synthesize("Caching test line.", voice="alloy")
    first[:] = 0

    def no_espeak(*args: object, **kwargs: object) -> None:
        raise AssertionError("espeak-ng ran again for a cached line")

    monkeypatch.setattr(speech.subprocess, "run", no_espeak)
    second = speech.synthesize("Caching test line.", voice="alloy")
    assert rms(second) > 0


def test_voices_map_deterministically_to_distinct_espeak_voices() -> None:
    assert speech.espeak_voice("marin") == speech.espeak_voice(None) == speech.espeak_voice("Marin")
    assert speech.espeak_voice("alloy") != speech.espeak_voice("marin")
    assert speech.espeak_voice("en-gb+f3") == "en-gb+f3"
    unknown = speech.espeak_voice("some-future-voice")
    assert unknown == speech.espeak_voice("some-future-voice") and unknown.startswith("en-")
    text = "Two voices say this."
    assert not np.array_equal(speech.synthesize(text, "alloy"), speech.synthesize(text, "marin"))


def test_missing_espeak_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(speech.SpeechSynthesisError, match=r"espeak-ng.*apt-get install espeak-ng"):
        speech.synthesize("A line never synthesized before, so the cache cannot answer.")


def test_wav_round_trip(tmp_path: Path) -> None:
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 16000) * 10000).astype(np.int16)
    speech.write_wav(tmp_path / "tone.wav", tone, 16000)
    samples, rate = speech.read_wav(tmp_path / "tone.wav")
    assert rate == 16000
    assert np.array_equal(samples, tone)


def test_read_wav_accepts_espeak_streamed_headers(tmp_path: Path) -> None:
    # espeak-ng --stdout writes placeholder sizes, which the wave module would trust
    raw = subprocess.run(["espeak-ng", "--stdout", "hi"], capture_output=True, check=True).stdout
    (tmp_path / "hi.wav").write_bytes(raw)
    samples, rate = speech.read_wav(tmp_path / "hi.wav")
    assert rate == 22050
    assert len(samples) == (len(raw) - 44) // 2


def test_resample_keeps_the_pitch() -> None:
    seconds = 0.5
    tone = (np.sin(np.arange(int(22050 * seconds)) * 2 * np.pi * 500 / 22050) * 8000).astype(
        np.int16
    )
    for rate in (8000, 16000, 24000, 48000):
        out = speech.resample(tone, 22050, rate)
        assert abs(len(out) - rate * seconds) <= 1
        peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * rate / len(out)
        assert abs(peak_hz - 500) < 5


def test_a_line_starts_with_its_voice_not_espeaks_lead_in() -> None:
    # espeak-ng opens every line with 10-50 ms of near silence; a local reply's first audio
    # would carry none of its voice, and the listener's latency would count the lead-in
    for text in ("Hello there, how are you today?", "Turn 3: I heard you.", "Sure."):
        line = speech.synthesize(text)
        assert np.abs(line[: 24000 * 5 // 1000].astype(np.int32)).max() > 33, text
