"""The local model's script rules, applied directly: no server, no websocket."""

from __future__ import annotations

from typing import Any

import pytest

from rico_lab.local_model.script import (
    AudioTurn,
    Call,
    Drop,
    Fail,
    LocalScript,
    Speak,
    TextTurn,
    ToolResult,
    audio_reply,
    greeting,
    plan_reply,
    text_reply,
    tool_result_reply,
)

pytestmark = pytest.mark.unit


def plan(
    latest: AudioTurn | TextTurn | ToolResult | None,
    script: LocalScript | None = None,
    **overrides: Any,
) -> Speak | Call | Fail:
    context: dict[str, Any] = {
        "instructions": "",
        "session_instructions": "",
        "introduced": False,
        "tool_names": ["get_weather"],
        "tool_choice": "auto",
    }
    return plan_reply(script or LocalScript(), latest, **{**context, **overrides})


def test_greeting_introduces_the_first_say_line_only() -> None:
    session = 'You run a lab. Say: "Welcome." Later, Say: “Welcome to the lab.”'
    assert greeting("Greet.", session, introduced=False) == Speak(
        "Local model here. Welcome to the lab."
    )
    assert greeting('Say: "Bye."', session, introduced=True) == Speak("Bye.")


def test_greeting_without_a_say_line_is_the_default_one_every_time() -> None:
    default = Speak("Local model here. Hello! This is rico lab's local model, not OpenAI.")
    assert greeting("", "Be brief.", introduced=False) == default
    assert greeting("", "Be brief.", introduced=True) == default


def test_audio_turn_reports_the_measured_speech_to_a_tenth() -> None:
    assert audio_reply(AudioTurn(3, 1.84)) == Speak("Turn 3: I heard 1.8 seconds of speech.")


def test_text_turn_is_echoed_unless_it_is_a_slash_call() -> None:
    tools = ["get_weather"]
    assert text_reply(TextTurn(2, "hello"), tools, allow_calls=True) == Speak(
        "Turn 2: you wrote: hello"
    )
    slash = TextTurn(1, ' /call get_weather {"city": "Paris"} ')
    assert text_reply(slash, tools, allow_calls=True) == Call("get_weather", {"city": "Paris"})
    assert text_reply(TextTurn(1, "/call get_weather"), tools, allow_calls=True) == Call(
        "get_weather", {}
    )
    assert text_reply(slash, tools, allow_calls=False) == Speak(f"Turn 1: you wrote: {slash.text}")


def test_slash_fail_fails_the_response_with_its_message() -> None:
    assert text_reply(TextTurn(3, "/fail the model is down"), [], allow_calls=True) == Fail(
        "the model is down"
    )
    assert text_reply(TextTurn(3, "/fail"), [], allow_calls=False) == Fail("scripted failure")
    assert plan(TextTurn(1, "/failure is an option")) == Speak(
        "Turn 1: you wrote: /failure is an option"
    )


def test_slash_drop_plans_a_reply_cut_by_a_dropped_connection() -> None:
    assert text_reply(TextTurn(2, " /drop "), [], allow_calls=True) == Drop(
        "Turn 2: this reply is cut off halfway by a dropped connection."
    )
    assert plan(TextTurn(1, "/drop it")) == Speak("Turn 1: you wrote: /drop it")


def test_slash_call_mistakes_are_said_not_called() -> None:
    assert text_reply(TextTurn(1, "/call launch_rocket {}"), [], allow_calls=True) == Speak(
        "Turn 1: there is no tool named launch_rocket. Available tools: none."
    )
    assert text_reply(
        TextTurn(4, "/call get_weather [1, 2]"), ["get_weather"], allow_calls=True
    ) == Speak("Turn 4: the arguments for get_weather must be a JSON object.")


def test_tool_result_is_read_back_and_a_long_one_shortened() -> None:
    assert tool_result_reply(ToolResult("get_weather", "sunny")) == Speak(
        "The tool get_weather returned sunny."
    )
    long = tool_result_reply(ToolResult("dump", "x" * 500)).text
    assert long == f"The tool dump returned {'x' * 117}...."  # cut to 120, then the full stop


def test_plan_follows_the_newest_input() -> None:
    assert plan(None) == greeting("", "", introduced=False)
    assert plan(AudioTurn(1, 2.0)) == Speak("Turn 1: I heard 2.0 seconds of speech.")
    assert plan(ToolResult("get_weather", "rain")) == Speak("The tool get_weather returned rain.")


def test_scripted_call_replaces_the_turn_unless_tools_are_off() -> None:
    script = LocalScript(calls={2: ("get_weather", {"city": "Oslo"})})
    call = plan(TextTurn(2, "hi"), script)
    assert call == Call("get_weather", {"city": "Oslo"})
    assert isinstance(call, Call) and call.arguments is not script.calls[2][1]
    assert plan(AudioTurn(1, 1.0), script) == Speak("Turn 1: I heard 1.0 seconds of speech.")
    assert plan(TextTurn(2, "hi"), script, tool_choice="none") == Speak("Turn 2: you wrote: hi")


def test_required_or_named_tool_choice_turns_a_line_into_a_call() -> None:
    tools = ["get_weather", "get_time"]
    assert plan(TextTurn(1, "hi"), tool_names=tools, tool_choice="required") == Call(
        "get_weather", {}
    )
    named = {"type": "function", "name": "get_time"}
    assert plan(None, tool_names=tools, tool_choice=named) == Call("get_time", {})
    assert plan(TextTurn(1, "hi"), tool_names=[], tool_choice="required") == Speak(
        "Turn 1: you wrote: hi"
    )


def test_stream_speedup_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stream_speedup must be positive"):
        LocalScript(stream_speedup=0)
