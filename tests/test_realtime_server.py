"""The local realtime server, driven by the unmodified livekit-plugins-openai RealtimeModel."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectionError,
    APIConnectOptions,
    RunContext,
    function_tool,
    llm,
)
from livekit.plugins import openai

from rico_lab.local_model._vad import speech_duration
from rico_lab.local_model.script import LocalScript
from rico_lab.local_model.server import LocalRealtimeServer
from rico_lab.local_model.speech import synthesize

pytestmark = pytest.mark.integration  # every test starts the local realtime server

KEY = "sk-local-test-key"
RATE = 24000
NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)
USER_SENTENCE = "I would like to book a table for two people tonight."


def run(coro: Awaitable[Any]) -> Any:
    """Run one async test body; the timeout turns a hang into a failure."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout=30)

    return asyncio.run(bounded())


@dataclass
class Reply:
    text: str
    audio: np.ndarray
    chunk_sizes: list[int]
    calls: list[llm.FunctionCall]


@dataclass
class Recorder:
    """What the plugin session reported: its own events and the raw server events."""

    session: llm.RealtimeSession
    events: list[tuple[str, Any]] = field(default_factory=list)
    server_events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (
            "input_speech_started",
            "input_speech_stopped",
            "input_audio_transcription_completed",
            "generation_created",
            "error",
        ):
            self.session.on(name, lambda ev, name=name: self.events.append((name, ev)))
        self.session.on("openai_server_event_received", self.server_events.append)

    def named(self, name: str) -> list[Any]:
        return [ev for n, ev in self.events if n == name]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [ev for ev in self.server_events if ev["type"] == type_]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def poll() -> Any:
            while not (result := condition()):
                await asyncio.sleep(0.01)
            return result

        return await asyncio.wait_for(poll(), timeout)


@contextlib.asynccontextmanager
async def connected(
    script: LocalScript | None = None, **model_kwargs: Any
) -> AsyncIterator[tuple[LocalRealtimeServer, llm.RealtimeSession, Recorder]]:
    server = LocalRealtimeServer(api_key=KEY, script=script)
    await server.start()
    model = openai.realtime.RealtimeModel(
        base_url=server.base_url, api_key=KEY, conn_options=NO_RETRY, **model_kwargs
    )
    session = model.session()
    try:
        yield server, session, Recorder(session)
    finally:
        await session.aclose()
        await model.aclose()
        await server.aclose()


async def collect(gen: llm.GenerationCreatedEvent) -> Reply:
    """Drain a generation the way AgentSession does: text, audio and function streams."""
    texts: list[str] = []
    frames: list[rtc.AudioFrame] = []
    calls: list[llm.FunctionCall] = []

    async def message(msg: llm.MessageGeneration) -> None:
        async def text() -> None:
            async for delta in msg.text_stream:
                texts.append(delta)

        async def audio() -> None:
            async for frame in msg.audio_stream:
                frames.append(frame)

        await asyncio.gather(text(), audio())

    async def messages() -> None:
        await asyncio.gather(*[message(msg) async for msg in gen.message_stream])

    async def functions() -> None:
        async for call in gen.function_stream:
            calls.append(call)

    await asyncio.gather(messages(), functions())
    audio = np.concatenate(
        [np.frombuffer(f.data, dtype=np.int16) for f in frames] or [np.zeros(0, np.int16)]
    )
    return Reply("".join(texts), audio, [f.samples_per_channel for f in frames], calls)


