"""The voice client's UI methods, tool errors and role badge, driven by a fake agent.

Real parts only: a livekit-server, JupyterLab in Chromium showing three voice clients (one
room each), and for each room a plain LiveKit participant whose token makes it an agent.
It calls the client's methods over RPC and sets the attributes rico_lab's worker sets, so the
page is exercised exactly as the real agent exercises it, without a model in the loop.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import queue
import re
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nbformat
import numpy as np
import pytest
from jupyterlab_browser import (
    chromium,
    contrast,
    fake_microphone,
    jupyterlab,
    open_notebook,
    playwright,
    run_command,
    run_in_kernel,
)
from livekit import api, rtc
from playwright.sync_api import Locator, Page, expect

from rico_lab.evaluation.participant import Participant
from rico_lab.livekit_server import LiveKitServer
from rico_lab.local_model.speech import write_wav
from rico_lab.protocol import UI_TOPIC, JoinInfo

pytestmark = pytest.mark.browser

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
ONLY_AGENT = "only the agent may call this"
#: The calls both clients run (the voice client's unit tests, the headless client's tests).
CASES: list[dict[str, Any]] = json.loads((HERE / "client_method_cases.json").read_text())["cases"]


@dataclass(frozen=True)
class Seat:
    """One voice client on the page: its room and the identity it joins with."""

    room: str
    user: str

    @property
    def agent(self) -> str:
        return f"agent-{self.room}"


UI = Seat("ui-methods", "user-ui")
END = Seat("ending", "user-end")
XSS = Seat("xss", "user-xss")


class FakeAgent(Participant):
    """The one participant, playing the agent: the test's thread stays free to drive the
    page while a call waits for the user."""

    def __init__(self, server: LiveKitServer, identity: str, room: str, kind: str = "agent"):
        self.server, self.room_name = server, room
        token = mint(server, identity, room, kind)
        super().__init__(JoinInfo(server.url, token, room, identity, role=""))
        #: what the client said it showed (its rico_lab.ui packets), in order of arrival
        self.reports: queue.Queue[dict[str, Any]] = queue.Queue()
        self.room.on("data_received", self._on_data)  # called on the participant's loop
        self.connect(microphone=False)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        if packet.topic == UI_TOPIC:
            self.reports.put(json.loads(packet.data))

    def report(self, timeout: float = 10.0) -> dict[str, Any]:
        """The client's next rico_lab.ui report."""
        return self.reports.get(timeout=timeout)

    def forget_reports(self) -> None:
        """Drop the reports of earlier calls."""
        while not self.reports.empty():
            self.reports.get_nowait()

    def call(self, to: str, method: str, arguments: Any) -> str:
        """Call ``method`` on the client ``to`` and return its answer (or raise RpcError)."""
        return self.run(self.rpc(to, method, arguments))

    def call_payload(self, to: str, method: str, payload: str) -> str:
        """Call ``method`` with the RPC payload as written (a shared case's)."""
        participant = self.room.local_participant
        return self.run(
            participant.perform_rpc(destination_identity=to, method=method, payload=payload)
        )

    def call_later(
        self, to: str, method: str, arguments: Any, timeout: float = 30.0
    ) -> concurrent.futures.Future[str]:
        """Start a call that waits for the user; the future has the answer."""
        return self.submit(self.rpc(to, method, arguments, timeout))

    def set(self, attributes: dict[str, str]) -> None:
        self.run(self.room.local_participant.set_attributes(attributes))

    async def transcribe(self, text: str, segment: str) -> None:
        """One final agent transcript line, as livekit-agents sends it."""
        attributes = {"lk.segment_id": segment, "lk.transcription_final": "true"}
        await self.room.local_participant.send_text(
            text, topic="lk.transcription", attributes=attributes
        )

    def sees(self, identity: str, timeout: float = 30.0) -> None:
        async def wait() -> None:
            while identity not in self.room.remote_participants:
                await asyncio.sleep(0.05)

        self.run(wait(), timeout)

    def delete_room(self) -> None:
        async def delete() -> None:
            server = self.server
            async with api.LiveKitAPI(server.url, server.api_key, server.api_secret) as lk:
                await lk.room.delete_room(api.DeleteRoomRequest(room=self.room_name))

        self.run(delete())


