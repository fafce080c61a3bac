"""What the browser benchmarks share: Chromium with the probe, and the figures read from it.

``browser_probe.js`` runs in the page before its scripts and keeps what the page receives
(agent audio levels, concealment counters) and shows (the voice client's panels), on the page's own
clock; the functions here turn that into figures. JupyterLab and Chromium are started by the
test suite's helpers (``tests/jupyterlab_browser.py``), the same ones the browser tests use.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

#: Agent audio above this RMS is sound (the voice client's SOUND_RMS, widgets/src/audio.ts)
SOUND_RMS = 0.01
SCRIPT = Path(__file__).with_name("browser_probe.js").read_text()


def install(page: Page) -> None:
    """Run the probe in every document ``page`` loads from now on."""
    page.add_init_script(SCRIPT)


def now_ms(page: Page) -> float:
    """The page's clock (``performance.now()``), the one the probe's figures are on."""
    return float(page.evaluate("performance.now()"))


def probe(page: Page) -> dict[str, Any]:
    """Everything the probe has gathered so far."""
    return page.evaluate("window.__ricoProbe")


def first_sound(page: Page, after_ms: float) -> float | None:
    """When agent audio was first loud after ``after_ms`` (page clock, ms), if it was."""
    return page.evaluate(
        """([after, loud]) => {
            const first = window.__ricoProbe.levels.find(([t, rms]) => t > after && rms > loud);
            return first ? first[0] : null;
        }""",
        [after_ms, SOUND_RMS],
    )


def loud_frames(samples: np.ndarray, rate: int) -> np.ndarray:
    """Start times (ms) of the loud 8 ms frames of ``samples`` (int16), as the probe meters."""
    frame = rate * 8 // 1000
    blocks = samples[: len(samples) // frame * frame].astype(np.float32) / 32768
    rms = np.sqrt((blocks.reshape(-1, frame) ** 2).mean(axis=1))
    return np.flatnonzero(rms > SOUND_RMS) * 8.0


def longest_quiet(times: np.ndarray, since: float) -> float:
    """The longest stretch between loud frames (8 ms each) from ``since`` on, in ms."""
    times = times[times >= since]
    return float(np.diff(times).max()) - 8 if times.size > 1 else 0.0


@dataclass(frozen=True)
class Reply:
    """How a reply played in the browser, against the audio the agent was given to say (ms).

    A stall of the agent's audio shows as a pause the line does not have, and as a longer
    reply. The line's own pauses are longest at the colons of the local model's "Turn N:
    you wrote:", so the longest pause is compared over the whole reply and after that
    prefix; either way ``gap`` is a lower bound of the longest stall. Chromium's jitter
    buffer may also stretch audio that arrives unevenly, which only the length shows.
    """

    onset: float  # the first loud frame after the start, page clock
    gap: float  # the longest pause the line does not have (see above)
    length: float  # from the first loud frame to the last
    dropout: float  # the most audio Chromium concealed at a stretch (packets late or lost)

    @classmethod
    def measure(
        cls, page: Page, start_ms: float, end_ms: float, said: np.ndarray, prefix: np.ndarray
    ) -> Reply | None:
        """The reply heard between ``start_ms`` and ``end_ms``; None if there was none.

        ``said`` is the line's audio at 48 kHz, ``prefix`` its first words' (both espeak-ng's,
        as the local model speaks them).
        """
        data = probe(page)
        levels = np.array([v for v in data["levels"] if start_ms < v[0] < end_ms])
        if not levels.size or not (levels[:, 1] > SOUND_RMS).any():
            return None
        loud = levels[levels[:, 1] > SOUND_RMS]
        track = np.bincount(loud[:, 2].astype(int)).argmax()  # the agent's (others are quiet)
        heard = loud[loud[:, 2] == track, 0] - loud[0, 0]
        line = loud_frames(said, 48000)
        line -= line[0]
        # a stall anywhere shows as a pause longer than the line's longest; one after the
        # prefix, as one longer than the longest there
        skip = len(prefix) / 48.0
        gap = max(
            longest_quiet(heard, 0) - longest_quiet(line, 0),
            longest_quiet(heard, skip) - longest_quiet(line, skip),
        )
        onset = float(loud[0, 0])
        stats = np.array([s for s in data["stats"] if onset <= s[0] <= onset + heard[-1]])
        dropout = longest_run(stats) if stats.size else float("nan")
        return cls(onset, max(gap, 0.0), float(heard[-1]), dropout)


def longest_run(stats: np.ndarray) -> float:
    """The most audio concealed (not as silence) over consecutive polls, in ms at 48 kHz."""
    made_up = np.diff(stats[:, 1] - stats[:, 2])
    longest = run = 0.0
    for samples in made_up:
        run = run + samples if samples > 0 else 0.0
        longest = max(longest, run)
    return longest / 48.0
