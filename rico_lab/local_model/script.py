"""What the local realtime model says and which tools it calls: the script and its rules.

The rules are plain functions of the newest input since the last response, so they can be
read and tested without a websocket; the realtime session only gathers that input and
streams whatever the rules decide.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

_TOOL_OUTPUT_CHARS = 120
# said before the first line, so a listener can tell the local model from OpenAI
_INTRO = "Local model here. "
_DEFAULT_GREETING = _INTRO + "Hello! This is rico lab's local model, not OpenAI."
_SAY = re.compile(r"Say:\s*[\"“](.+?)[\"”]", re.DOTALL)
_CALL = re.compile(r"/call\s+(\S+)\s*(.*)", re.DOTALL)
_FAIL = re.compile(r"/fail(?:\s+(.*))?", re.DOTALL)
#: A text turn that opens with this asks for a recap of the transcript after it, one
#: ``user:``, ``agent:`` or ``tool:`` line per turn or call (what :mod:`rico_lab.recap` sends).
RECAP_REQUEST = "Recap this conversation."
_TRANSCRIPT_LINE = re.compile(r"^(user|agent|tool): (.*)$", re.MULTILINE)


@dataclass
class LocalScript:
    """What the local model says and does; everything else follows fixed rules.

    Attributes:
        calls: Function calls by user turn number (1-based, audio and text turns alike):
            on that turn the model calls the named tool with these arguments instead of
            acknowledging the turn.
        stream_speedup: How many times faster than real time reply audio is streamed.
            Replies are paced rather than sent in one burst, so a user can still barge in
            while a response is being generated; ``math.inf`` only yields between chunks.
    """

    calls: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    stream_speedup: float = 10.0

    def __post_init__(self) -> None:
        if self.stream_speedup <= 0:
            raise ValueError(f"stream_speedup must be positive, got {self.stream_speedup}")


@dataclass(frozen=True)
class AudioTurn:
    """A committed user audio turn; there is no ASR, so only its length is known."""

    turn: int
    duration_s: float


@dataclass(frozen=True)
class TextTurn:
    """A user text message, numbered in the same sequence as audio turns."""

    turn: int
    text: str


@dataclass(frozen=True)
class ToolResult:
    """The output a client sent back for one of the model's function calls."""

    name: str
    output: str


@dataclass(frozen=True)
class Speak:
    """Reply with this line, as audio with a transcript or as text."""

    text: str


