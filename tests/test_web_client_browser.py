"""``rico-lab serve-client``: the voice client as a plain web page, with a standalone worker.

No notebook anywhere: a role shared as a page, as a colleague opens it in a browser.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from cli_process import Command, livekit_env, worker
from jupyterlab_browser import chromium, fake_microphone, playwright
from playwright.sync_api import expect

from rico_lab.cli import main
from rico_lab.livekit_server import free_port
from rico_lab.local_model.speech import synthesize, write_wav

pytestmark = pytest.mark.browser

RATE = 48000


def test_a_shared_page_talks_to_the_standalone_worker(livekit, tmp_path):
    quiet = np.zeros(RATE * 6, np.int16)
    speech = synthesize("Can you hear me from this page?", sample_rate=RATE)
    wav = tmp_path / "user.wav"
    write_wav(wav, np.concatenate([quiet, speech, quiet]), RATE)
    port = free_port()
    with (
        worker(livekit, tmp_path / "runs"),
        playwright() as driver,
        chromium(driver, fake_microphone(wav)) as page,
    ):
        served = Command(
            livekit, "serve-client", "--role", "food_order", "--port", str(port),
            ready="rico-lab serve-client: the food_order role at",
        )  # fmt: skip
        try:
            page.goto(f"http://127.0.0.1:{port}/")
            client = page.locator(".rico-voice-client")
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
            expect(agent.filter(has_text="you wrote: one coffee please")).to_be_visible(
                timeout=30_000
            )
            # each visit is a conversation of its own; the secret never reaches the page
            join = urllib.request.Request(f"http://127.0.0.1:{port}/join", method="POST")
            with urllib.request.urlopen(join) as first, urllib.request.urlopen(join) as second:
                rooms = {json_room(first.read()), json_room(second.read())}
            assert len(rooms) == 2
            assert livekit.api_secret not in page.content()
        finally:
            served.stop()


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
