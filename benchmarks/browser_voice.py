"""Voice to voice in the browser: the lab's in-kernel worker against a bare livekit-agents one.

``python benchmarks/browser_voice.py [TURNS]`` (30 by default) starts a lab (embedded
livekit-server, local realtime model, in-kernel worker: this process plays the kernel) and,
beside it, ``bare_worker.py`` (see ``voice_latency.py``). Two copies of the voice client page
(``rico-lab serve-client``'s) are served: one brings the lab's agent, one the bare worker.

Debian's Chromium opens them in turn, blocks of ten turns each, with a fake microphone that
loops an espeak-ng sentence followed by enough quiet for the reply. The voice client itself
times each reply where the user hears it: from the last loud frame of the microphone to the
first loud frame of agent audio played, on the page's audio clock (widgets/src/latency.ts,
shown as "reply in N ms"). Less the local model's VAD hangover (the role's
``silence_duration_ms``, 500 ms), which both wait out alike, that is the kit plus transport.

Prints p50/p95 of each and the ratio of the medians (target: at most 1.05, and the lab's
p50 at most 80 ms), and the figures as JSON.
"""

from __future__ import annotations

import json
import os
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
from playwright.sync_api import Page
from voice_latency import BARE, ROLE, start_bare_worker

import rico_lab
from rico_lab.local_model.speech import synthesize, write_wav
from rico_lab.web_client import make_app

RATE = 48000
BLOCK = 10  # turns per page visit; the first reply of a visit is not counted (see below)
SENTENCE = "Hello there, how are you today?"
LAB, BARE_LABEL = "rico_lab (in-kernel worker)", "bare livekit-agents worker"


@contextmanager
def pages(lab: rico_lab.Lab) -> Iterator[dict[str, str]]:
    """Serve the voice client page twice: for the lab's agent and for the bare worker."""
    server = lab.livekit_server
    assert server is not None, "the benchmark runs the embedded livekit-server"

    def page_for(agent: str) -> web.Application:
        return make_app(lab.url, server.api_key, server.api_secret, ROLE, agent_name=agent)

    with served(page_for(lab.agent_name)) as ours, served(page_for(BARE)) as bare:
        yield {LAB: ours, BARE_LABEL: bare}


def microphone(folder: Path) -> Path:
    """The sentence, then quiet long enough for the reply; Chromium plays it in a loop."""
    speech = synthesize(SENTENCE, sample_rate=RATE)
    quiet = np.zeros(RATE, np.int16)
    path = folder / "turn.wav"
    write_wav(path, np.concatenate([quiet, speech, *[quiet] * 5]), RATE)
    return path


def visit(page: Page, url: str, turns: int) -> list[float]:
    """Open the page, let ``turns`` replies be timed, leave; their latencies in ms.

    The first reply of a visit is dropped: the sentence may start while the agent still
    greets, and that reply is timed from a barge-in.
    """
    page.goto(url)
    page.wait_for_selector('.rico-voice-client[data-status="connected"]', timeout=60_000)
    page.evaluate(
        """() => {
            const root = document.querySelector('.rico-voice-client');
            window.__latencies = [];
            new MutationObserver(() => window.__latencies.push(
                Number(root.dataset.listenerLatencyMs)
            )).observe(root, { attributeFilter: ['data-listener-latency-ms'] });
        }"""
    )
    page.wait_for_function(
        "(n) => window.__latencies.length >= n", arg=turns + 1, timeout=(turns + 2) * 20_000
    )
    latencies = page.evaluate("window.__latencies")[1 : turns + 1]
    page.goto("about:blank")  # leaving ends the conversation
    return [float(x) for x in latencies]


def main() -> None:
    """Visit the lab's page and the bare worker's in turn, BLOCK turns a visit; print both."""
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    folder = Path(tempfile.mkdtemp(prefix="rico-voice-"))
    figures: dict[str, list[float]] = {LAB: [], BARE_LABEL: []}
    with rico_lab.Lab() as lab:
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
                        figures[label] += [ms - hangover for ms in visit(page, url, block)]
        finally:
            worker.terminate()
            worker.wait(30)
    report(figures, turns, hangover)


def report(figures: dict[str, list[float]], turns: int, hangover: float) -> None:
    """Print p50/p95 of both, their ratio, by how much a target was missed, and JSON."""
    print(f"{turns} spoken turns each in Chromium, {ROLE} role, local model, ", end="")
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")
    print(f"end of speech -> first agent audio in the page, less the {hangover} ms VAD hangover")
    print(f"{'ms':<30} {'p50':>7} {'p95':>7}")
    medians = {}
    for label, values in figures.items():
        p50, p95 = np.percentile(values, [50, 95])
        medians[label] = p50
        print(f"{label:<30} {p50:7.0f} {p95:7.0f}")
    ratio = medians[LAB] / medians[BARE_LABEL]
    print(f"ratio of medians (lab / bare): {ratio:.2f}  (target <= 1.05)")
    if ratio > 1.05 or medians[LAB] > 80:
        over = max(medians[LAB] - 80, 0)
        print(f"missed by: ratio {max(ratio - 1.05, 0):.2f}, p50 {over:.0f} ms")
    print(json.dumps({"hangover_ms": hangover, "latency_ms": figures}))


if __name__ == "__main__":
    main()