@dataclass(frozen=True)
class Call:
    """Reply with a call of this tool instead of words."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Fail:
    """Fail the response with this message, as a model outage would."""

    message: str


@dataclass(frozen=True)
class Drop:
    """Start saying this line, then close the connection halfway through it.

    What a network fault or a restarting model server does to a client mid-response.
    """

    text: str


def plan_reply(
    script: LocalScript,
    latest: AudioTurn | TextTurn | ToolResult | None,
    *,
    instructions: str,
    session_instructions: str,
    introduced: bool,
    tool_names: list[str],
    tool_choice: Any,
) -> Speak | Call | Fail | Drop:
    """Decide a response from the newest input since the last one, ``None`` when there is none.

    A tool result is reported, no input is a greeting, a turn the script lists is that call,
    and other turns are acknowledged. A ``tool_choice`` other than ``"auto"`` or ``"none"``
    obliges the model to call something, as it would oblige OpenAI's.

    Args:
        script: Supplies the calls scripted for given turns.
        latest: The newest user turn or tool result.
        instructions: The response's instructions, where a greeting looks for ``Say:`` first.
        session_instructions: The session's instructions, where a greeting looks next.
        introduced: Whether this session has already greeted once.
        tool_names: The tools the response may call.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or ``{"name": ...}``.

    Returns:
        The line to speak, the call to make, or the failure to report.
    """
    plan: Speak | Call | Fail | Drop
    if isinstance(latest, ToolResult):
        plan = tool_result_reply(latest)
    elif latest is None:
        plan = greeting(instructions, session_instructions, introduced=introduced)
    elif isinstance(latest, TextTurn) and latest.text.startswith(RECAP_REQUEST):
        plan = recap_reply(latest.text, instructions)
    elif (scripted := script.calls.get(latest.turn)) and tool_choice != "none":
        if scripted[0] not in tool_names:
            logger.warning("turn %d: scripted tool %r is not offered", latest.turn, scripted[0])
        plan = Call(scripted[0], dict(scripted[1]))
    elif isinstance(latest, AudioTurn):
        plan = audio_reply(latest)
    else:
        plan = text_reply(latest, tool_names, allow_calls=tool_choice != "none")
    if isinstance(plan, Speak) and tool_names and tool_choice not in ("auto", "none"):
        # "required" or a named function: the model must call something
        forced = tool_choice.get("name") if isinstance(tool_choice, dict) else tool_names[0]
        plan = Call(forced or tool_names[0], {})
    return plan


def greeting(instructions: str, session_instructions: str, *, introduced: bool) -> Speak:
    """Open with the last ``Say: "…"`` line of the instructions, else a default greeting.

    A role's instructions decide what its agent opens with; the intro marks only the first
    greeting of a session, so a repeated greeting is said verbatim.
    """
    said = _SAY.findall(instructions) or _SAY.findall(session_instructions)
    if not said:
        return Speak(_DEFAULT_GREETING)
    return Speak(said[-1] if introduced else _INTRO + said[-1])


def audio_reply(turn: AudioTurn) -> Speak:
    """Acknowledge a spoken turn with the speech length the detector measured."""
    return Speak(f"Turn {turn.turn}: I heard {turn.duration_s:.1f} seconds of speech.")


def recap_reply(request: str, instructions: str) -> Speak:
    """Recap a transcript by counting and quoting it, so the same talk gets the same recap.

    It names the instructions' recap prompt (their last line), to show which one it followed.
    """
    lines = _TRANSCRIPT_LINE.findall(request)
    said = [text for who, text in lines if who == "user"]
    answers = sum(who == "agent" for who, _ in lines)
    tools = [text.split(" ", 1)[0] for who, text in lines if who == "tool"]
    parts = [f"Recap: {len(said)} user turns, {answers} agent turns, {len(tools)} tool calls."]
    if said:
        parts.append(f'The user began with "{said[0]}" and ended with "{said[-1]}".')
    if tools:
        parts.append(f"Tools: {', '.join(dict.fromkeys(tools))}.")
    prompt = instructions.strip().splitlines()[-1] if instructions.strip() else ""
    if prompt:
        parts.append(f"Asked: {prompt}")
    return Speak(" ".join(parts))


def text_reply(
    turn: TextTurn, tool_names: list[str], *, allow_calls: bool
) -> Speak | Call | Fail | Drop:
    """Echo a text turn, or run a command typed by the user.

    ``/call NAME {json}`` calls a tool, so one can be tried by typing; ``/fail MESSAGE``
    fails the response and ``/drop`` drops the connection in the middle of one, so what a
    client shows for a model error, and how it recovers, can be seen and tested.
    """
    if match := _FAIL.fullmatch(turn.text.strip()):
        return Fail(match[1] or "scripted failure")
    if turn.text.strip() == "/drop":
        return Drop(f"Turn {turn.turn}: this reply is cut off halfway by a dropped connection.")
    if allow_calls and (match := _CALL.fullmatch(turn.text.strip())):
        return _slash_call(turn.turn, match[1], match[2].strip(), tool_names)
    return Speak(f"Turn {turn.turn}: you wrote: {turn.text}")


def tool_result_reply(result: ToolResult) -> Speak:
    """Read a tool's output back, shortened so a long one does not take minutes to say."""
    output = result.output
    if len(output) > _TOOL_OUTPUT_CHARS:
        output = output[: _TOOL_OUTPUT_CHARS - 3].rstrip() + "..."
    return Speak(f"The tool {result.name} returned {output}.")


def _slash_call(turn: int, name: str, raw: str, tool_names: list[str]) -> Speak | Call:
    """Call the named tool, or say why not, since a typo'd tool should not fail silently."""
    if name not in tool_names:
        return Speak(
            f"Turn {turn}: there is no tool named {name}. "
            f"Available tools: {', '.join(tool_names) or 'none'}."
        )
    try:
        arguments = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        return Speak(f"Turn {turn}: the arguments for {name} must be a JSON object.")
    return Call(name, arguments)
