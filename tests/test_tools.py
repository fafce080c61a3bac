"""Role tools end to end: local model → agent → kernel handlers and client methods over RPC."""

import asyncio
import json
import threading
import time

import numpy as np
import pytest
from livekit import rtc
from rtc_participant import VoiceParticipant

import rico_lab

pytestmark = pytest.mark.integration

ROLE = """\
instructions: You try out tools.
tools:
  - {name: note, description: Save a note., ui: save_note}
  - {name: show, description: Show Markdown., ui: show_markdown}
  - {name: pick, description: Ask the user., ui: ask, timeout_s: 1}
  - {name: bye, description: End the session., ui: end_session}
  - name: count
    description: Count, in the notebook.
    parameters: {type: object, properties: {n: {type: integer}}}
  - name: orphan
    description: A tool nobody answers.
  - name: total
    description: Python that fails, then shows.
    python: shop:total
    ui: show_table
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roles") / "tools"
    folder.mkdir()
    (folder / "role.yaml").write_text(ROLE)
    (folder / "shop.py").write_text(
        "def total(items=()):\n"
        "    if not items:\n        raise ValueError('the basket is empty')\n"
        "    return [{'items': len(items)}]\n"
    )
    with rico_lab.Lab(roles_dir=folder.parent) as lab:
        yield lab


@pytest.fixture
def person(lab):
    p = VoiceParticipant(lab.join("tools"))
    p.connect()
    p.wait_for("the greeting", p.greeted)
    yield p
    p.close()


def said(p: VoiceParticipant, tool: str, text: str) -> None:
    """Wait for the local model to read the tool's result out, and check what it said."""
    p.wait_for(
        f"the result of {tool}",
        lambda: any(f"The tool {tool} returned" in line for line in p.agent_lines()),
    )
    line = next(line for line in p.agent_lines() if f"The tool {tool} returned" in line)
    assert text in line, line


def agent_attribute(p: VoiceParticipant, key: str) -> str:
    """The agent's attribute as it is now (LiveKit drops one set to "")."""
    agents = [
        r
        for r in p.room.remote_participants.values()
        if r.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    ]
    return agents[0].attributes.get(key, "") if agents else ""


def answer(p: VoiceParticipant, method: str, handler) -> None:
    """Register a client method on the participant, as the voice client registers its own."""
    p.room.local_participant.register_rpc_method(method, handler)


def test_a_notebook_handler_runs_while_the_main_thread_is_busy(lab, person):
    runs = []

    @lab.on_tool("count")
    def count(n: int) -> int:
        runs.append((threading.current_thread() is threading.main_thread(), time.monotonic()))
        return n + 1

    person.type('/call count {"n": 41}')
    busy_from = time.monotonic()
    time.sleep(4)  # a cell that blocks the kernel's main thread
    busy_until = time.monotonic()
    assert len(runs) == 1, "the handler did not run while the main thread slept"
    on_main, at = runs[0]
    assert not on_main and busy_from < at < busy_until
    said(person, "count", "42")
    calls = lab.log.tool_calls
    call = calls[calls.tool == "count"].iloc[0]
    assert call["arguments"] == {"n": 41} and call["result"] == "42" and call["error"] is None
    assert call["ok"] and call["duration_s"] > 0 and np.isnan(call["rpc_s"])  # no client call
    assert call["role"] == "tools" and call["role_version"] == lab.role("tools").version


def test_a_tool_with_nothing_to_run_says_so(person):
    person.type("/call orphan")
    said(person, "orphan", "has nothing to run")


def test_python_failure_reaches_the_model_and_the_client_then_clears(lab, person):
    shown = []

    async def table(data: rtc.RpcInvocationData) -> str:
        shown.append(json.loads(data.payload))
        return "shown"

    answer(person, "show_table", table)
    person.type("/call total")
    said(person, "total", "ValueError: the basket is empty")
    assert shown == []  # the client shows nothing when the Python side failed
    person.wait_for(
        "the error in the client", lambda: agent_attribute(person, "rico_lab.tool_error")
    )
    failure = json.loads(agent_attribute(person, "rico_lab.tool_error"))
    assert failure["tool"] == "total" and "the basket is empty" in failure["message"]
    assert any("tool total" in e and "the basket is empty" in e for e in lab.errors)
    person.type('/call total {"items": ["soup", "bread"]}')
    person.wait_for("the table", lambda: shown)
    assert shown[0] == {"arguments": {"items": ["soup", "bread"]}, "result": [{"items": 2}]}
    person.wait_for("the error cleared", lambda: not agent_attribute(person, "rico_lab.tool_error"))


def test_client_failures_come_back_as_the_tool_result(person):
    async def broken(_data: rtc.RpcInvocationData) -> str:
        raise rtc.RpcError(rtc.RpcError.ErrorCode.APPLICATION_ERROR, "argument 'markdown' is bad")

    async def slow(_data: rtc.RpcInvocationData) -> str:
        await asyncio.sleep(5)
        return "too late"

    # no save_note method on this client: as if it were another kind of client
    person.type('/call note {"text": "x"}')
    said(person, "note", "the client has no method save_note")
    answer(person, "show_markdown", broken)
    person.type('/call show {"markdown": "# hi"}')
    said(person, "show", "the client's show_markdown failed: argument 'markdown' is bad")
    answer(person, "ask", slow)
    person.type('/call pick {"question": "which?", "choices": ["a", "b"]}')
    said(person, "pick", "did not answer ask within 1 s")


def test_a_payload_over_the_rpc_limit_is_refused_with_its_size(person):
    calls = []
    answer(person, "show_markdown", lambda data: calls.append(data) or "shown")
    person.type(json.dumps({"markdown": "x" * 20_000}).join(["/call show ", ""]))
    said(person, "show", "too much for the client's show_markdown")
    assert calls == []


def test_a_saved_note_lands_in_the_lab(lab, person):
    async def save(data: rtc.RpcInvocationData) -> str:
        return "saved"

    answer(person, "save_note", save)
    person.type('/call note {"title": "Idea", "text": "ask about dessert"}')
    said(person, "note", "saved")
    notes = lab.log.notes
    note = notes[notes.session == person.info.room].iloc[0]
    assert (note["title"], note["text"], note["role"]) == ("Idea", "ask about dessert", "tools")


def test_end_session_says_goodbye_then_closes_the_room(lab, person):
    reasons = []

    async def ending(data: rtc.RpcInvocationData) -> str:
        reasons.append(json.loads(data.payload)["arguments"].get("reason"))
        return "ending"

    answer(person, "end_session", ending)
    person.room.on("disconnected", lambda reason: reasons.append(reason))
    person.type('/call bye {"reason": "done"}')
    said(person, "bye", "say a short goodbye")
    person.wait_for("the room to close", lambda: len(reasons) == 2, timeout=30)
    assert reasons == ["done", rtc.DisconnectReason.ROOM_DELETED]
    person.wait_for("the lab to forget it", lambda: person.info.room not in lab._conversations)
