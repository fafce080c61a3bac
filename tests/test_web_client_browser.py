"""``rico-lab serve-client``: the voice client as a plain web page, with a standalone worker.

No notebook anywhere: a role shared as a page, as a colleague opens it in a browser.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from cli_process import Command, livekit_env, worker
from jupyterlab_browser import chromium, fake_microphone, playwright
from playwright.sync_api import Locator, Page, expect

from rico_lab.cli import main
from rico_lab.livekit_server import free_port
from rico_lab.local_model.speech import synthesize, write_wav

pytestmark = pytest.mark.browser

RATE = 48000


@contextmanager
def served_page(livekit, page: Page, role: str) -> Iterator[tuple[Locator, int]]:
    """``rico-lab serve-client`` for ``role``, opened in ``page``: the client and the port."""
    port = free_port()
    served = Command(
        livekit, "serve-client", "--role", role, "--port", str(port),
        ready=f"rico-lab serve-client: the {role} role at",
    )  # fmt: skip
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        yield page.locator(".rico-voice-client"), port
    finally:
        served.stop()


def test_a_shared_page_talks_to_the_standalone_worker(livekit, tmp_path):
    quiet = np.zeros(RATE * 6, np.int16)
    speech = synthesize("Can you hear me from this page?", sample_rate=RATE)
    wav = tmp_path / "user.wav"
    write_wav(wav, np.concatenate([quiet, speech, quiet]), RATE)
    with (
        worker(livekit, tmp_path / "runs"),
        playwright() as driver,
        chromium(driver, fake_microphone(wav)) as page,
        served_page(livekit, page, "food_order") as (client, port),
    ):
        expect(client).to_have_attribute("data-status", "connected", timeout=60_000)
        agent = client.locator(".rico-line.rico-agent")
        expect(agent.first).to_contain_text("Welcome to the cafe!", timeout=30_000)
        # the page is not told which model answers; the agent says so
        expect(client.locator(".rico-model-badge")).to_contain_text("LOCAL")
        expect(agent.filter(has_text="Turn 1: I heard")).to_be_visible(timeout=60_000)
        expect(client).to_have_attribute("data-agent-state", "listening", timeout=30_000)
        box = client.locator(".rico-text-input")
        box.fill("one coffee please")
        box.press("Enter")
        expect(agent.filter(has_text="you wrote: one coffee please")).to_be_visible(timeout=30_000)
        # each visit is a conversation of its own; the secret never reaches the page
        join = urllib.request.Request(f"http://127.0.0.1:{port}/join", method="POST")
        with urllib.request.urlopen(join) as first, urllib.request.urlopen(join) as second:
            rooms = {json_room(first.read()), json_room(second.read())}
        assert len(rooms) == 2
        assert livekit.api_secret not in page.content()


#: every RTCPeerConnection the page makes, kept where the test can read its statistics
KEEP_CONNECTIONS = """
window.__connections = [];
window.RTCPeerConnection = class extends window.RTCPeerConnection {
  constructor(...args) { super(...args); window.__connections.push(this); }
};
"""
SENT = """async () => {
  for (const pc of window.__connections) for (const r of (await pc.getStats()).values())
    if (r.type === "outbound-rtp" && r.kind === "audio") return [r.packetsSent, r.timestamp];
  return null;
}"""


def test_the_microphone_is_sent_in_10_ms_packets(livekit, tmp_path):
    # a tone, loud throughout, so that Opus sends every packet (no silence to skip)
    tone = np.sin(2 * np.pi * 440 * np.arange(RATE * 30) / RATE) * 8000
    wav = tmp_path / "tone.wav"
    write_wav(wav, tone.astype(np.int16), RATE)
    with playwright() as driver, chromium(driver, fake_microphone(wav)) as page:
        page.add_init_script(KEEP_CONNECTIONS)
        with served_page(livekit, page, "demo") as (client, _):
            expect(client).to_have_attribute("data-mic", "on", timeout=60_000)
            for _ in range(300):  # the first 100 packets: the track is sending steadily
                if (sent := page.evaluate(SENT)) and sent[0] > 100:
                    break
                page.wait_for_timeout(100)
            (before, then), _ = page.evaluate(SENT), page.wait_for_timeout(2000)
            after, now = page.evaluate(SENT)
    # libwebrtc's default is 20 ms: 50 packets a second
    assert (after - before) / (now - then) * 1000 > 80


def json_room(body: bytes) -> str:
    state = json.loads(body)
    assert set(state) >= {"url", "token", "room", "identity", "role"}
    assert state["role"] == "food_order"
    return str(state["room"])


def test_an_unknown_role_is_named(livekit, monkeypatch, capsys):
    for name, value in livekit_env(livekit).items():
        monkeypatch.setenv(name, value)
    assert main(["serve-client", "--role", "nobody"]) == 2
    assert "unknown role 'nobody'" in capsys.readouterr().err