def mint(server: LiveKitServer, identity: str, room: str, kind: str | None = None) -> str:
    # an agent sets attributes (state, role, errors) on itself
    grants = api.VideoGrants(room_join=True, room=room, can_update_own_metadata=kind == "agent")
    token = api.AccessToken(server.api_key, server.api_secret).with_identity(identity)
    if kind:
        token = token.with_kind(kind)  # type: ignore[arg-type]
    return token.with_grants(grants).to_jwt()


def png(width: int, height: int, rgb: tuple[int, int, int]) -> str:
    """A solid-colour PNG as a data: URI."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    data += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(data).decode()


# -- the page ---------------------------------------------------------------------------------

#: Installed before any page script: records executions and, continuously, any dangerous
#: node or attribute that appears inside a voice client, even if it is gone a moment later.
WATCH = """
window.__xssHits = [];
window.__domHits = [];
window.__xss = (id) => { window.__xssHits.push(String(id)); };
window.__scanClient = (root, deep = true) => {
  const bad = [];
  const tags = new Set(["script", "iframe", "object", "embed", "frame", "frameset", "applet",
                        "meta", "base", "link", "style"]);
  const urls = ["href", "src", "action", "formaction", "xlink:href", "data", "poster",
                "background"];
  const nodes = root.nodeType !== 1 ? [] : deep ? [root, ...root.querySelectorAll("*")] : [root];
  for (const el of nodes) {
    const tag = el.localName;
    if (tags.has(tag)) bad.push(`<${tag}>`);
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on")) bad.push(`${tag}[${name}]`);
      if (name === "srcdoc") bad.push(`${tag}[srcdoc]`);
      const value = attr.value.replace(/[\\s\\x00-\\x20]/g, "").toLowerCase();
      const unsafe = /^(javascript|vbscript):/.test(value)
        || (value.startsWith("data:") && !/^data:image\\/(png|jpeg|gif|webp);/.test(value));
      if ((urls.includes(name) || name.endsWith(":href")) && unsafe) {
        bad.push(`${tag}[${name}=${attr.value.slice(0, 40)}]`);
      }
    }
  }
  return bad;
};
new MutationObserver((records) => {
  for (const record of records) {
    const target = record.target.nodeType === 1 ? record.target : record.target.parentElement;
    if (!target || !target.closest(".rico-voice-client")) continue;
    if (record.type === "attributes") window.__domHits.push(...window.__scanClient(target, false));
    for (const node of record.addedNodes) window.__domHits.push(...window.__scanClient(node));
  }
}).observe(document, { subtree: true, childList: true, attributes: true });
"""


def notebook_cells(server: LiveKitServer) -> list[str]:
    cells = [
        "from rico_lab.protocol import JoinInfo\n"
        "from rico_lab.notebook.voice_client import VoiceClient",
    ]
    for name, seat in (("ui", UI), ("end", END), ("xss", XSS)):
        token = mint(server, seat.user, seat.room)
        cells.append(
            f"{name} = VoiceClient(JoinInfo({server.url!r}, {token!r}, {seat.room!r}, "
            f"{seat.user!r}, 'demo'), model_label='local', agent_timeout_s=30)\n{name}"
        )
    return cells


@dataclass
class Bench:
    """The page with its three voice clients, and the fake agent in each room."""

    page: Page
    agents: dict[Seat, FakeAgent]
    server: LiveKitServer
    dialogs: list[str]

    def client(self, seat: Seat) -> Locator:
        return self.page.locator(
            ".rico-voice-client", has=self.page.locator(f'.rico-role[title="room {seat.room}"]')
        )

    def kernel(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel; returns what it printed."""
        return run_in_kernel(self.page, code)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("methods")
    server = LiveKitServer()
    server.start()
    agents: dict[Seat, FakeAgent] = {}
    try:
        for seat in (UI, END, XSS):
            agents[seat] = FakeAgent(server, seat.agent, seat.room)
            agents[seat].set({"lk.agent.state": "listening"})
        notebook = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(c) for c in notebook_cells(server)]
        )
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        nbformat.write(notebook, root / "methods.ipynb")
        silence = root / "silence.wav"
        write_wav(silence, np.zeros(48000, np.int16), 48000)
        env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        with (
            playwright() as driver,
            jupyterlab(root, env) as url,
            chromium(driver, fake_microphone(silence)) as page,
        ):
            dialogs: list[str] = []

            def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            page.context.on("page", lambda popup: popup.close())  # a link's new tab
            page.add_init_script(WATCH)
            open_notebook(page, url.format(path="methods.ipynb"))
            run_command(page, "notebook:run-all-cells", wait=False)
            found = Bench(page, agents, server, dialogs)
            for seat in (UI, END, XSS):
                client = found.client(seat)
                expect(client).to_have_attribute("data-status", "connected", timeout=60_000)
                expect(client).to_have_attribute("data-agent-state", "listening", timeout=30_000)
                agents[seat].sees(seat.user)
            yield found
    finally:
        for agent in agents.values():
            agent.close()
        server.stop()


