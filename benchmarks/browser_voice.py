"""Voice to voice in the browser: the lab's in-kernel worker against a bare livekit-agents one.

``python benchmarks/browser_voice.py [TURNS]`` (30 by default) starts a lab (embedded
livekit-server, local realtime model, in-kernel worker: this process plays the kernel) and,
beside it, ``bare_worker.py`` (see ``voice_latency.py``). The voice client page
(``rico-lab serve-client``'s) is served three times: the lab's agent with its own audio
path (``rico_lab.AudioPath``: 10 ms input frames, 20 ms chunks to the model), the lab's
agent with livekit-agents' and the plugin's frames (50 and 100 ms, by a role's
``audio_path``: the lab before it had one), and the bare worker.

Debian's Chromium opens them in turn, blocks of ten turns each, with a fake microphone that
loops an espeak-ng sentence followed by enough quiet for the reply. The voice client itself
times each reply where the user hears it: from the last loud frame of the microphone to the
first loud frame of agent audio played, on the page's audio clock (widgets/src/latency.ts,
shown as "reply in N ms"). Less the local model's VAD hangover (the role's
``silence_duration_ms``, 500 ms), which all wait out alike, that is the kit plus transport.
The page also says when the turn ended on its own clock (``data-listener-turn-ended-ms``),
which the local model's events, timed in this process, split three ways: **in** (to the
model's end of speech, less the hangover), **model** (to its first audio delta) and **out**
(to the page).

Prints p50/p95 and the p50 split of each, the ratios of the medians to the bare worker's
(target: at most 0.75 for the lab), and the figures as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import browser_probe  # noqa: F401  (puts tests/ on the path)
import numpy as np
from aiohttp import web
from jupyterlab_browser import chromium, playwright, served
from model_timing import time_local_model
from playwright.sync_api import Page
from voice_latency import BARE, ROLE, split, start_bare_worker

import rico_lab
from rico_lab.local_model.speech import synthesize, write_wav
from rico_lab.roles import default_roles_dir
from rico_lab.web_client import make_app

RATE = 48000
BLOCK = 10  # turns per page visit; the first reply of a visit is not counted (see below)
SENTENCE = "Hello there, how are you today?"
LAB, BARE_LABEL = "rico_lab (in-kernel worker)", "bare livekit-agents worker"
BEFORE = "rico_lab, livekit's frames"
#: the demo role, with the frames livekit-agents and the plugin use by themselves
LIVEKITS = "audio_path: {input_frame_ms: 50, send_chunk_ms: 100}\n"


@contextmanager
def pages(lab: rico_lab.Lab) -> Iterator[dict[str, str]]:
    """Serve the voice client page three times: the lab's agent twice, the bare worker."""
    server = lab.livekit_server
    assert server is not None, "the benchmark runs the embedded livekit-server"

    def page_for(role: str, agent: str) -> web.Application:
        return make_app(lab.url, server.api_key, server.api_secret, role, agent_name=agent)

    with (
        served(page_for(ROLE, lab.agent_name)) as ours,
        served(page_for("livekits", lab.agent_name)) as before,
        served(page_for(ROLE, BARE)) as bare,
    ):
        yield {LAB: ours, BEFORE: before, BARE_LABEL: bare}


def roles_with_livekits_frames(folder: Path) -> Path:
    """The sample roles, and ``livekits``: the demo role on livekit-agents' frame sizes."""
    roles = folder / "roles"
    shutil.copytree(default_roles_dir(), roles)
    demo = (roles / "demo.yaml").read_text().replace("name: demo", "name: livekits")
    (roles / "livekits.yaml").write_text(demo + LIVEKITS)
    return roles


def microphone(folder: Path) -> Path:
    """The sentence, then quiet long enough for the reply; Chromium plays it in a loop."""
    speech = synthesize(SENTENCE, sample_rate=RATE)
    quiet = np.zeros(RATE, np.int16)
    path = folder / "turn.wav"
    write_wav(path, np.concatenate([quiet, speech, *[quiet] * 5]), RATE)
    return path


