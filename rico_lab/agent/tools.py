"""A role's tools as livekit function tools: Python in the kernel, methods on the client.

A tool runs, in order: the role's ``python:`` function (a sync one in a worker thread, so a
slow tool does not stall the conversation's audio), the notebook's handlers for it
(:meth:`rico_lab.Lab.on_tool`, in the same way), then the ``ui:`` method on the user's
voice client over WebRTC, which shows what the Python side returned. None of it goes
through the kernel's message loop, so it all works while a cell is running.

Whatever fails becomes a :class:`~livekit.agents.llm.ToolError` whose message the model
reads as the tool's result, so it can recover; the conversation is told too, to show it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import RunContext, llm

from ..roles import Tool

logger = logging.getLogger(__name__)

#: LiveKit's limit on an RPC payload, in bytes of UTF-8.
MAX_PAYLOAD_BYTES = 15 * 1024

#: What the model is told after ``end_session``: the room closes once it has said this.
GOODBYE = "The session ends after this reply: say a short goodbye now."


class ToolHost(Protocol):
    """The conversation a tool runs in, as far as tools need it."""

    @property
    def rtc_room(self) -> rtc.Room:
        """The LiveKit room, as the agent sees it."""

    def client(self) -> str | None:
        """Identity of the user's client participant, ``None`` before it joins."""

    def handlers(self, tool: str) -> list[Callable[..., Any]]:
        """The notebook's handlers for ``tool``, looked up at each call."""

    def tool_done(self, call: dict[str, Any]) -> None:
        """Record a finished call: its arguments, result or error, timing."""

    def note(self, arguments: dict[str, Any]) -> None:
        """Keep a note the client saved."""

    def end_after_reply(self, context: RunContext) -> None:
        """Close the room once the agent's reply to this call has been said."""


def function_tools(tools: tuple[Tool, ...], host: ToolHost) -> list[llm.Tool]:
    """Function tools for ``tools``, each running in ``host``."""
    return [_function_tool(tool, host) for tool in tools]


def _function_tool(tool: Tool, host: ToolHost) -> llm.Tool:
    async def call(raw_arguments: dict[str, object], context: RunContext) -> str:
        started, clock = time.time(), time.perf_counter()
        record: dict[str, Any] = {"tool": tool.name, "arguments": raw_arguments, "started": started}
        timing: dict[str, float] = {}
        try:
            result = await _perform(tool, host, dict(raw_arguments), timing)
        except llm.ToolError as exc:
            record.update(result=None, error=exc.message)
            raise
        else:
            record.update(result=result, error=None)
        finally:
            duration = time.perf_counter() - clock
            host.tool_done({**record, "duration_s": duration, "rpc_s": timing.get("rpc_s")})
        if tool.ui == "save_note":
            host.note(dict(raw_arguments))
        if tool.ui == "end_session":
            host.end_after_reply(context)
            return GOODBYE
        return result

    schema = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return llm.function_tool(call, raw_schema=schema)


async def _perform(
    tool: Tool, host: ToolHost, arguments: dict[str, Any], timing: dict[str, float]
) -> str:
    """Run every part of ``tool``; the result is the first part's answer, as text."""
    answers: list[Any] = []
    if tool.function is not None:
        answers.append(await _run(tool.name, tool.function, arguments))
    handlers = host.handlers(tool.name)
    for handler in handlers:
        answer = await _run(tool.name, handler, arguments)
        if answer is not None:
            answers.append(answer)
    if tool.ui is not None:
        shown = answers[0] if answers else None
        sent = time.perf_counter()
        try:
            answers.append(await _call_client(tool, host, arguments, shown, bool(answers)))
        finally:
            timing["rpc_s"] = time.perf_counter() - sent
    if tool.function is None and tool.ui is None and not handlers:
        raise llm.ToolError(
            f"tool {tool.name} has nothing to run: its role gives it no python: or ui:, and "
            f"the notebook defines no @lab.on_tool({tool.name!r}) handler"
        )
    result = answers[0] if answers else None
    return result if isinstance(result, str) else json.dumps(result, default=str)


async def _run(name: str, function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """Call ``function`` with the arguments; what it raises is told to the model by name."""
    try:
        if inspect.iscoroutinefunction(function):
            return await function(**arguments)
        return await asyncio.to_thread(function, **arguments)
    except llm.ToolError:
        raise
    except Exception as exc:
        where = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"
        logger.warning("tool %s: %s raised", name, where, exc_info=True)
        raise llm.ToolError(f"{where} raised {type(exc).__name__}: {exc}") from None


async def _call_client(
    tool: Tool, host: ToolHost, arguments: dict[str, Any], result: Any, has_result: bool
) -> str:
    method = str(tool.ui)
    user = host.client()
    if user is None:
        raise llm.ToolError(f"no client to call {method} on: the user has not joined")
    body: dict[str, Any] = {"arguments": arguments}
    if has_result:
        body["result"] = result
    payload = json.dumps(body, default=str)
    size = len(payload.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise llm.ToolError(
            f"{tool.name}: {size} bytes is too much for the client's {method} at once "
            f"(LiveKit RPC takes {MAX_PAYLOAD_BYTES}); send less"
        )
    try:
        return await host.rtc_room.local_participant.perform_rpc(
            destination_identity=user,
            method=method,
            payload=payload,
            response_timeout=tool.timeout_s,
        )
    except rtc.RpcError as exc:
        raise llm.ToolError(_rpc_failure(method, tool.timeout_s, exc)) from None


def _rpc_failure(method: str, timeout_s: float, error: rtc.RpcError) -> str:
    codes = rtc.RpcError.ErrorCode
    if error.code == codes.UNSUPPORTED_METHOD:
        return (
            f"the client has no method {method}: it is not rico_lab's voice client, or an older one"
        )
    if error.code == codes.RESPONSE_TIMEOUT:
        return f"the client did not answer {method} within {timeout_s:g} s"
    if error.code in (codes.RECIPIENT_DISCONNECTED, codes.RECIPIENT_NOT_FOUND):
        return f"the client left before answering {method}"
    return f"the client's {method} failed: {error.message}"
