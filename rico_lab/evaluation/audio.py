"""Reading a conversation's recording back: one decoder for the player, replay and tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def read_stereo(path: Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """The recording as float32 samples in -1..1, one row per channel (user, agent).

    Resampled to ``rate`` when given (the file's own rate otherwise); returns the samples
    and their rate. A file cut short (its kernel died) reads as far as its last whole page.
    """
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = rate or stream.rate
        # float planar whatever the codec decodes to
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        chunks = [
            out.to_ndarray()
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
        chunks += [out.to_ndarray() for out in resampler.resample(None)]
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    return samples, rate