def visit(page: Page, url: str, turns: int) -> list[tuple[float, float]]:
    """Open the page, let ``turns`` replies be timed, leave; (latency, turn end) in ms each.

    The turn end is epoch time, on the page's clock. The first reply of a visit is dropped:
    the sentence may start while the agent still greets, and that reply is timed from a
    barge-in.
    """
    page.goto(url)
    page.wait_for_selector('.rico-voice-client[data-status="connected"]', timeout=60_000)
    page.evaluate(
        """() => {
            const root = document.querySelector('.rico-voice-client');
            window.__latencies = [];
            new MutationObserver(() => window.__latencies.push([
                Number(root.dataset.listenerLatencyMs), Number(root.dataset.listenerTurnEndedMs)
            ])).observe(root, { attributeFilter: ['data-listener-latency-ms'] });
        }"""
    )
    page.wait_for_function(
        "(n) => window.__latencies.length >= n", arg=turns + 1, timeout=(turns + 2) * 20_000
    )
    latencies = page.evaluate("window.__latencies")[1 : turns + 1]
    page.goto("about:blank")  # leaving ends the conversation
    return [(float(ms), float(ended)) for ms, ended in latencies]


def parts(latency_ms: float, ended_ms: float, hangover_ms: float, clock: float) -> list[float]:
    """One reply: kit + transport, in, model, out (ms; NaN where the model's events miss).

    ``clock`` is epoch time less monotonic time, to put the page's turn end on the clock
    the local model's events are timed by.
    """
    ended = ended_ms / 1000 - clock
    onset = ended + latency_ms / 1000
    try:
        split_s = split(ended, onset, hangover_ms / 1000)
    except StopIteration:  # no end of speech or audio between the two: not this reply's
        split_s = (float("nan"),) * 3
    return [latency_ms - hangover_ms, *(x * 1000 for x in split_s)]


def main() -> None:
    """Visit the three pages in turn, BLOCK turns a visit; print them side by side."""
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    folder = Path(tempfile.mkdtemp(prefix="rico-voice-"))
    time_local_model()
    clock = time.time() - time.monotonic()
    figures: dict[str, list[list[float]]] = {LAB: [], BEFORE: [], BARE_LABEL: []}
    with rico_lab.Lab(roles_dir=roles_with_livekits_frames(folder)) as lab:
        detection = lab.role(ROLE).realtime_options().get("turn_detection")
        hangover = getattr(detection, "silence_duration_ms", None) or 500
        worker = start_bare_worker(lab)
        mic = [f"--use-file-for-fake-audio-capture={microphone(folder)}"]
        fake = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        try:
            with pages(lab) as urls, playwright() as driver, chromium(driver, fake + mic) as page:
                while len(figures[BARE_LABEL]) < turns:
                    for label, url in urls.items():
                        block = min(BLOCK, turns - len(figures[label]))
                        for ms, ended in visit(page, url, block):
                            figures[label].append(parts(ms, ended, hangover, clock))
        finally:
            worker.terminate()
            worker.wait(30)
    report(figures, turns, hangover)


def report(figures: dict[str, list[list[float]]], turns: int, hangover: float) -> None:
    """Print p50/p95 and the split of each, the ratios to the bare worker, and JSON."""
    print(f"{turns} spoken turns each in Chromium, {ROLE} role, local model, ", end="")
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")
    print(f"end of speech -> first agent audio in the page, less the {hangover} ms VAD hangover")
    print(f"{'ms':<30} {'p50':>7} {'p95':>7}   p50 of:  in  model   out")
    medians = {}
    for label, values in figures.items():
        ms = np.array(values)
        p50, p95 = np.nanpercentile(ms[:, 0], [50, 95])
        medians[label] = p50
        split_p50 = "  ".join(f"{x:5.0f}" for x in np.nanmedian(ms[:, 1:], axis=0))
        print(f"{label:<30} {p50:7.0f} {p95:7.0f}   {split_p50}")
    for label in (LAB, BEFORE):
        ratio = medians[label] / medians[BARE_LABEL]
        print(f"ratio of medians ({label} / bare): {ratio:.2f}")
    print("target: rico_lab / bare <= 0.75, and its p95 no worse than the bare worker's")
    print(json.dumps({"hangover_ms": hangover, "turns_ms": figures}))


if __name__ == "__main__":
    main()
