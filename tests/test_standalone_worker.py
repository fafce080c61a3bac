"""``rico-lab worker``: the notebook's roles served by a standalone worker process.

The worker runs as a user would run it (the console script, SIGTERM to stop it), against
the real livekit-server, and a ``livekit.rtc`` participant talks to it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pytest
from cli_process import livekit_env, worker
from livekit import api
from rtc_participant import VoiceParticipant, run_aside

from rico_lab.agent.audio_path import DEFAULT_AUDIO_PATH
from rico_lab.cli import main
from rico_lab.livekit_server import LiveKitServer
from rico_lab.protocol import JoinInfo, join_token

pytestmark = pytest.mark.integration


@contextmanager
def person(info: JoinInfo) -> Iterator[VoiceParticipant]:
    p = VoiceParticipant(info)
    p.connect()
    try:
        yield p
    finally:
        p.close()


def dispatched(livekit: LiveKitServer, role: str) -> JoinInfo:
    """What ``rico-lab token`` (or ``lab.join``) hands a user: the dispatch names the role."""
    room, identity = f"{role}-{uuid.uuid4().hex[:6]}", "ann"
    token = join_token(livekit.api_key, livekit.api_secret, room=room, identity=identity, role=role)
    return JoinInfo(livekit.url, token, room, identity, role)


def events(runs: Path, room: str) -> list[dict[str, object]]:
    (path,) = runs.glob(f"*_{room}.jsonl")  # <UTC start>_<room>.jsonl
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_serves_a_conversation_and_drains_on_sigterm(livekit, tmp_path):
    runs = tmp_path / "runs"
    with worker(livekit, runs) as service:
        assert "model: local" in service.lines[-1]
        info = dispatched(livekit, "food_order")
        with person(info) as p:
            p.wait_for("the greeting", p.greeted)
            assert "Welcome to the cafe!" in p.agent_lines()[0]
            p.type("one coffee")
            p.wait_for("the reply", lambda: "Turn 1: you wrote: one coffee" in p.agent_lines())

            service.proc.send_signal(signal.SIGTERM)
            service.wait_for("1 conversation(s) may finish")
            # draining: the running conversation goes on, a new room gets no agent
            p.type("and a cake")
            p.wait_for("the reply", lambda: "Turn 2: you wrote: and a cake" in p.agent_lines())
            with person(dispatched(livekit, "demo")) as late:
                time.sleep(3)
                assert late.agent_lines() == [] and not late.agent_attributes
            assert service.proc.poll() is None
        # the user left: the conversation ends, and with it the worker
        assert service.proc.wait(30) == 0
        assert "rico-lab worker: stopped (drained)" in service.lines
    record = events(runs, info.room)
    kinds = [e["type"] for e in record]
    assert kinds[0] == "session_started" and kinds[-2:] == ["session_ended", "recording"]
    assert (runs / record[-1]["file"]).stat().st_size > 0  # it records as a lab does
    # the audio path a lab's agent has: 10 ms frames in, 20 ms chunks, replies 20 ms ahead
    assert (
        record[0]["audio_path"]
        == asdict(DEFAULT_AUDIO_PATH)
        == {
            "input_frame_ms": 10,
            "send_chunk_ms": 20,
            "output_lead_ms": 20,
        }
    )
    said = [e["text"] for e in record if e["type"] == "turn"]
    assert "Turn 2: you wrote: and a cake" in said
    assert {e["role"] for e in record if e["type"] == "turn"} == {"food_order"}


def test_a_drain_timeout_ends_a_conversation_that_goes_on(livekit, tmp_path):
    runs = tmp_path / "runs"
    with worker(livekit, runs, "--drain-timeout", "2") as service:
        info = dispatched(livekit, "demo")
        with person(info) as p:
            p.wait_for("the greeting", p.greeted)
            service.proc.send_signal(signal.SIGTERM)
            assert service.proc.wait(30) == 0, "\n".join(service.lines[-40:])
            assert "rico-lab worker: stopped (cut short)" in service.lines
            p.wait_for("the agent to leave", lambda: not p.room.remote_participants)
    kinds = [e["type"] for e in events(runs, info.room)]
    assert kinds[-2:] == ["session_ended", "recording"]  # cut short, the audio still closed


def test_the_role_comes_from_the_room_or_the_participant(livekit, tmp_path):
    """A worker that takes every room (agent name ''), as a deployment without tokens of
    ours would run it: the room's metadata, else the participant's attribute, names the
    role, else the default."""
    runs = tmp_path / "runs"

    def token(room: str, attributes: dict[str, str]) -> JoinInfo:
        jwt = (
            api.AccessToken(livekit.api_key, livekit.api_secret)
            .with_identity("bo")
            .with_attributes(attributes)
            .with_grants(api.VideoGrants(room_join=True, room=room))
            .to_jwt()
        )
        return JoinInfo(livekit.url, jwt, room, "bo", "")

    async def create(room: str, metadata: str) -> None:
        async with api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name=room, metadata=metadata))

    expected = {
        "by-attribute": ({"rico_lab.role": "listener"}, "I'm here to listen"),
        "by-metadata": ({"rico_lab.role": "listener"}, "Welcome to the cafe!"),
        "by-default": ({}, "rico lab demo agent"),
    }
    with worker(livekit, runs, "--agent-name", "", "--role", "demo") as service:
        run_aside(create("by-metadata", json.dumps({"role": "food_order"})))
        people = {
            room: VoiceParticipant(token(room, attrs)) for room, (attrs, _) in expected.items()
        }
        lost = VoiceParticipant(token("unknown-role", {"rico_lab.role": "nobody"}))
        try:
            for p in [*people.values(), lost]:  # all at once: the worker takes each room
                p.connect()
            for room, p in people.items():
                p.wait_for(f"the greeting in {room}", p.greeted)
                assert expected[room][1] in p.agent_lines()[0]
            line = service.wait_for("room unknown-role: unknown role 'nobody'")
            assert "demo, food_order, listener" in line
            assert lost.agent_lines() == []
        finally:
            for p in [*people.values(), lost]:
                p.close()
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(30) == 0


def test_a_missing_setting_or_broken_default_role_is_named(livekit, monkeypatch, capsys):
    assert main(["worker"]) == 2  # the test environment has no LIVEKIT_* variables
    error = capsys.readouterr().err
    assert "rico-lab worker: set LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET" in error
    for name, value in livekit_env(livekit).items():
        monkeypatch.setenv(name, value)
    assert main(["worker", "--role", "nobody", "--http-port", "0"]) == 2
    assert "unknown role 'nobody'" in capsys.readouterr().err


def test_a_worker_never_full_gets_its_rooms_on_a_busy_machine(livekit, tmp_path):
    # LiveKit sends a room only to a worker reporting a load under its target (0.7): one
    # that reported the machine's CPU use would get none here, whatever its own threshold
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.nice(19))
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        with worker(livekit, tmp_path / "runs"):  # --load-threshold inf
            time.sleep(4)  # livekit-agents reports CPU use averaged over 2.5 s
            with person(dispatched(livekit, "demo")) as p:
                p.wait_for("the greeting", p.greeted, timeout=30)
    finally:
        for process in busy:
            process.kill()
            process.wait()
