"""Voice to voice in the browser: the lab's in-kernel worker against a bare livekit-agents one.

``python benchmarks/browser_voice.py [TURNS] [--model-in-kernel]`` (30 turns by default)
starts a lab (embedded livekit-server, in-kernel worker: this process plays the kernel) and,
beside it, ``bare_worker.py`` (see ``voice_latency.py``), both answered by the local realtime
model in a process of its own, where OpenAI's would be (``model_process.py``; the lab reaches
it by its OpenAI settings). With ``--model-in-kernel`` the model runs in the lab's process
instead, as a lab without ``OPENAI_API_KEY`` runs it, and its agent shares the interpreter
with the model's VAD and websocket. The voice client page
(``rico-lab serve-client``'s) is served four times: the lab's agent with its own audio
path (``rico_lab.AudioPath``: 10 ms input frames, 20 ms chunks to the model, replies sent
20 ms ahead), the lab's agent with livekit-agents' and the plugin's frames and output (50
and 100 ms, livekit-agents' queued audio source; by a role's ``audio_path``: the lab before
it had one), the bare worker, and the bare worker with the
microphone in libwebrtc's default 20 ms packets instead of the voice client's 10 ms
(``widgets/src/packets.ts``), as a page of livekit-client's own sends it.

Debian's Chromium opens them in turn, blocks of ten turns each, with a fake microphone that
loops an espeak-ng sentence followed by enough quiet for the reply. The voice client itself
times each reply where the user hears it: from the last loud frame of the microphone to the
first loud frame of agent audio played, on the page's audio clock (widgets/src/latency.ts,
shown as "reply in N ms"). Less the local model's VAD hangover (the role's
``silence_duration_ms``, 500 ms), which all wait out alike, that is the kit plus transport.
The page also says when the turn ended on its own clock (``data-listener-turn-ended-ms``),
which the local model's events, timed where it runs, split three ways: **in** (to the
model's end of speech, less the hangover), **model** (to its first audio delta) and **out**
(to the page).

The probe (``browser_probe.js``) meters the agent's audio as the page plays it, beside the
voice client's own code, for the artefacts smaller frames could bring: **gap**, the longest
pause inside a reply (the replies are the same lines for every page, so a stall shows as a
longer one), and **dropout**, the most audio Chromium concealed at a stretch (packets late
or lost). A short visit to each page before the timed ones warms the local model's cache of
spoken lines and each agent, so that no page's first replies wait for espeak-ng or imports.

Prints p50/p95 and the p50 split of each, the artefact figures, the ratios of the medians to
the bare worker's (target: at most 0.75 for the lab), and the figures as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
from aiohttp import web
from browser_probe import SOUND_RMS, install, longest_quiet, longest_run, probe
from jupyterlab_browser import chromium, playwright, served
from model_process import model_elsewhere
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
DEFAULT_PACKETS = "bare, 20 ms mic packets"
#: the demo role, with the frames and output livekit-agents and the plugin use by themselves
LIVEKITS = "audio_path: {input_frame_ms: 50, send_chunk_ms: 100, output_lead_ms: 0}\n"
#: On a page whose address asks for it (``?mic_packets=default``), the voice client's
#: ``a=ptime`` lines are taken out of each answer on their way to Chromium, which then sends
#: the microphone in libwebrtc's default 20 ms packets, as livekit-client by itself does.
DEFAULT_MIC_PACKETS = """
(() => {
  if (!new URLSearchParams(location.search).has("mic_packets")) return;
  const set = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (sd, ...rest) {
    if (sd && sd.type === "answer" && sd.sdp) {
      const eol = sd.sdp.includes("\\r\\n") ? "\\r\\n" : "\\n";
      const kept = sd.sdp.split(eol).filter((line) => !line.startsWith("a=ptime:"));
      sd = { type: sd.type, sdp: kept.join(eol) };
    }
    return set.call(this, sd, ...rest);
  };
})();
"""


@contextmanager
def pages(lab: rico_lab.Lab) -> Iterator[dict[str, str]]:
    """The voice client's pages: the lab's agent twice, the bare worker twice.

    The bare worker's second page sends the microphone as livekit-client does by itself
    (``DEFAULT_MIC_PACKETS``): the voice client's 10 ms packets reach any worker.
    """
    server = lab.livekit_server
    assert server is not None, "the benchmark runs the embedded livekit-server"

    def page_for(role: str, agent: str) -> web.Application:
        return make_app(lab.url, server.api_key, server.api_secret, role, agent_name=agent)

    with (
        served(page_for(ROLE, lab.agent_name)) as ours,
        served(page_for("livekits", lab.agent_name)) as before,
        served(page_for(ROLE, BARE)) as bare,
    ):
        yield {
            LAB: ours,
            BEFORE: before,
            BARE_LABEL: bare,
            DEFAULT_PACKETS: bare + "?mic_packets=default",
        }


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


class Visit(NamedTuple):
    """What one visit to a page measured, in ms.

    Per reply its latency and turn end (epoch time on the page's clock) and the longest
    pause inside it; over the visit, the most audio concealed at a stretch.
    """

    replies: list[tuple[float, float]]
    gaps: list[float]
    dropout: float


def visit(page: Page, url: str, turns: int) -> Visit:
    """Open the page, let ``turns`` replies be timed, leave.

    The first reply of a visit is dropped: the sentence may start while the agent still
    greets, and that reply is timed from a barge-in.
    """
    page.goto(url)
    page.wait_for_selector('.rico-voice-client[data-status="connected"]', timeout=60_000)
    page.evaluate("window.__ricoProbe.polling = true")
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
    latencies = [(float(ms), float(ended)) for ms, ended in page.evaluate("window.__latencies")]
    page.wait_for_timeout(3000)  # the last reply plays out
    origin = float(page.evaluate("performance.timeOrigin"))
    data = probe(page)
    page.goto("about:blank")  # leaving ends the conversation
    levels = np.array(data["levels"]).reshape(-1, 3)
    loud = levels[levels[:, 1] > SOUND_RMS, 0] if levels.size else np.zeros(0)
    # each reply runs from its first sound to the next turn's end (page clock, ms)
    onsets = [ended - origin + ms for ms, ended in latencies]
    ends = [ended - origin for _, ended in latencies[1:]] + [float("inf")]
    gaps = [
        longest_quiet(loud[loud < end], onset)
        for onset, end in list(zip(onsets, ends, strict=True))[1 : turns + 1]
    ]
    stats = np.array(data["stats"]).reshape(-1, 3)
    dropout = longest_run(stats) if len(stats) > 1 else 0.0
    return Visit(latencies[1 : turns + 1], gaps, dropout)


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
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    turns = int(args[0]) if args else 30
    in_kernel = "--model-in-kernel" in sys.argv
    folder = Path(tempfile.mkdtemp(prefix="rico-voice-"))
    time_local_model()
    clock = time.time() - time.monotonic()
    replies: dict[str, list[tuple[float, float]]] = {
        label: [] for label in (LAB, BEFORE, BARE_LABEL, DEFAULT_PACKETS)
    }
    gaps: dict[str, list[float]] = {label: [] for label in replies}
    dropout = dict.fromkeys(replies, 0.0)
    with ExitStack() as stack:
        model = None if in_kernel else stack.enter_context(model_elsewhere())
        lab = stack.enter_context(rico_lab.Lab(roles_dir=roles_with_livekits_frames(folder)))
        detection = lab.role(ROLE).realtime_options().get("turn_detection")
        hangover = getattr(detection, "silence_duration_ms", None) or 500
        worker = start_bare_worker(lab, model)
        stack.callback(worker.wait, 30)
        stack.callback(worker.terminate)
        mic = [f"--use-file-for-fake-audio-capture={microphone(folder)}"]
        fake = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        urls = stack.enter_context(pages(lab))
        page = stack.enter_context(chromium(stack.enter_context(playwright()), fake + mic))
        install(page)
        page.add_init_script(DEFAULT_MIC_PACKETS)
        for url in urls.values():  # warms the model's lines and each agent; not counted
            visit(page, url, 3)
        while len(replies[DEFAULT_PACKETS]) < turns:
            for label, url in urls.items():
                seen = visit(page, url, min(BLOCK, turns - len(replies[label])))
                replies[label] += seen.replies
                gaps[label] += seen.gaps
                dropout[label] = max(dropout[label], seen.dropout)
    # the model's events are all in once its process has ended
    figures = {
        label: [parts(ms, ended, hangover, clock) for ms, ended in timed]
        for label, timed in replies.items()
    }
    where = "in the lab's process" if in_kernel else "in a process of its own"
    report(figures, gaps, dropout, turns, hangover, where)


def report(
    figures: dict[str, list[list[float]]],
    gaps: dict[str, list[float]],
    dropout: dict[str, float],
    turns: int,
    hangover: float,
    where: str,
) -> None:
    """Print each one's p50/p95, split and artefacts, the ratios to the bare worker's, JSON."""
    print(f"{turns} spoken turns each in Chromium, {ROLE} role, local model {where}, ", end="")
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
    print(f"{'artefacts, ms':<30} {'gap p50':>9} {'gap max':>9} {'dropout':>9}")
    for label, pauses in gaps.items():
        gap_p50, gap_max = np.percentile(pauses, [50, 100]) if pauses else (np.nan,) * 2
        print(f"{label:<30} {gap_p50:9.0f} {gap_max:9.0f} {dropout[label]:9.0f}")
    for label in (LAB, BEFORE):
        ratio = medians[label] / medians[BARE_LABEL]
        print(f"ratio of medians ({label} / bare): {ratio:.2f}")
    ratio = medians[LAB] / medians[DEFAULT_PACKETS]
    print(f"ratio of medians ({LAB} / {DEFAULT_PACKETS}): {ratio:.2f}")
    print("target: rico_lab / bare <= 0.75, and its p95 no worse than the bare worker's")
    print(json.dumps({"hangover_ms": hangover, "turns_ms": figures, "gaps_ms": gaps}))


if __name__ == "__main__":
    main()
