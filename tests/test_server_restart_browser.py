"""The embedded LiveKit server dies mid-conversation: the lab restarts it on the same port,
the voice client reconnects, a fresh agent goes on with the conversation, and the record
keeps every turn.

The client is the real voice client bundle in Chromium (served as ``rico-lab serve-client``
serves it), talking to a lab in this process; the server is killed with SIGKILL, as a crash
or the OOM killer would.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from jupyterlab_browser import chromium, playwright, served
from livekit import api
from playwright.sync_api import Locator, expect
from rtc_participant import in_room

import rico_lab
from rico_lab.web_client import make_app

pytestmark = pytest.mark.browser


@pytest.fixture
def lab_page(tmp_path) -> Iterator[tuple[rico_lab.Lab, str]]:
    """A lab, and the voice client page for its demo role (URL)."""
    with rico_lab.Lab(runs_dir=tmp_path / "runs") as lab:
        server = lab.livekit_server
        assert server is not None
        app = make_app(lab.url, server.api_key, server.api_secret, "demo", lab.agent_name)
        with served(app) as url:
            yield lab, url


def say(client: Locator, text: str) -> None:
    expect(client).to_have_attribute("data-agent-state", "listening", timeout=30_000)
    box = client.locator(".rico-text-input")
    box.fill(text)
    box.press("Enter")


def test_a_killed_server_comes_back_and_the_conversation_goes_on(lab_page):
    lab, url = lab_page
    with playwright() as driver, chromium(driver, []) as page:
        page.goto(url)
        client = page.locator(".rico-voice-client")
        agent = client.locator(".rico-line.rico-agent")
        expect(agent.first).to_contain_text("Local model here.", timeout=60_000)
        say(client, "before the crash")
        expect(agent.filter(has_text="you wrote: before the crash")).to_be_visible(timeout=30_000)
        room = client.locator(".rico-role").get_attribute("title").removeprefix("room ")

        os.kill(lab.livekit_server.pid, signal.SIGKILL)
        # the client notices, and gets back in once the lab has restarted the server
        expect(client).to_have_attribute("data-status", "connecting", timeout=20_000)
        expect(client).to_have_attribute("data-status", "connected", timeout=90_000)
        assert any("livekit-server exited with code -9" in e for e in lab.errors)
        assert any("livekit-server restarted" in e for e in lab.errors)
        # a fresh agent takes over where the cut-off one was, without greeting again
        say(client, "after the restart")
        reply = agent.filter(has_text="Turn 2: you wrote: after the restart")
        expect(reply).to_be_visible(timeout=30_000)
        expect(agent.filter(has_text="Local model here.")).to_have_count(1)
        expect(client.locator(".rico-error")).to_have_text("")
        assert sorted(kinds_in(lab, room)) == ["agent", "user"]

    # the record kept every turn, and says where the server cut the conversation; the last
    # reply is recorded once it has been said, a moment after the page shows its words
    deadline = time.monotonic() + 30
    while len(said := list(lab.log.turns.query("session == @room")["text"])) < 5:
        assert time.monotonic() < deadline, said
        time.sleep(0.2)
    assert said[1:] == [
        "before the crash",
        "Turn 1: you wrote: before the crash",
        "after the restart",
        "Turn 2: you wrote: after the restart",
    ], said
    events = lab.log.records(room)
    starts = [e for e in events if e["type"] == "session_started"]
    assert [e["resumed"] for e in starts] == [False, True]
    ends = [e["reason"] for e in events if e["type"] == "session_ended"]
    assert ends == ["the LiveKit server died"]


def kinds_in(lab: rico_lab.Lab, room: str) -> list[str]:
    """Agent or user, for each participant the LiveKit server has in ``room``."""
    agent = api.ParticipantInfo.Kind.AGENT
    found = in_room(lab.url, lab.api_key, lab._api_secret, room)
    return ["agent" if p.kind == agent else "user" for p in found]
