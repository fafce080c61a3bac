"""Latency at the listener: the voice client times each reply in the page and tells the agent.

Real parts throughout: JupyterLab in Chromium with a fake microphone playing espeak-ng speech,
the lab's LiveKit server, worker and local model in the kernel. The last cell polls the record
while the conversation goes on over WebRTC.
"""

import os
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from jupyterlab_browser import (
    chromium,
    fake_microphone,
    jupyterlab,
    open_notebook,
    playwright,
    run_command,
)
from playwright.sync_api import Page, expect

from rico_lab.local_model.speech import synthesize, write_wav

pytestmark = pytest.mark.browser

RATE = 48000
STDOUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]'

POLL = """\
import time

deadline = time.monotonic() + 75


def replies():
    turns = lab.log.turns
    return turns[(turns.speaker == "agent") & turns.listener_latency_s.notna()]


while len(replies()) < 3 and time.monotonic() < deadline:
    time.sleep(0.2)
time.sleep(1)  # a late, extra report would show in the counts below
turns = lab.log.turns
agent = turns[turns.speaker == "agent"]
events = lab.log.events.query("type == 'client_latency'")
print("latencies:", [round(x, 4) for x in replies().listener_latency_s])
print("after:", [e["after"] for e in events.data])
# the page's turn end, on its own clock, against the agent's reply start on the kernel's
print("ended to reply:", [
    round(r.timestamp() - e["ended"], 3) for e, r in zip(events.data, replies().started)
])
print("client_latency events:", len(events))
print("user turns:", int((turns.speaker == "user").sum()))
print("greeting's latency:", agent.listener_latency_s.iloc[0])
print("interrupted:", list(agent.interrupted))"""

CELLS = [
    'import rico_lab\nlab = rico_lab.Lab()\nclient = lab.talk("demo")\nclient',
    POLL,
]


@pytest.fixture(scope="module")
def user_wav(tmp_path_factory):
    """Played once: quiet while the agent greets, a sentence, then quiet for its reply."""
    sentence = synthesize("Hello there. What can you do for me today?", sample_rate=RATE)
    quiet = np.zeros(RATE * 8, np.int16)
    path = tmp_path_factory.mktemp("mic") / "user.wav"
    write_wav(path, np.concatenate([quiet, sentence, quiet[: RATE * 6]]), RATE)
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory, user_wav):
    root = tmp_path_factory.mktemp("latency")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, root / "latency.ipynb")
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with (
        jupyterlab(root, env) as url,
        playwright() as driver,
        chromium(driver, fake_microphone(user_wav)) as page,
    ):
        open_notebook(page, url.format(path="latency.ipynb"))
        yield page


def client(page: Page):
    return page.locator(".rico-voice-client")


def type_to_agent(page: Page, text: str) -> None:
    box = client(page).locator(".rico-text-input")
    box.fill(text)
    box.press("Enter")


def test_each_reply_is_timed_at_the_listener_and_recorded(page):
    run_command(page, "notebook:run-all-cells", wait=False)
    # the greeting plays, and is not timed: no user turn came before it
    greeting = client(page).locator(".rico-line.rico-agent").first
    expect(greeting).to_contain_text("Local model here.", timeout=60_000)
    # the microphone's sentence, answered and timed
    spoken = client(page).locator(".rico-line.rico-agent", has_text=re.compile(r"I heard"))
    expect(spoken).to_be_visible(timeout=60_000)
    expect(client(page)).to_have_attribute(
        "data-listener-latency-ms", re.compile(r"^\d+$"), timeout=10_000
    )
    spoken_ms = int(client(page).get_attribute("data-listener-latency-ms"))
    expect(client(page).locator(".rico-latency")).to_have_text(f"reply in {spoken_ms} ms")
    # a typed turn, once the agent has finished speaking
    expect(client(page)).to_have_attribute("data-agent-state", "listening", timeout=30_000)
    type_to_agent(page, "How fast was that? Tell me all about the timing of your replies.")
    typed = client(page).locator(".rico-line.rico-agent", has_text="you wrote: How fast")
    expect(typed).to_be_visible(timeout=30_000)
    # and another while it reads that out: typing interrupts it, and the new reply is timed
    # from this Enter, not from the next pause in what it was saying
    page.wait_for_timeout(500)
    expect(client(page)).to_have_attribute("data-agent-state", "speaking")
    type_to_agent(page, "Sorry, go on.")
    again = client(page).locator(".rico-line.rico-agent", has_text="you wrote: Sorry")
    expect(again).to_be_visible(timeout=30_000)

    # the last cell has been polling the record all along
    output = page.locator(STDOUT, has_text="greeting's latency:")
    expect(output).to_be_visible(timeout=60_000)
    printed = dict(line.split(": ", 1) for line in output.inner_text().splitlines())
    latencies = [float(x) for x in re.findall(r"[\d.]+", printed["latencies"])]
    assert len(latencies) == 3, printed
    # the local model answers at once: the wait is its VAD's 0.5 s of silence (spoken turn),
    # the network, and the jitter buffer; what the interrupted reply said after a pause
    # would have come sooner
    assert all(0.1 < x < 2.0 for x in latencies), latencies
    assert latencies[0] > 0.3, "timed from before the end of the user's speech"
    assert printed["after"] == "['speech', 'text', 'text']"
    # the agent's reply left it after the turn ended and before the page heard it
    gaps = [float(x) for x in re.findall(r"-?[\d.]+", printed["ended to reply"])]
    assert all(0 < gap < heard for gap, heard in zip(gaps, latencies, strict=True)), gaps
    # one report per reply to a user turn (the interrupted one too); none for the greeting
    assert printed["client_latency events"] == "3"
    assert printed["user turns"] == "3"
    assert printed["greeting's latency"] == "nan"
    assert printed["interrupted"] == "[False, False, True, False]"
    # the page shows each value as the agent recorded it, the latest last
    assert abs(latencies[0] * 1000 - spoken_ms) <= 1, (spoken_ms, latencies)
    shown = int(client(page).get_attribute("data-listener-latency-ms"))
    assert abs(latencies[2] * 1000 - shown) <= 1, (shown, latencies)