def push_speech(session: llm.RealtimeSession, text: str, silence_after: float = 1.0) -> float:
    """Push an espeak-ng sentence as 20 ms frames, as a room would; returns its length (s)."""
    voice = synthesize(text, voice="alloy")
    pcm = np.concatenate(
        [np.zeros(RATE // 5, np.int16), voice, np.zeros(int(silence_after * RATE), np.int16)]
    )
    frame = RATE // 50
    pcm = np.pad(pcm, (0, -len(pcm) % frame))
    for start in range(0, len(pcm), frame):
        session.push_audio(rtc.AudioFrame(pcm[start : start + frame].tobytes(), RATE, 1, frame))
    return len(voice) / RATE


async def user_text(session: llm.RealtimeSession, text: str) -> None:
    chat_ctx = session.chat_ctx.copy()
    chat_ctx.add_message(role="user", content=text)
    await session.update_chat_ctx(chat_ctx)


@function_tool
async def get_weather(city: str) -> str:
    """Look up the weather in a city."""
    return f"sunny in {city}"


def test_greeting_is_spoken_with_transcript() -> None:
    async def body() -> None:
        async with connected() as (_, session, rec):
            reply = await collect(await session.generate_reply(instructions="Greet the user."))
            assert (
                reply.text == "Local model here. Hello! This is rico lab's local model, not OpenAI."
            )
            assert len(reply.chunk_sizes) > 5 and max(reply.chunk_sizes) <= RATE // 10
            assert np.sqrt(np.mean(reply.audio.astype(np.float64) ** 2)) > 300
            assert speech_duration(reply.audio) > 2.0
            done = rec.of_type("response.done")[-1]["response"]
            assert done["status"] == "completed"
            assert done["usage"]["output_token_details"]["audio_tokens"] > 0
            assert [ev["type"] for ev in rec.server_events][:2] == [
                "session.created",
                "session.updated",
            ]

    run(body())


def test_say_instruction_is_spoken_verbatim_and_introduced_once() -> None:
    async def body() -> None:
        async with connected() as (_, session, _rec):
            await session.update_instructions('You run a lab. Say: "Welcome to the lab."')
            first = await collect(await session.generate_reply(instructions="Greet."))
            second = await collect(
                await session.generate_reply(instructions='Say: "Goodbye for now."')
            )
            assert first.text == "Local model here. Welcome to the lab."
            assert second.text == "Goodbye for now."

    run(body())


def test_spoken_turn_is_detected_committed_and_acknowledged() -> None:
    async def body() -> None:
        async with connected() as (server, session, rec):
            spoken_s = push_speech(session, USER_SENTENCE)
            gen = await rec.wait_for(lambda: rec.named("generation_created"))
            reply = await collect(gen[0])
            assert [n for n, _ in rec.events if n != "generation_created"] == [
                "input_speech_started",
                "input_speech_stopped",
                "input_audio_transcription_completed",
            ]
            (turn,) = server.committed
            assert turn.turn == 1 and abs(turn.duration_s - spoken_s) < 0.4
            assert turn.num_samples > spoken_s * RATE  # with prefix padding and the silence
            assert reply.text == f"Turn 1: I heard {turn.duration_s:.1f} seconds of speech."
            (committed,) = rec.of_type("input_audio_buffer.committed")
            assert committed["item_id"] == turn.item_id
            started = rec.of_type("input_audio_buffer.speech_started")[0]["audio_start_ms"]
            stopped = rec.of_type("input_audio_buffer.speech_stopped")[0]["audio_end_ms"]
            assert 0 <= started < 200 < 200 + spoken_s * 1000 < stopped
            transcript = rec.named("input_audio_transcription_completed")[0].transcript
            assert transcript == f"[speech {turn.duration_s:.1f} s]"
            assert gen[0].user_initiated is False

    run(body())


def test_silence_and_noise_do_not_open_a_turn() -> None:
    async def body() -> None:
        async with connected() as (server, session, rec):
            noise = np.random.default_rng(7).normal(0, 40, 2 * RATE).astype(np.int16)
            session.push_audio(rtc.AudioFrame(noise.tobytes(), RATE, 1, len(noise)))
            session.commit_audio()  # a manual commit still works while VAD finds nothing
            await rec.wait_for(lambda: rec.of_type("input_audio_buffer.committed"))
            assert not rec.named("input_speech_started")
            assert server.committed[0].duration_s == 0.0

    run(body())


def test_turn_detection_off_commits_only_on_request() -> None:
    async def body() -> None:
        async with connected(turn_detection=None) as (server, session, rec):
            push_speech(session, USER_SENTENCE, silence_after=1.5)
            await asyncio.sleep(0.3)
            assert not server.committed and not rec.named("input_speech_started")
            session.commit_audio()
            await rec.wait_for(lambda: server.committed)
            reply = await collect(await session.generate_reply())
            assert reply.text.startswith("Turn 1: I heard ")
            assert not rec.named("input_speech_started")

    run(body())


def test_text_message_gets_a_reply_and_turns_count_across_modalities() -> None:
    async def body() -> None:
        async with connected() as (_, session, rec):
            await user_text(session, "What can you do?")
            first = await collect(await session.generate_reply())
            assert first.text == "Turn 1: you wrote: What can you do?"
            push_speech(session, USER_SENTENCE)
            gen = await rec.wait_for(lambda: [g for g in rec.named("generation_created")[1:]])
            second = await collect(gen[0])
            assert second.text.startswith("Turn 2: I heard ")

    run(body())


def test_text_only_modality_streams_text_without_audio() -> None:
    async def body() -> None:
        async with connected(modalities=["text"]) as (_, session, rec):
            await user_text(session, "hello")
            reply = await collect(await session.generate_reply())
            assert reply.text == "Turn 1: you wrote: hello"
            assert len(reply.audio) == 0
            assert rec.of_type("response.output_text.delta")
            assert not rec.of_type("response.output_audio.delta")

    run(body())


def test_slash_call_reaches_the_plugin_and_tool_output_is_answered() -> None:
    async def body() -> None:
        async with connected() as (_, session, _rec):
            await session.update_tools([get_weather])
            await user_text(session, '/call get_weather {"city": "Paris"}')
            reply = await collect(await session.generate_reply())
            (call,) = reply.calls
            assert call.name == "get_weather"
            assert json.loads(call.arguments) == {"city": "Paris"}
            assert reply.text == ""

            chat_ctx = session.chat_ctx.copy()
            output = llm.FunctionCallOutput(
                call_id=call.call_id, name=call.name, output="sunny in Paris", is_error=False
            )
            chat_ctx.items.append(output)
            await session.update_chat_ctx(chat_ctx)
            answer = await collect(await session.generate_reply())
            assert answer.text == "The tool get_weather returned sunny in Paris."

    run(body())


def test_unknown_tool_is_named_in_a_spoken_reply() -> None:
    async def body() -> None:
        async with connected() as (_, session, _rec):
            await session.update_tools([get_weather])
            await user_text(session, "/call launch_rocket {}")
            reply = await collect(await session.generate_reply())
            assert reply.calls == []
            assert reply.text == (
                "Turn 1: there is no tool named launch_rocket. Available tools: get_weather."
            )

    run(body())


def test_scripted_call_replaces_the_spoken_turn() -> None:
    async def body() -> None:
        script = LocalScript(calls={1: ("get_weather", {"city": "Oslo"})})
        async with connected(script=script) as (_, session, rec):
            await session.update_tools([get_weather])
            push_speech(session, USER_SENTENCE)
            gen = await rec.wait_for(lambda: rec.named("generation_created"))
            reply = await collect(gen[0])
            assert [(c.name, json.loads(c.arguments)) for c in reply.calls] == [
                ("get_weather", {"city": "Oslo"})
            ]

    run(body())


def test_speech_during_a_response_cancels_it() -> None:
    async def body() -> None:
        async with connected(script=LocalScript(stream_speedup=4.0)) as (_, session, rec):
            gen = await session.generate_reply(instructions="Greet.")
            push_speech(session, USER_SENTENCE)
            interrupted = await collect(gen)
            done = rec.of_type("response.done")[0]["response"]
            assert done["status"] == "cancelled"
            assert done["status_details"]["reason"] == "turn_detected"
            assert interrupted.text != "" and len(interrupted.audio) < 2 * RATE
            # the turn that interrupted still gets its answer
            nxt = await rec.wait_for(lambda: rec.named("generation_created")[1:])
            assert (await collect(nxt[0])).text.startswith("Turn 1: I heard ")

    run(body())


def test_client_cancel_and_protocol_errors_do_not_break_the_session() -> None:
    async def body() -> None:
        async with connected(script=LocalScript(stream_speedup=4.0)) as (_, session, rec):
            gen = await session.generate_reply()
            session.interrupt()
            await collect(gen)
            assert rec.of_type("response.done")[0]["response"]["status"] == "cancelled"
            session.send_event({"type": "no.such.event"})
            await rec.wait_for(lambda: rec.named("error"))
            assert rec.named("error")[0].recoverable
            assert rec.of_type("error")[0]["error"]["param"] == "type"
            await user_text(session, "still there?")
            reply = await collect(await session.generate_reply())
            assert reply.text == "Turn 1: you wrote: still there?"

    run(body())


def test_missing_espeak_fails_the_response_without_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    async def body() -> None:
        async with connected() as (_, session, rec):
            gen = await session.generate_reply(instructions='Say: "A line never spoken before."')
            reply = await collect(gen)
            assert len(reply.audio) == 0
            done = rec.of_type("response.done")[-1]["response"]
            assert done["status"] == "failed"
            assert "apt-get install espeak-ng" in done["status_details"]["error"]["message"]
            errors = await rec.wait_for(lambda: rec.named("error"))
            assert errors[0].recoverable

    run(body())


def test_session_updated_echoes_the_merged_config() -> None:
    async def body() -> None:
        async with connected(voice="cedar") as (_, session, rec):
            await session.update_instructions("Be brief.")
            await session.update_tools([get_weather])
            await rec.wait_for(lambda: len(rec.of_type("session.updated")) >= 3)
            config = rec.of_type("session.updated")[-1]["session"]
            assert config["instructions"] == "Be brief."
            assert [t["name"] for t in config["tools"]] == ["get_weather"]
            assert config["audio"]["output"]["voice"] == "cedar"
            assert config["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
            assert config["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}

    run(body())


def test_the_voice_changes_only_until_the_model_has_spoken() -> None:
    """OpenAI's rule: a session keeps the voice it first spoke with."""

    async def body() -> None:
        async with connected(voice="cedar") as (server, session, rec):
            session.update_options(voice="marin")
            await rec.wait_for(lambda: server.updates and server.updates[-1].voice == "marin")
            reply = await collect(await session.generate_reply(instructions='Say: "Hello."'))
            assert len(reply.audio) > 0
            session.update_options(voice="ash")
            errors = await rec.wait_for(lambda: rec.of_type("error"))
            error = errors[0]["error"]
            assert error["code"] == "cannot_update_voice"
            assert error["message"] == (
                "Cannot update a conversation's voice if assistant audio is present."
            )
            assert server.updates[-1].voice == "marin"

    run(body())


def test_wrong_api_key_is_rejected_and_surfaces_as_an_error() -> None:
    async def body() -> None:
        server = LocalRealtimeServer(api_key=KEY)
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                wrong = {"Authorization": "Bearer sk-wrong-key-123456"}
                for path in ("/realtime?model=gpt-realtime", "/models"):
                    async with http.get(server.base_url + path, headers=wrong) as resp:
                        assert resp.status == 401
                        error = (await resp.json())["error"]
                        assert error["code"] == "invalid_api_key"
                        assert error["message"].startswith("Incorrect API key provided: sk-")
                        assert "sk-wrong-key-123456" not in error["message"]
                async with http.get(server.base_url + "/models") as resp:
                    assert resp.status == 401
                right = {"Authorization": f"Bearer {KEY}"}
                async with http.get(server.base_url + "/models", headers=right) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["data"][0]["object"] == "model"

            model = openai.realtime.RealtimeModel(
                base_url=server.base_url, api_key="sk-wrong", conn_options=NO_RETRY
            )
            session = model.session()
            errors: list[llm.RealtimeModelError] = []
            session.on("error", errors.append)
            with pytest.raises(llm.RealtimeError):
                await session.generate_reply()
            assert errors and not errors[-1].recoverable
            with pytest.raises(APIConnectionError):  # aclose re-raises what ended the session
                await session.aclose()
            await model.aclose()
        finally:
            await server.aclose()

    run(body())


def test_agent_session_runs_a_tool_round_trip() -> None:
    class Lab(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You are a lab assistant.")

        @function_tool
        async def get_weather(self, ctx: RunContext, city: str) -> str:
            """Look up the weather in a city."""
            return f"sunny in {city}"

    async def body() -> None:
        server = LocalRealtimeServer(api_key=KEY)
        await server.start()
        model = openai.realtime.RealtimeModel(base_url=server.base_url, api_key=KEY)
        agent_session = AgentSession(llm=model)
        try:
            await agent_session.start(Lab())
            result = await agent_session.run(user_input='/call get_weather {"city": "Paris"}')
            result.expect.next_event().is_function_call(
                name="get_weather", arguments={"city": "Paris"}
            )
            result.expect.next_event().is_function_call_output(output="sunny in Paris")
            result.expect.next_event().is_message(role="assistant")
            messages = [i for i in agent_session.history.items if i.type == "message"]
            assert messages[-1].text_content == "The tool get_weather returned sunny in Paris."
        finally:
            await agent_session.aclose()
            await model.aclose()
            await server.aclose()

    run(body())


def test_a_cancel_with_no_reply_is_answered_quietly_and_other_errors_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The plugin cancels replies that just ended; OpenAI answers response_cancel_not_active.

    The local model answers the same, without the warning that would print red in a cell.
    """

    async def body() -> None:
        server = LocalRealtimeServer(api_key=KEY)
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                url = server.base_url.replace("http", "ws", 1) + "/realtime?model=gpt-realtime"
                headers = {"Authorization": f"Bearer {KEY}"}
                async with http.ws_connect(url, headers=headers) as ws:
                    errors = []
                    for event in ({"type": "response.cancel"}, {"type": "no.such.event"}):
                        await ws.send_json(event)
                        while (got := await ws.receive_json(timeout=5))["type"] != "error":
                            pass
                        errors.append(got["error"])
        finally:
            await server.aclose()
        assert errors[0]["code"] == "response_cancel_not_active"
        assert errors[0]["message"] == "Cancellation failed: no active response found"

    with caplog.at_level("DEBUG", logger="rico_lab.local_model"):
        run(body())
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "no.such.event" in warned[0], warned
