"""Offline speech synthesis with espeak-ng, plus the WAV and resampling helpers around it."""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_VOICE = "marin"
"""The realtime voice used when none is given, the same default as the OpenAI plugin."""

# The realtime API's voices, each pinned to one espeak-ng English voice and variant so that
# two agents in one notebook sound different and every run sounds the same.
_REALTIME_VOICES: dict[str, str] = {
    "alloy": "en-us+m3",
    "ash": "en-gb+m1",
    "ballad": "en-gb-x-rp+m4",
    "coral": "en-us+f3",
    "echo": "en-us+m2",
    "sage": "en-gb+f4",
    "shimmer": "en-us+f5",
    "verse": "en-gb-scotland+m5",
    "marin": "en-us+f2",
    "cedar": "en-us+m7",
}
# Other names are spread over these by a stable hash (Python's hash() is salted per process).
_FALLBACK_VOICES: tuple[str, ...] = tuple(
    f"{base}+{variant}"
    for base in ("en-us", "en-gb")
    for variant in ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
)
_INSTALL_HINT = (
    "espeak-ng is not installed or not on PATH; rico_lab's local model speaks with it. "
    "Install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng`."
)


class SpeechSynthesisError(RuntimeError):
    """Raised when espeak-ng is missing or fails, with a message saying what to do."""


def espeak_voice(voice: str | None) -> str:
    """Map a realtime voice name to the espeak-ng voice that renders it.

    Names that already look like espeak-ng English voices (``en-us``, ``en-gb+f3``) pass
    through, so a notebook can pick an exact espeak-ng voice when it wants to.

    Args:
        voice: A realtime voice such as ``"marin"`` or ``"alloy"``, an espeak-ng voice, or
            None for the default voice.

    Returns:
        The espeak-ng ``-v`` argument.
    """
    name = (voice or DEFAULT_VOICE).strip().lower()
    if name in _REALTIME_VOICES:
        return _REALTIME_VOICES[name]
    if name == "en" or name.startswith(("en-", "en+")):
        return name
    digest = hashlib.sha256(name.encode()).digest()
    return _FALLBACK_VOICES[int.from_bytes(digest[:4], "big") % len(_FALLBACK_VOICES)]


def synthesize(text: str, voice: str | None = None, sample_rate: int = 24000) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return the samples.

    The last 32 lines are cached, because a scripted agent says some lines over and over
    (greetings, a rehearsal's script) and an espeak-ng process costs tens of milliseconds;
    each call returns its own copy. Not more: most of the local model's lines carry a turn
    number, are never said again, and each holds seconds of audio (48 KB a second at 24 kHz).

    Args:
        text: What to say.
        voice: A realtime voice name (see :func:`espeak_voice`); None for the default.
        sample_rate: The rate of the returned samples, in Hz.

    Returns:
        Mono int16 samples at ``sample_rate``.

    Raises:
        SpeechSynthesisError: espeak-ng is missing or failed.
        ValueError: ``sample_rate`` is not positive.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return _synthesize_cached(text, espeak_voice(voice), sample_rate).copy()


@functools.lru_cache(maxsize=32)
def _synthesize_cached(text: str, espeak_voice_name: str, sample_rate: int) -> np.ndarray:
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise SpeechSynthesisError(_INSTALL_HINT)
    try:
        # the text goes through stdin so that a line starting with "-" is not an option
        proc = subprocess.run(
            [executable, "-v", espeak_voice_name, "--stdout"],
            input=text.encode(),
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SpeechSynthesisError(f"espeak-ng could not run: {e}") from e
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()
        raise SpeechSynthesisError(f"espeak-ng failed ({proc.returncode}): {stderr}")
    samples, rate = _parse_wav(proc.stdout)
    out = resample(samples, rate, sample_rate)
    out = out[_voice_onset(out, sample_rate) :]
    out.flags.writeable = False  # the cache hands out copies; its own array must not change
    logger.debug("synthesized %.2f s with %s: %r", len(out) / sample_rate, espeak_voice_name, text)
    return out


#: below this (-60 dBFS) a sample is espeak-ng's lead-in, not yet its voice
_LEAD_IN_LEVEL = 33
#: kept before the first sample above it, so the voice's own attack is not cut
_ONSET_MARGIN_S = 0.002


def _voice_onset(samples: np.ndarray, sample_rate: int) -> int:
    """Where the voice starts: espeak-ng opens each line with 10 to 50 ms of near silence.

    A realtime model's first audio delta carries its voice; with the lead-in, the first
    sound of every local reply came tens of milliseconds late, which latency figures would
    put on the transport.
    """
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _LEAD_IN_LEVEL)
    if loud.size == 0:
        return 0
    return max(0, int(loud[0]) - int(_ONSET_MARGIN_S * sample_rate))


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Change the sample rate of mono int16 audio.

    Linear interpolation is enough for speech going up in rate; going down, a windowed-sinc
    low-pass filter runs first so that what cannot be represented does not alias back.

    Args:
        samples: Mono int16 samples.
        src_rate: Their rate, in Hz.
        dst_rate: The wanted rate, in Hz.

    Returns:
        Mono int16 samples at ``dst_rate``.
    """
    if src_rate == dst_rate or len(samples) == 0:
        return samples.astype(np.int16, copy=True)
    x = samples.astype(np.float64)
    if dst_rate < src_rate:
        cutoff = 0.45 * dst_rate / src_rate  # in cycles per input sample, a little below Nyquist
        taps = np.arange(-32, 33)
        kernel = 2 * cutoff * np.sinc(2 * cutoff * taps) * np.hamming(len(taps))
        x = np.convolve(x, kernel / kernel.sum(), mode="same")
    n_out = round(len(x) * dst_rate / src_rate)
    positions = np.arange(n_out) * (src_rate / dst_rate)
    y = np.interp(positions, np.arange(len(x)), x)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono int16 samples to a WAV file.

    Args:
        path: Where to write.
        samples: Mono int16 samples (other integer or float dtypes are converted; floats are
            taken to be in [-1, 1]).
        sample_rate: Their rate, in Hz.
    """
    data = np.asarray(samples)
    if np.issubdtype(data.dtype, np.floating):
        data = np.clip(np.round(data * 32767), -32768, 32767)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(data.astype("<i2").tobytes())


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV file as mono.

    Args:
        path: The file.

    Returns:
        The samples (int16, channels averaged to mono) and their rate in Hz.

    Raises:
        ValueError: The file is not 16-bit PCM WAV.
    """
    return _parse_wav(Path(path).read_bytes())


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Parse WAV bytes by hand, because espeak-ng streams them with placeholder sizes.

    ``espeak-ng --stdout`` cannot seek back to fill in the RIFF and data sizes, so they
    say 2 GB; the ``wave`` module believes them, this reads the data to the end instead.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos = 12
    channels = rate = bits = fmt_tag = 0
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt_tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
        elif chunk_id == b"data":
            if fmt_tag != 1 or bits != 16 or channels < 1:
                raise ValueError(f"unsupported WAV format (tag {fmt_tag}, {bits} bits)")
            end = min(body + size, len(data))
            end -= (end - body) % (2 * channels)
            samples = np.frombuffer(data[body:end], dtype="<i2").astype(np.int16)
            if channels > 1:
                mono = samples.reshape(-1, channels).mean(axis=1)
                samples = np.round(mono).astype(np.int16)
            return samples, rate
        pos = body + size + (size & 1)
    raise ValueError("WAV file has no data chunk")