def rpc_error(call: Any) -> rtc.RpcError:
    with pytest.raises(rtc.RpcError) as caught:
        call()
    return caught.value


# -- each method as documented ------------------------------------------------------------------


def test_show_image_renders_a_data_uri(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    image = png(40, 20, (200, 30, 30))
    answer = agent.call(UI.user, "show_image", {"title": "Chart", "image": image, "alt": "red"})
    assert answer == "shown"
    panel = client.locator(".rico-panel-image")
    expect(panel.locator(".rico-panel-title")).to_have_text("Chart")
    img = panel.locator("img.rico-image")
    expect(img).to_have_attribute("alt", "red")
    assert img.evaluate("(i) => [i.complete, i.naturalWidth, i.naturalHeight]") == [True, 40, 20]


def test_markdown_links_open_elsewhere_and_remote_images_stay_unloaded(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    inline = png(3, 3, (0, 0, 200))
    source = f"[site](https://example.com/) ![remote](https://example.com/p.png) ![ok]({inline})"
    assert agent.call(UI.user, "show_markdown", {"markdown": source}) == "shown"
    panel = client.locator(".rico-panel-markdown")
    expect(panel.locator("a")).to_have_attribute("href", "https://example.com/")
    expect(panel.locator("a")).to_have_attribute("target", "_blank")
    expect(panel.locator("a")).to_have_attribute("rel", "noopener noreferrer")
    expect(panel.locator("img[alt=remote]")).not_to_have_attribute("src", re.compile("."))
    expect(panel.locator("img[alt=ok]")).to_have_attribute("src", inline)


@pytest.mark.parametrize(
    "image",
    [
        "https://example.com/cat.png",
        "javascript:__xss('image')",
        "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=",
        "data:text/html;base64,PHNjcmlwdD48L3NjcmlwdD4=",
        "cat.png",
    ],
)
def test_show_image_refuses_anything_but_a_raster_data_uri(bench: Bench, image: str):
    agent, client = bench.agents[UI], bench.client(UI)
    error = rpc_error(lambda: agent.call(UI.user, "show_image", {"image": image, "alt": "x"}))
    assert error.code == rtc.RpcError.ErrorCode.APPLICATION_ERROR
    assert "argument 'image'" in error.message
    assert "only data: URIs of PNG/JPEG/GIF/WebP are allowed" in error.message
    assert client.locator(f'img[src="{image}"]').count() == 0


def test_ask_with_fields_returns_the_form_as_json(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    fields = [
        {"name": "city", "label": "City"},
        {"name": "guests", "type": "number"},
        {"name": "note"},
    ]
    answer = agent.call_later(UI.user, "ask", {"question": "Where to?", "fields": fields})
    panel = client.locator(".rico-panel-ask")
    expect(panel.locator(".rico-panel-title")).to_have_text("Where to?")
    labels = panel.locator(".rico-field-label")
    expect(labels).to_have_text(["City", "guests", "note"])
    inputs = panel.locator(".rico-field-input")
    expect(inputs.nth(1)).to_have_attribute("type", "number")
    bench.page.wait_for_timeout(500)  # the call waits for the user
    assert not answer.done()
    inputs.nth(0).fill("Paris")
    inputs.nth(1).fill("4")
    inputs.nth(1).press("Enter")
    assert json.loads(answer.result(10)) == {"city": "Paris", "guests": 4, "note": ""}
    expect(inputs.nth(0)).to_be_disabled()


def test_ask_with_choices_returns_the_choice(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    answer = agent.call_later(UI.user, "ask", {"question": "Tea?", "choices": ["yes", "no"]})
    client.locator(".rico-panel-ask .rico-choice", has_text="no").click()
    assert answer.result(10) == "no"


@pytest.mark.parametrize(
    "arguments",
    [
        {"question": "Both?", "choices": ["a"], "fields": [{"name": "x"}]},
        {"question": "Neither?"},
        {"question": "Empty?", "choices": [], "fields": None},
    ],
)
def test_ask_takes_exactly_one_of_choices_and_fields(bench: Bench, arguments: dict[str, Any]):
    error = rpc_error(lambda: bench.agents[UI].call(UI.user, "ask", arguments))
    assert "exactly one of 'choices'" in error.message


def test_a_newer_question_replaces_an_unanswered_one(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    agent.forget_reports()
    first = agent.call_later(UI.user, "ask", {"question": "First?", "choices": ["a"]})
    expect(client.locator(".rico-panel-ask .rico-panel-title")).to_have_text("First?")
    second = agent.call_later(UI.user, "ask", {"question": "Second?", "choices": ["b"]})
    with pytest.raises(rtc.RpcError, match="newer question"):
        first.result(10)
    replaced = "a newer question replaced this one before the user answered"
    shown = {"method": "ask", "title": "First?", "text": "a"}
    assert agent.report() == {**shown, "answer": None, "error": replaced}
    client.locator(".rico-panel-ask .rico-choice", has_text="b").click()
    assert second.result(10) == "b"
    shown = {"method": "ask", "title": "Second?", "text": "b"}
    assert agent.report() == {**shown, "answer": "b", "error": None}


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c["method"] in ("show_markdown", "show_table") and "answer" in c],
    ids=lambda case: case["payload"][:50],
)
def test_the_client_reports_what_it_showed(bench: Bench, case: dict[str, Any]):
    """The shared cases' title and text, read off the page's panels; show_markdown's text is
    checked here only, as the unit tests have no DOM to render Markdown into."""
    agent, method = bench.agents[UI], case["method"]
    refused = next(c for c in CASES if c["method"] == method and "error" in c)
    agent.forget_reports()
    error = rpc_error(lambda: agent.call_payload(UI.user, method, refused["payload"]))
    assert error.message == refused["error"]  # it showed nothing, so it reports nothing
    assert agent.call_payload(UI.user, method, case["payload"]) == case["answer"]
    shown = {"method": method, "title": case["title"], "text": case["text"]}
    assert agent.report() == {**shown, "answer": case["answer"], "error": None}


def test_save_note_appends_to_the_notes(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    notes = client.locator(".rico-panel-notes .rico-note")
    before = notes.count()
    assert agent.call(UI.user, "save_note", {"title": "Plan", "text": "Buy flour"}) == "saved"
    assert agent.call(UI.user, "save_note", {"text": "then <b>bake</b>\nat 200°"}) == "saved"
    expect(notes).to_have_count(before + 2)
    expect(notes.nth(before).locator(".rico-note-title")).to_have_text("Plan")
    expect(notes.nth(before).locator(".rico-note-text")).to_have_text("Buy flour")
    last = notes.nth(before + 1)
    expect(last.locator(".rico-note-text")).to_have_text("then <b>bake</b>\nat 200°")
    expect(last.locator("b")).to_have_count(0)
    expect(last.locator(".rico-note-title")).to_have_count(0)


def test_a_tool_error_is_shown_until_cleared(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    error = client.locator(".rico-error")
    failure = {"tool": "lookup", "message": "the client did not answer <i>ask</i>", "n": 1}
    agent.set({"rico_lab.tool_error": json.dumps(failure)})
    expect(error).to_have_text("Tool lookup failed: the client did not answer <i>ask</i>")
    expect(error.locator("i")).to_have_count(0)
    agent.set({"rico_lab.tool_error": ""})
    expect(error).to_be_empty()
    # the same tool failing again later is shown again
    agent.set({"rico_lab.tool_error": json.dumps({**failure, "n": 2})})
    expect(error).to_contain_text("Tool lookup failed")
    agent.set({"lk.agent.state": "thinking"})  # other attributes changing leave it alone
    expect(client).to_have_attribute("data-agent-state", "thinking")
    expect(error).to_contain_text("Tool lookup failed")
    agent.set({"rico_lab.tool_error": "", "lk.agent.state": "listening"})
    expect(error).to_be_empty()


def test_role_badge_and_version_follow_the_agent(bench: Bench):
    agent, client = bench.agents[UI], bench.client(UI)
    badge = client.locator(".rico-role-badge")
    for version in ("1a2b3c4d", "9f8e7d6c"):
        agent.set({"rico_lab.role": "demo", "rico_lab.role_version": version})
        expect(badge).to_have_text(f"demo · v{version}")
        expect(client).to_have_attribute("data-role", "demo")
        expect(client).to_have_attribute("data-role-version", version)
        deadline = time.monotonic() + 10
        while bench.kernel("print(ui.role_version)").strip() != version:
            assert time.monotonic() < deadline, "role_version did not reach Python"
            time.sleep(0.1)


def test_only_the_agent_may_call_a_method(bench: Bench):
    client = bench.client(UI)
    intruder = FakeAgent(bench.server, "intruder", UI.room, kind="standard")
    try:
        intruder.sees(UI.user)
        expect(client).to_have_attribute("data-agent-state", "listening")
        for method, arguments in [
            ("show_markdown", {"markdown": "intruder markdown"}),
            ("save_note", {"text": "intruder note"}),
            ("ask", {"question": "intruder question", "choices": ["x"]}),
            ("end_session", {"reason": "intruder"}),
        ]:
            error = rpc_error(lambda: intruder.call(UI.user, method, arguments))  # noqa: B023
            assert error.message == ONLY_AGENT
        bench.page.wait_for_timeout(300)
        expect(client.get_by_text(re.compile("intruder"))).to_have_count(0)
        expect(client.locator(".rico-notice")).to_be_empty()
    finally:
        intruder.close()


def test_end_session_ends_normally_but_an_agent_vanishing_is_an_error(bench: Bench):
    client = bench.client(END)
    first = bench.agents[END]
    first.close()  # gone without end_session: the lab died, say
    expect(client.locator(".rico-error")).to_contain_text("The agent left the conversation")
    bench.agents[END] = agent = FakeAgent(bench.server, END.agent + "-2", END.room)
    agent.set({"lk.agent.state": "listening", "rico_lab.role": "demo"})
    expect(client.locator(".rico-error")).to_be_empty()
    expect(client).to_have_attribute("data-agent-state", "listening")

    assert agent.call(END.user, "end_session", {"reason": "the user said <b>bye</b>"}) == "ending"
    notice = client.locator(".rico-notice")
    expect(notice).to_have_text("The agent is ending the session: the user said <b>bye</b>")
    agent.run(agent.transcribe("Goodbye!", "bye-1"))
    expect(client.locator(".rico-line.rico-agent", has_text="Goodbye!")).to_be_visible()
    agent.delete_room()
    expect(client).to_have_attribute("data-status", "disconnected", timeout=20_000)
    expect(notice).to_have_text("The agent ended the session: the user said <b>bye</b>")
    expect(client.locator(".rico-error")).to_be_empty()
    expect(client).to_have_attribute("data-agent-state", "")
    # the page's state reaches Python over the widget's comm, a moment after the page shows it
    deadline = time.monotonic() + 10
    while (seen := bench.kernel("print(end.status, repr(end.error))").split()) != [
        "disconnected",
        "''",
    ]:
        assert time.monotonic() < deadline, f"Python still sees {seen}"
        time.sleep(0.1)


# -- hostile text through every renderer -------------------------------------------------------


def payloads() -> list[str]:
    lines = (HERE / "xss_payloads.txt").read_text().splitlines()
    return [line.replace("\\n", "\n") for line in lines if line and not line.startswith("#")]


def marked(payload: str, n: int, where: str) -> str:
    """The payload as sent to ``where``: a hit names the payload and the place."""
    return payload.replace("%ID%", f"{n}-{where}")


async def spray(agent: FakeAgent, n: int, payload: str) -> None:
    """Send ``payload`` to every place the model's text can reach, except questions."""
    to, image = XSS.user, png(4, 4, (0, 120, 0))

    def p(where: str) -> str:
        return marked(payload, n, where)

    async def refused(arguments: dict[str, Any]) -> None:
        try:
            await agent.rpc(to, "show_image", arguments)
        except rtc.RpcError as error:
            assert "only data: URIs" in error.message, error.message
        else:
            raise AssertionError(f"show_image took {arguments['image']!r}")

    async def attributes() -> None:
        failure = {"tool": p("tool"), "message": p("tool-message"), "n": n}
        await agent.room.local_participant.set_attributes(
            {
                "rico_lab.tool_error": json.dumps(failure),
                "rico_lab.error": p("model-error"),
                "rico_lab.role": p("role"),
                "rico_lab.role_version": p("version"),
            }
        )

    calls = [
        agent.rpc(to, "show_markdown", {"markdown": p("md"), "title": p("md-title")}),
        agent.rpc(
            to,
            "show_table",
            {
                "title": p("table-title"),
                "columns": [p("column"), "b"],
                "rows": [[p("cell"), p("cell2")], {p("column"): p("cell3"), "b": p("cell4")}],
            },
        ),
        agent.rpc(to, "show_image", {"image": image, "alt": p("alt"), "title": p("img-title")}),
        refused({"image": p("image")}),
        agent.rpc(to, "save_note", {"title": p("note-title"), "text": p("note")}),
        attributes(),
        agent.transcribe(p("transcript"), f"xss-{n}"),
    ]
    await asyncio.gather(*calls)


def questions(n: int, payload: str) -> list[dict[str, Any]]:
    """The payload as a question with choices, then as one with a form."""

    def p(where: str) -> str:
        return marked(payload, n, where)

    fields = [{"name": p("field"), "label": p("label")}, {"name": "n", "type": "number"}]
    return [
        {"question": p("question"), "choices": [p("choice"), "ok"]},
        {"question": p("form"), "fields": fields},
    ]


def test_no_payload_runs_or_lands_in_the_dom(bench: Bench):
    agent, client, page = bench.agents[XSS], bench.client(XSS), bench.page
    corpus = payloads()
    assert len(corpus) >= 50
    asks: list[concurrent.futures.Future[str]] = []
    question = client.locator(".rico-panel-ask .rico-panel-title")
    for n, payload in enumerate(corpus):
        agent.run(spray(agent, n, payload))
        # each question replaces the one before: one at a time, each seen on the page
        for arguments in questions(n, payload):
            asks.append(agent.call_later(XSS.user, "ask", arguments))
            expect(question).to_have_text(arguments["question"])
    # every sink really got the text
    expect(client.locator(".rico-panel-notes .rico-note")).to_have_count(len(corpus))
    expect(client.locator(".rico-line.rico-agent")).to_have_count(len(corpus))
    expect(client.locator(".rico-error")).to_contain_text("Tool ")
    expect(client.locator(".rico-role-badge")).not_to_be_empty()
    for ask in asks[:-1]:
        with pytest.raises(rtc.RpcError, match="newer question"):
            ask.result(10)

    page.wait_for_timeout(500)  # late errors, loads, timers
    assert_nothing_ran(bench, client)

    # then use whatever the panels offer: links, buttons (the last form's Submit), summaries;
    # forced, as a user's click lands on whatever covers the control
    clickable = client.locator(".rico-panels").locator("a, button, summary, input")
    for i in range(clickable.count()):
        target = clickable.nth(i)
        if target.is_visible() and target.is_enabled():
            target.click(timeout=2000, force=True, no_wait_after=True)
    assert isinstance(json.loads(asks[-1].result(10)), dict)
    page.wait_for_timeout(1000)
    assert_nothing_ran(bench, client)


def assert_nothing_ran(bench: Bench, client: Locator) -> None:
    assert bench.page.evaluate("() => window.__xssHits") == []
    assert bench.dialogs == []
    assert bench.page.evaluate("() => window.__domHits") == []
    assert client.evaluate("(root) => window.__scanClient(root)") == []


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_new_panels_are_readable_in_light_and_dark_themes(bench: Bench, theme: str):
    agent, client, page = bench.agents[UI], bench.client(UI), bench.page
    agent.call(UI.user, "save_note", {"title": "Readable", "text": "note text"})
    agent.set({"rico_lab.role": "demo", "rico_lab.role_version": "0badc0de"})
    question = agent.call_later(UI.user, "ask", {"question": "Name?", "fields": [{"name": "n"}]})
    # end_session leaves this client expecting the end; nothing here makes the agent leave
    assert agent.call(UI.user, "end_session", {"reason": "theme check"}) == "ending"
    run_command(page, "apputils:change-theme", {"theme": theme})
    page.wait_for_function(
        "(t) => document.body.dataset.jpThemeName === t", arg=theme, timeout=30_000
    )
    page.wait_for_timeout(500)
    for selector in (
        ".rico-notice",
        ".rico-role-badge",
        ".rico-panel-title",
        ".rico-note-text",
        ".rico-field-label",
        ".rico-field-input",
    ):
        client.locator(selector).first.scroll_into_view_if_needed()
        ratio = contrast(page, f".rico-voice-client {selector}")
        assert ratio >= 4.5, (theme, selector, ratio)
    client.locator(".rico-panel-ask .rico-field-input").fill("Ada")
    client.locator(".rico-panel-ask .rico-submit").click()
    assert json.loads(question.result(10)) == {"n": "Ada"}
